"""mgctl.record.iter_records is linear: walking a buffer never copies the rest of it
(it once sliced ``view[off:]`` for every record, quadratic in the buffer's size).

Checked by what the walk allocates, not by timing it: the peak allocation of a walk
over 16,000 records is that of a walk over 1,000 (a copy of the rest of a 2 MiB
buffer would show as megabytes). Speed itself is the benchmark's business."""

import tracemalloc

from mgctl import uapi
from mgctl.record import Record, build_record, iter_records

ONE = build_record(Record(0, 1_700_000_000_000_000_000, 1514, bytes(96)))


def peak_bytes(n: int) -> int:
    """The most memory allocated at once while walking n records."""
    buf = ONE * n
    tracemalloc.start()
    try:
        got = sum(1 for _ in iter_records(buf))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == n
    return peak


def test_iter_records_is_linear() -> None:
    assert len(ONE) == uapi.record_len(96)
    small, large = peak_bytes(1_000), peak_bytes(16_000)
    assert large < 64 << 10 and large <= 2 * small + 4096, (small, large)


def test_iter_records_takes_a_bytearray_and_a_memoryview() -> None:
    buf = bytearray(ONE * 3)
    assert len(list(iter_records(buf))) == 3
    assert len(list(iter_records(memoryview(buf)[len(ONE) :]))) == 2
