"""The capture record: a PCAP-NG Enhanced Packet Block in host byte order."""

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


def iter_records(buf: bytes | memoryview) -> Iterator[Record]:
    """Parse whole records back to back, checking every length field."""
    view = memoryview(buf)
    off = 0
    while off < len(view):
        if len(view) - off < uapi.record_len(0):
            raise RecordError(f"truncated record at offset {off}")
        blk = EnhancedPacketBlock.parse(view[off:])
        if blk.block_len != uapi.record_len(blk.caplen) or blk.block_len_trailer != blk.block_len:
            raise RecordError(f"bad block length at offset {off}")
        if blk.caplen > blk.origlen:
            raise RecordError(f"caplen {blk.caplen} > origlen {blk.origlen} at offset {off}")
        yield Record(
            interface_id=blk.interface_id,
            timestamp_ns=(blk.ts_high << 32) | blk.ts_low,
            origlen=blk.origlen,
            frame=bytes(blk.frame),
        )
        off += blk.block_len


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
