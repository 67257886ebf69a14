"""The capture record: a PCAP-NG Enhanced Packet Block in host byte order.

The one module for the record format. `EnhancedPacketBlock` (construct) declares
the layout and builds records; everything that walks records in bulk reads the
same fixed header with struct at memoryview offsets, so that a walk is linear in
the bytes and allocates nothing per record but what it returns.

A read() returns whole records back to back.  Most of the time every record has
the same length (frames at least snaplen long, or a flood of one size); count()
checks the length fields at that stride in C code, and only mixed-length runs are
walked record by record.
"""

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from construct import Bytes, Const, Int32un, Padding, Struct, this

from mgctl import uapi

EnhancedPacketBlock = Struct(
    "block_type" / Const(uapi.EPB_TYPE, Int32un),
    "block_len" / Int32un,
    "interface_id" / Int32un,
    "ts_high" / Int32un,
    "ts_low" / Int32un,
    "caplen" / Int32un,
    "origlen" / Int32un,
    "frame" / Bytes(this.caplen),
    Padding(lambda ctx: -ctx.caplen % 4),
    "block_len_trailer" / Int32un,
)

# the fixed part of EnhancedPacketBlock, for the hot paths
_HEADER = struct.Struct("=7I")
_U32 = struct.Struct("=I")
assert _HEADER.size == uapi.EPB_HDR_LEN
_MIN_LEN = uapi.record_len(0)


@dataclass(frozen=True)
class Record:
    interface_id: int
    timestamp_ns: int
    origlen: int
    frame: bytes

    @property
    def caplen(self) -> int:
        return len(self.frame)


class RecordError(ValueError):
    """Bytes that are not a well-formed sequence of records."""


def iter_records(buf: bytes | bytearray | memoryview) -> Iterator[Record]:
    """Parse whole records back to back, checking every length field. Linear in the
    size of buf: each record is read in place at its offset."""
    view = memoryview(buf).cast("B")
    end = len(view)
    unpack = _HEADER.unpack_from
    trailer = _U32.unpack_from
    off = 0
    while off < end:
        if end - off < _MIN_LEN:
            raise RecordError(f"truncated record at offset {off}")
        btype, blen, ifid, ts_high, ts_low, caplen, origlen = unpack(view, off)
        if btype != uapi.EPB_TYPE:
            raise RecordError(f"block type {btype} is not an EPB at offset {off}")
        if blen != uapi.record_len(caplen) or off + blen > end:
            raise RecordError(f"bad block length at offset {off}")
        if trailer(view, off + blen - 4)[0] != blen:
            raise RecordError(f"bad block length at offset {off}")
        if caplen > origlen:
            raise RecordError(f"caplen {caplen} > origlen {origlen} at offset {off}")
        start = off + uapi.EPB_HDR_LEN
        yield Record(
            interface_id=ifid,
            timestamp_ns=(ts_high << 32) | ts_low,
            origlen=origlen,
            frame=bytes(view[start : start + caplen]),
        )
        off += blen


def build_record(rec: Record) -> bytes:
    """The bytes the kernel writes for rec (used by host tests)."""
    return bytes(
        EnhancedPacketBlock.build(
            {
                "block_len": uapi.record_len(rec.caplen),
                "interface_id": rec.interface_id,
                "ts_high": rec.timestamp_ns >> 32,
                "ts_low": rec.timestamp_ns & 0xFFFFFFFF,
                "caplen": rec.caplen,
                "origlen": rec.origlen,
                "frame": rec.frame,
                "block_len_trailer": uapi.record_len(rec.caplen),
            }
        )
    )


# -- runs of records as mgdump moves them (trusted: written by the kernel) ----


def uniform_length(buf: bytes | bytearray | memoryview) -> int | None:
    """The length of every record in buf if all have the length of the first (a flood
    of one frame size, or frames at least snaplen long), else None.  Checked in C
    code: each record's length says where the next begins, so if the length fields at
    the first record's stride all say that stride, the records are exactly those."""
    n = len(buf)
    if n < _MIN_LEN:
        return None
    view = memoryview(buf).cast("B")
    first = int(_U32.unpack_from(view, 4)[0])
    if first < _MIN_LEN or first % 4 or n % first:
        return None
    lengths = view.cast("I")[1 :: first // 4]
    return first if lengths.tolist().count(first) == len(lengths) else None


def count(buf: bytes | bytearray | memoryview) -> int:
    """Number of records in buf, a run of whole records (mixed lengths are walked)."""
    if not buf:
        return 0
    stride = uniform_length(buf)
    return len(buf) // stride if stride else _walk(buf, len(buf))[0]


def _walk(
    buf: bytes | bytearray | memoryview, limit: int, max_records: int | None = None
) -> tuple[int, int]:
    """(records, bytes) of the leading whole records within limit bytes / max_records."""
    off = 0
    n = 0
    unpack = _U32.unpack_from
    while off < limit and (max_records is None or n < max_records):
        step = unpack(buf, off + 4)[0]
        if step < _MIN_LEN or off + step > limit:
            break
        off += step
        n += 1
    return n, off


def head(buf: bytes | bytearray | memoryview, max_records: int) -> int:
    """Bytes taken by the first max_records records of buf (all of buf if fewer)."""
    return _walk(buf, len(buf), max_records)[1]


def head_bytes(buf: bytes | bytearray | memoryview, max_bytes: int) -> tuple[int, int]:
    """(records, bytes) of the longest run of leading records within max_bytes."""
    return _walk(buf, min(max_bytes, len(buf)))


def set_interface_id(buf: bytearray | memoryview, interface_id: int) -> None:
    """Rewrite the interface id of every record in buf (rare: records captured before
    mgdump set the device's id)."""
    off = 0
    while off < len(buf):
        _U32.pack_into(buf, off + 8, interface_id)
        off += _U32.unpack_from(buf, off + 4)[0]


def first_interface_id(buf: bytes | bytearray | memoryview) -> int:
    return int(_U32.unpack_from(buf, 8)[0])
