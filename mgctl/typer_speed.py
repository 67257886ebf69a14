"""Option values that need no conversion skip typer's pydantic.

typer 0.28 and later coerce every option value but a flag's bool through a pydantic
TypeAdapter, built the first time the option is processed: even a default (mgctl's
-s count of 0, mgdump's -B of 65536, the help option's None) imports pydantic, about
75 modules, more than the rest of mgctl's start together (0.3 s on a server, seconds
in the emulated test VM). A value that click already gives as the option's own type
(an int for an int, a str for a str, a bool for a bool) and an absent one (None) come
out of that adapter unchanged, so here they pass as they are; so do a repeated str
option's strings (as the list the adapter makes of them) and an int option's plain
decimal digits (as their int). Any other value goes to typer's own coercion, built as
typer builds it. Before 0.28 (the floor is 0.27.2) click converts, and there is
nothing to do. tests/host/test_imports.py checks that both ways give the same values.
"""

import re
from collections.abc import Iterable
from typing import Any

# a number in plain decimal digits, as an int option's text most often is
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,17}")


def _plain_type(param: Any) -> type | None:
    """bool, int, float or str if the option is one (or None), list for list[str], with
    nothing more to check."""
    desc = getattr(param, "type_descriptor", None)
    info = getattr(desc, "parameter_info", None)
    if desc is None or info is None:
        return None
    checks = (getattr(info, k, None) for k in ("parser", "min", "max"))
    if any(c is not None for c in checks) or getattr(info, "clamp", False):
        return None
    for kind in (bool, int, float, str):
        if desc.annotation in (kind, kind | None):
            return kind
    if desc.annotation in (list[str], list[str] | None):
        return list  # click's tuple of str becomes a list
    return None


class _Plain:
    """A stand-in for typer's RuntimeParam: passes plain values, builds the real one
    for any other."""

    def __init__(self, param: Any, kind: type, build: Any) -> None:
        self.param = param
        self.kind = kind
        self.build = build
        self.real: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if self.kind is list and multi:
            if value is None:
                return ()  # as typer gives an absent repeated option
            if type(value) in (tuple, list) and all(type(v) is str for v in value):
                return list(value)
        elif not multi and (value is None or type(value) is self.kind):
            return value
        elif not multi and self.kind is int and type(value) is str and _DECIMAL.fullmatch(value):
            return int(value)  # mgdump -c 10: what the adapter makes of plain digits
        if self.real is None:
            self.real = self.build(self.param.type_descriptor)
        return self.real.coerce(value, param=param, ctx=ctx)


def plain_values(params: Iterable[Any]) -> None:
    """Let the typer options among params take plain values without pydantic."""
    try:
        from typer._coercion import build_runtime_param
    except ImportError:  # typer before 0.28: click converts the values
        return
    for p in params:
        kind = _plain_type(p)
        if kind is not None and getattr(p, "_runtime_param", False) is None:
            p._runtime_param = _Plain(p, kind, build_runtime_param)
