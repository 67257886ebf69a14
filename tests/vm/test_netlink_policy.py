"""The kernel's view of the family, read with raw CTRL_CMD_GETFAMILY / GETPOLICY
messages (no pyroute2), compared with netlink-spec/mgcap.yaml."""

import socket
import struct
from typing import Any

from mgctl import spec
from tests.vm.conftest import Module
from tests.vm.rawgenl import attrs

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CTRL_CMD_GETFAMILY, CTRL_CMD_GETPOLICY = 3, 10
CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_OPS, CTRL_ATTR_MCAST_GROUPS = 2, 6, 7
CTRL_ATTR_POLICY, CTRL_ATTR_OP_POLICY = 8, 9
CTRL_ATTR_OP_ID, CTRL_ATTR_OP_FLAGS = 1, 2
CTRL_ATTR_POLICY_DO = 1
CTRL_ATTR_MCAST_GRP_NAME = 1
NL_POLICY_TYPE_ATTR_TYPE, NL_POLICY_TYPE_ATTR_MIN_VALUE_U = 1, 4
NL_POLICY_TYPE_ATTR_MAX_VALUE_U, NL_POLICY_TYPE_ATTR_MAX_LENGTH = 5, 7
GENL_ADMIN_PERM, GENL_UNS_ADMIN_PERM, GENL_CMD_CAP_DUMP = 0x1, 0x10, 0x4

# enum netlink_attribute_type
NL_ATTR_TYPE = {"flag": 1, "u8": 2, "u16": 3, "u32": 4, "u64": 5, "binary": 10, "string": 12}
TYPE_MAX = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF, "u64": 0xFFFFFFFFFFFFFFFF}
# every change, and hwtstamp-get (it may reach a driver)
ADMIN_ONLY = {"dev-start", "dev-stop", "dev-set", "hwtstamp-get", "hwtstamp-set"}


def u(b: bytes) -> int:
    return int.from_bytes(b, "little")


def ctrl(cmd: int, flags: int) -> list[bytes]:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    name = b"mgcap\x00"
    attr = (
        struct.pack("=HH", 4 + len(name), CTRL_ATTR_FAMILY_NAME) + name + b"\x00" * (-len(name) % 4)
    )
    body = struct.pack("=BBH", cmd, 1, 0) + attr
    s.send(struct.pack("=IHHII", 16 + len(body), GENL_ID_CTRL, NLM_F_REQUEST | flags, 1, 0) + body)
    out: list[bytes] = []
    while True:
        data = s.recv(1 << 20)
        off = 0
        while off < len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if kind == NLMSG_DONE:
                s.close()
                return out
            if kind == NLMSG_ERROR:
                err = struct.unpack_from("=i", data, off + 16)[0]
                assert err == 0, f"netlink error {err}"
                s.close()
                return out
            out.append(data[off + 20 : off + length])
            off += (length + 3) & ~3
        if not flags & NLM_F_DUMP:
            s.close()
            return out


def kernel_policies() -> tuple[dict[int, int], dict[int, dict[int, dict[int, int]]]]:
    """({cmd: do-policy index}, {policy index: {attr: {property: value}}})"""
    op_policy: dict[int, int] = {}
    policies: dict[int, dict[int, dict[int, int]]] = {}
    for msg in ctrl(CTRL_CMD_GETPOLICY, NLM_F_DUMP):
        for kind, val in attrs(msg):
            if kind == CTRL_ATTR_OP_POLICY:
                for cmd, pol in attrs(val):
                    for which, raw in attrs(pol):
                        if which == CTRL_ATTR_POLICY_DO:
                            op_policy[cmd] = u(raw)
            elif kind == CTRL_ATTR_POLICY:
                for idx, table in attrs(val):
                    for attr, props in attrs(table):
                        policies.setdefault(idx, {})[attr] = {k: u(v) for k, v in attrs(props)}
    return op_policy, policies


def expected_range(fam: spec.Family, a: spec.Attr) -> tuple[int, int]:
    if a.enum:
        values = fam.enums[a.enum].values()
        return min(values), max(values)
    return int(a.checks.get("min", 0)), int(a.checks.get("max", TYPE_MAX[a.type]))


def test_policy_dump_matches_spec(mgcap: Module) -> None:
    mgcap.load()
    fam = spec.family()
    op_policy, policies = kernel_policies()
    checked = 0
    for op in fam.operations.values():
        if op.notify or not op.request:
            continue
        assert op.value in op_policy, f"{op.name}: no policy"
        table = policies[op_policy[op.value]]
        dev = fam.attr_sets[op.attribute_set or "dev"]
        want = {dev[n].value: dev[n] for n in op.request}
        assert set(table) == set(want), f"{op.name}: kernel accepts {sorted(table)}"
        for num, a in want.items():
            props: Any = table[num]
            assert props[NL_POLICY_TYPE_ATTR_TYPE] == NL_ATTR_TYPE[a.type], (op.name, a.name)
            if a.type == "string":
                assert props[NL_POLICY_TYPE_ATTR_MAX_LENGTH] == int(a.checks["max-len"])
            elif a.type in ("binary", "flag"):
                # the program's bounds are checked by the module, with messages
                assert NL_POLICY_TYPE_ATTR_MAX_LENGTH not in props, (op.name, a.name)
            else:
                got = (
                    props[NL_POLICY_TYPE_ATTR_MIN_VALUE_U],
                    props[NL_POLICY_TYPE_ATTR_MAX_VALUE_U],
                )
                assert got == expected_range(fam, a), (op.name, a.name)
            checked += 1
    assert checked >= 15


def test_family_ops_permissions_and_groups(mgcap: Module) -> None:
    mgcap.load()
    fam = spec.family()
    (msg,) = ctrl(CTRL_CMD_GETFAMILY, NLM_F_ACK)
    ops: dict[int, int] = {}
    groups = []
    for kind, val in attrs(msg):
        if kind == CTRL_ATTR_OPS:
            for _, op_attrs in attrs(val):
                a = dict(attrs(op_attrs))
                ops[u(a[CTRL_ATTR_OP_ID])] = u(a[CTRL_ATTR_OP_FLAGS])
        if kind == CTRL_ATTR_MCAST_GROUPS:
            for _, g in attrs(val):
                groups.append(dict(attrs(g))[CTRL_ATTR_MCAST_GRP_NAME].rstrip(b"\x00").decode())
    want_ops = {o.value: o for o in fam.operations.values() if not o.notify}
    assert set(ops) == set(want_ops)
    for value, op in want_ops.items():
        flags = ops[value]
        assert bool(flags & GENL_UNS_ADMIN_PERM) == (op.name in ADMIN_ONLY), op.name
        assert not flags & GENL_ADMIN_PERM
        assert bool(flags & GENL_CMD_CAP_DUMP) == op.dump, op.name
    assert groups == list(fam.mcast_groups)
