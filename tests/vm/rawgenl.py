"""A bare generic netlink client for the tests that look at the wire itself: dumps
read one part at a time, NLM_F_DUMP_INTR, and the extack TLVs (bad attribute offset,
missing attribute). Attribute and command numbers come from netlink-spec/mgcap.yaml."""

import errno
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from mgctl import spec

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x10, 0x300
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
# enum nlmsgerr_attrs
NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, NLMSGERR_ATTR_MISS_TYPE = 1, 2, 5
NLA_F_NESTED = 0x8000
HDR = struct.Struct("=IHHII")
GENL_HDR = struct.Struct("=BBH")


def attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            return
        yield kind & 0x3FFF, data[off + 4 : off + length]
        off += (length + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\x00" * (-len(payload) % 4)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def string(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\x00")


@dataclass
class Ack:
    """An NLMSG_ERROR: errno (0 for an ack) and the extack TLVs."""

    error: int
    message: str | None = None
    bad_offset: int | None = None  # from the start of the request's nlmsghdr
    missing_type: int | None = None


@dataclass
class Part:
    """What one recv() returned: messages (their genl payload), flags seen, the end."""

    messages: list[bytes] = field(default_factory=list)
    flags: int = 0
    done: bool = False
    ack: Ack | None = None


class RawGenl:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.seq = 0
        self.fam = spec.family()
        self.family_id = self._family_id()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawGenl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dev_attr(self, name: str) -> int:
        return self.fam.attr("dev", name).value

    def op(self, name: str) -> int:
        return self.fam.operations[name].value

    def send(self, family: int, cmd: int, body: bytes, flags: int) -> bytes:
        self.seq += 1
        payload = GENL_HDR.pack(cmd, 1, 0) + body
        msg = HDR.pack(HDR.size + len(payload), family, NLM_F_REQUEST | flags, self.seq, 0)
        msg += payload
        self.sock.send(msg)
        return msg

    def recv_part(self, bufsize: int = 1 << 20) -> Part:
        """One datagram. A buffer smaller than the datagram loses its tail (MSG_TRUNC):
        an error here, not messages silently missing. The kernel sizes dump parts by
        the largest buffer this socket asked for before (up to 32 KiB), so a dump read
        with a smaller buffer than an earlier recv's is truncated."""
        part = Part()
        data, _anc, msg_flags, _addr = self.sock.recvmsg(bufsize)
        if msg_flags & socket.MSG_TRUNC:
            raise OSError(f"netlink datagram larger than the {bufsize}-byte buffer (MSG_TRUNC)")
        off = 0
        while off + HDR.size <= len(data):
            length, kind, flags, _seq, _pid = HDR.unpack_from(data, off)
            part.flags |= flags
            body = data[off + HDR.size : off + length]
            if kind == NLMSG_DONE:
                part.ack = parse_done(body, flags)
                part.done = True
            elif kind == NLMSG_ERROR:
                part.ack = parse_ack(body, flags)
                part.done = True
            else:
                part.messages.append(body[GENL_HDR.size :])
            off += (length + 3) & ~3
        return part

    def request(self, op: str, body: bytes) -> tuple[list[bytes], Ack]:
        """A do request with an ack: the reply's attributes and the ack."""
        self.send(self.family_id, self.op(op), body, NLM_F_ACK)
        replies: list[bytes] = []
        while True:
            part = self.recv_part()
            replies += part.messages
            if part.ack is not None:
                return replies, part.ack

    def _family_id(self) -> int:
        self.send(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, string(CTRL_ATTR_FAMILY_NAME, "mgcap"), 0)
        part = self.recv_part()
        if part.ack is not None and part.ack.error:
            raise OSError(-part.ack.error, errno.errorcode.get(-part.ack.error, "?"))
        for kind, value in attrs(part.messages[0]):
            if kind == CTRL_ATTR_FAMILY_ID:
                return int.from_bytes(value[:2], "little")
        raise AssertionError("no family id")


def parse_ack(body: bytes, flags: int) -> Ack:
    (error,) = struct.unpack_from("=i", body)
    ack = Ack(error)
    if not flags & NLM_F_ACK_TLVS:
        return ack
    # the request's header, and its payload unless the kernel capped it (errors)
    (req_len,) = struct.unpack_from("=I", body, 4)
    skip = 4 + (HDR.size if error == 0 or flags & 0x100 else req_len)
    for kind, value in attrs(body[(skip + 3) & ~3 :]):
        if kind == NLMSGERR_ATTR_MSG:
            ack.message = value.rstrip(b"\x00").decode()
        elif kind == NLMSGERR_ATTR_OFFS:
            ack.bad_offset = int.from_bytes(value, "little")
        elif kind == NLMSGERR_ATTR_MISS_TYPE:
            ack.missing_type = int.from_bytes(value, "little")
    return ack


def parse_done(body: bytes, flags: int) -> Ack:
    """A dump's end: its status, and the extack TLVs right after it."""
    (error,) = struct.unpack_from("=i", body)
    ack = Ack(error)
    if flags & NLM_F_ACK_TLVS:
        for kind, value in attrs(body[4:]):
            if kind == NLMSGERR_ATTR_MSG:
                ack.message = value.rstrip(b"\x00").decode()
    return ack


def dev_ifindex(msg: bytes, ifindex_attr: int) -> int:
    for kind, value in attrs(msg):
        if kind == ifindex_attr:
            return int.from_bytes(value, "little")
    raise AssertionError("no ifindex")
