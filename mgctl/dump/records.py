"""Counting and cutting runs of records without looking at every one in Python.

A read() returns whole records back to back.  Most of the time every record has
the same length (frames at least snaplen long); checking the length fields at that
stride is done by C code, and only mixed-length runs are walked record by record.
"""

import struct

_U32 = struct.Struct("=I")


def count(buf: bytes | memoryview, uniform_len: int) -> int:
    """Number of records in buf, a run of whole records."""
    n = len(buf)
    if n == 0:
        return 0
    if n % uniform_len == 0 and len(buf) % 4 == 0:
        words = memoryview(buf).cast("I")
        lengths = words[1 :: uniform_len // 4]
        if lengths.tolist().count(uniform_len) == len(lengths):
            return n // uniform_len
    return _walk(buf, n)[0]


def _walk(buf: bytes | memoryview, limit: int, max_records: int | None = None) -> tuple[int, int]:
    """(records, bytes) of the leading whole records within limit bytes / max_records."""
    off = 0
    n = 0
    unpack = _U32.unpack_from
    while off < limit and (max_records is None or n < max_records):
        step = unpack(buf, off + 4)[0]
        if step < 32 or off + step > limit:
            break
        off += step
        n += 1
    return n, off


def head(buf: bytes | memoryview, max_records: int) -> int:
    """Bytes taken by the first max_records records of buf (all of buf if fewer)."""
    return _walk(buf, len(buf), max_records)[1]


def head_bytes(buf: bytes | memoryview, max_bytes: int) -> tuple[int, int]:
    """(records, bytes) of the longest run of leading records within max_bytes."""
    return _walk(buf, min(max_bytes, len(buf)))


def set_interface_id(buf: bytearray, interface_id: int) -> None:
    """Rewrite the interface id of every record in buf (rare: records captured before
    mgdump set the device's id)."""
    off = 0
    while off < len(buf):
        _U32.pack_into(buf, off + 8, interface_id)
        off += _U32.unpack_from(buf, off + 4)[0]


def first_interface_id(buf: bytes | memoryview) -> int:
    return int(_U32.unpack_from(buf, 8)[0])
