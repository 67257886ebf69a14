"""The generic-netlink family as netlink-spec/mgcap.yaml describes it.

The YAML spec is the single source of protocol numbers: command, attribute and enum
values are computed here with the same rules as the kernel's YNL tools (values
start at 1 for attributes and commands, at 0 or value-start for enums, an explicit
value resets the count), and mgctl builds its pyroute2 message classes from them.
"""

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_ENV = "MGCAP_SPEC"

# short names the command line and the API accept for receive filters (here, not in
# the API, so that mgctl's grammar has them without loading the API)
RX_ALIASES = {"ptp": "ptp-v2-event"}


def spec_path() -> Path:
    """$MGCAP_SPEC, else the copy shipped in the package (a link to netlink-spec/)."""
    env = os.environ.get(SPEC_ENV)
    if env:
        return Path(env)
    # beside this file, as importlib.resources finds it for a package on disk (without
    # importing importlib.resources and its zipfile support at every start)
    return Path(__file__).parent / "data" / "mgcap.yaml"


@dataclass(frozen=True)
class Attr:
    name: str
    value: int
    type: str
    enum: str | None = None
    nested: str | None = None
    multi: bool = False
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    name: str
    value: int
    attribute_set: str | None
    request: tuple[str, ...]
    reply: tuple[str, ...]
    dump: bool
    notify: str | None
    mcgrp: str | None


@dataclass(frozen=True)
class Family:
    name: str
    version: int
    enums: dict[str, dict[str, int]]
    attr_sets: dict[str, dict[str, Attr]]
    operations: dict[str, Operation]
    mcast_groups: tuple[str, ...]
    raw: dict[str, Any]

    def enum_name(self, enum: str, value: int) -> str:
        for name, v in self.enums[enum].items():
            if v == value:
                return name
        return str(value)

    def attr(self, attr_set: str, name: str) -> Attr:
        return self.attr_sets[attr_set][name]


def _entry_name(entry: Any) -> str:
    return str(entry["name"] if isinstance(entry, dict) else entry)


def _enums(spec: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for d in spec.get("definitions", []):
        if d["type"] not in ("enum", "flags"):
            continue
        value = int(d.get("value-start", 0))
        vals: dict[str, int] = {}
        for e in d["entries"]:
            if isinstance(e, dict) and "value" in e:
                value = int(e["value"])
            vals[_entry_name(e)] = (1 << value) if d["type"] == "flags" else value
            value += 1
        out[d["name"]] = vals
    return out


def _attr_sets(spec: dict[str, Any]) -> dict[str, dict[str, Attr]]:
    out: dict[str, dict[str, Attr]] = {}
    for s in spec["attribute-sets"]:
        value = 1
        attrs: dict[str, Attr] = {}
        for a in s["attributes"]:
            value = int(a.get("value", value))
            attrs[a["name"]] = Attr(
                name=a["name"],
                value=value,
                type=a["type"],
                enum=a.get("enum"),
                nested=a.get("nested-attributes"),
                multi=bool(a.get("multi-attr", False)),
                checks=dict(a.get("checks", {})),
            )
            value += 1
        out[s["name"]] = attrs
    return out


def _attr_list(part: Any) -> tuple[str, ...]:
    if not part:
        return ()
    return tuple(part.get("attributes", []))


def _operations(spec: dict[str, Any]) -> dict[str, Operation]:
    out: dict[str, Operation] = {}
    value = 1
    for op in spec["operations"]["list"]:
        value = int(op.get("value", value))
        do = op.get("do") or {}
        dump = op.get("dump")
        out[op["name"]] = Operation(
            name=op["name"],
            value=value,
            attribute_set=op.get("attribute-set"),
            request=_attr_list(do.get("request")),
            reply=_attr_list(do.get("reply") or (dump or {}).get("reply")),
            dump=dump is not None,
            notify=op.get("notify"),
            mcgrp=op.get("mcgrp"),
        )
        value += 1
    return out


def load_yaml(text: str) -> Any:
    """The YAML document, as yaml.safe_load reads it, with libyaml's parser when PyYAML
    has it: the pure-Python one takes 80 ms of every mgctl start on a server, and
    seconds in the emulated test VM; libyaml's, 4 ms. yaml itself is imported here
    only, for the commands that read the spec."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def parse(text: str) -> Family:
    spec = load_yaml(text)
    groups = tuple(g["name"] for g in spec.get("mcast-groups", {}).get("list", []))
    return Family(
        name=spec["name"],
        version=int(spec.get("version", 1)),
        enums=_enums(spec),
        attr_sets=_attr_sets(spec),
        operations=_operations(spec),
        mcast_groups=groups,
        raw=spec,
    )


@functools.cache
def family() -> Family:
    return parse(spec_path().read_text())
