"""The mgcap generic-netlink family over pyroute2, with messages built from the spec.

Sockets ask for extended ACKs and strict checking, so the kernel's extack message
reaches the user (NetlinkError.args[1]).
"""

import errno
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    genlmsg,
    nla,
)
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket

from mgctl import spec

# YNL attribute types -> pyroute2 NLA formats. "uint" may be 4 or 8 bytes on the
# wire; mgcap's kernel side always sends 8 (nla_put_u64_64bit), on every kernel.
_FORMATS = {
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "uint": "uint64",
    "s32": "int32",
    "string": "asciiz",
    "binary": "cdata",
    "pad": "hex",
    "flag": "flag",
}


def _nla_class(fam: spec.Family, set_name: str, base: type, built: dict[str, type]) -> type:
    if set_name in built:
        return built[set_name]
    body: dict[str, Any] = {"__slots__": ()}
    nla_map = []
    for a in fam.attr_sets[set_name].values():
        if a.type == "nest":
            assert a.nested
            body[a.nested.replace("-", "_")] = _nla_class(fam, a.nested, nla, built)
            nla_map.append((a.value, a.name, a.nested.replace("-", "_")))
        else:
            nla_map.append((a.value, a.name, _FORMATS[a.type]))
    body["nla_map"] = tuple(nla_map)
    cls = type(f"mgcap_{set_name.replace('-', '_')}", (base,), body)
    built[set_name] = cls
    return cls


def message_class(fam: spec.Family, attr_set: str = "dev") -> type:
    """The genlmsg subclass of an attribute set, nested sets included."""
    return _nla_class(fam, attr_set, genlmsg, {})


@dataclass(frozen=True)
class Overrun:
    """The kernel dropped notifications for a full receive buffer (ENOBUFS): dropped
    is how many since the last report, from the socket's drop counter."""

    dropped: int


SO_MEMINFO = 55  # <asm-generic/socket.h>; Python's socket module lacks it
SK_MEMINFO_DROPS = 8  # <linux/sock_diag.h>


def socket_drops(sock: socket.socket) -> int:
    """The socket's drop counter (SO_MEMINFO): netlink counts there every message it
    could not queue to a full receive buffer."""
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (SK_MEMINFO_DROPS + 1))
    return int(struct.unpack_from("=I", raw, 4 * SK_MEMINFO_DROPS)[0])


def subscribe(
    family: str, msg_class: type, groups: Iterable[str], rcvbuf: int | None = None
) -> socket.socket:
    """A new generic-netlink socket that joined the family's multicast groups (by name,
    with pyroute2's add_membership), blocking, with a receive buffer of rcvbuf bytes
    (default 1 MiB, within net.core.rmem_max)."""
    with GenericNetlinkSocket() as sock:
        sock.bind(family, msg_class)
        for group in groups:
            sock.add_membership(group)
        # the same socket, outliving pyroute2's object, blocking (its asyncio endpoint
        # made it non-blocking)
        raw = socket.socket(fileno=os.dup(sock.fileno()))
    raw.setblocking(True)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf or 1 << 20)
    return raw


def datagrams(sock: socket.socket) -> Iterator[bytes | Overrun]:
    """What a netlink socket receives, one datagram at a time, and an Overrun before
    the next one whenever the socket's drop counter went up. The kernel reports a
    full receive buffer once (ENOBUFS, skipped here) and may go on dropping until the
    queue is read empty: the counter has them all."""
    dropped = 0  # a new socket's count: every drop is the reader's loss
    while True:
        now = socket_drops(sock)
        if now != dropped:
            yield Overrun(now - dropped)
            dropped = now
        try:
            yield sock.recv(1 << 16)
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                raise


class FamilyMissing(OSError):
    """The kernel has no mgcap family: the module is not loaded."""


def decode(fam: spec.Family, attr_set: str, msg: Any) -> dict[str, Any]:
    """A message or nest as {attribute name: value}; nests recurse, multi-attrs are lists."""
    out: dict[str, Any] = {}
    attrs = fam.attr_sets[attr_set]
    for name, value in msg["attrs"]:
        a = attrs.get(name)
        if a is None or a.type == "pad":
            continue
        if a.type == "nest":
            assert a.nested
            value = decode(fam, a.nested, value)
        if a.multi:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


class MgcapNetlink:
    """A socket bound to the mgcap family."""

    def __init__(self) -> None:
        self.family = spec.family()
        self.msg_class = message_class(self.family)
        self.sock = GenericNetlinkSocket(ext_ack=True, strict_check=True)
        try:
            self.sock.bind(self.family.name, self.msg_class)
        except NetlinkError as e:
            self.sock.close()
            if e.code == errno.ENOENT:
                raise FamilyMissing(errno.ENOENT, "mgcap module not loaded") from e
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "MgcapNetlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _msg(self, op: str, attrs: dict[str, Any]) -> Any:
        o = self.family.operations[op]
        allowed = set(o.request)
        msg = self.msg_class()
        msg["cmd"] = o.value
        msg["version"] = self.family.version
        for name, value in attrs.items():
            if value is None:
                continue
            if name not in allowed:
                raise ValueError(f"{op} takes no attribute {name}")
            msg["attrs"].append([name, value])
        return msg

    def do(self, op: str, **attrs: Any) -> dict[str, Any] | None:
        """One request; returns the decoded reply, None for ops without one."""
        attrs = {k.replace("_", "-"): v for k, v in attrs.items()}
        flags = NLM_F_REQUEST | NLM_F_ACK
        replies = list(
            self.sock.nlm_request(self._msg(op, attrs), msg_type=self.sock.prid, msg_flags=flags)
        )
        for r in replies:
            if r["header"]["type"] == self.sock.prid:  # not the ACK
                return decode(self.family, "dev", r)
        return None

    def dump(self, op: str) -> list[dict[str, Any]]:
        flags = NLM_F_REQUEST | NLM_F_DUMP
        replies = self.sock.nlm_request(self._msg(op, {}), msg_type=self.sock.prid, msg_flags=flags)
        return [decode(self.family, "dev", r) for r in replies]

    def monitor(self, rcvbuf: int | None = None) -> Iterator[tuple[str, dict[str, Any]] | Overrun]:
        """Notifications of the multicast groups as (operation name, decoded message),
        and an Overrun where the kernel dropped some (then it goes on).

        A socket of its own, so that replies to requests and notifications never
        mix, joins the groups with pyroute2's add_membership (the group ids come
        from its CTRL_CMD_GETFAMILY). It is read with a plain recv() and not with
        pyroute2's get(): pyroute2 (0.9) reads through an asyncio datagram endpoint
        whose error_received() keeps the first error in the socket's status and
        raises it from every later call, so after one ENOBUFS the socket would be
        useless; a plain recv() returns the error once and the next read goes on.
        """
        by_value = {o.value: o.name for o in self.family.operations.values() if o.notify}
        with subscribe(self.family.name, self.msg_class, self.family.mcast_groups, rcvbuf) as raw:
            for data in datagrams(raw):
                if isinstance(data, Overrun):
                    yield data
                    continue
                for msg in self._notifications(data):
                    name = by_value.get(msg["cmd"])
                    if name:
                        yield name, decode(self.family, "dev", msg)

    def _notifications(self, data: bytes) -> Iterator[Any]:
        """The family's messages in one datagram, decoded with the spec's classes."""
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if kind == self.sock.prid:
                msg = self.msg_class(data[off : off + length])
                msg.decode()
                yield msg
            off += (length + 3) & ~3

    def policy(self) -> Any:
        """The kernel's policy dump of the family (CTRL_CMD_GETPOLICY)."""
        return self.sock.policy(self.family.name)
