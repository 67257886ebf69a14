"""mgctl.record.iter_records is linear: the time per record does not grow with the
size of the buffer (it once sliced the rest of the buffer for every record)."""

import time

from mgctl import uapi
from mgctl.record import Record, build_record, iter_records

ONE = build_record(Record(0, 1_700_000_000_000_000_000, 1514, bytes(96)))


def per_record_seconds(n: int, rounds: int = 5) -> float:
    """The best of several walks over n records: the least disturbed by other work."""
    buf = ONE * n
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        got = sum(1 for _ in iter_records(buf))
        best = min(best, time.perf_counter() - t0)
        assert got == n
    return best / n


def test_iter_records_is_linear() -> None:
    assert len(ONE) == uapi.record_len(96)
    small = per_record_seconds(1_000)
    large = per_record_seconds(16_000)
    assert large <= 2 * small, f"{large * 1e6:.2f} µs per record at 16,000 vs {small * 1e6:.2f}"


def test_iter_records_takes_a_bytearray_and_a_memoryview() -> None:
    buf = bytearray(ONE * 3)
    assert len(list(iter_records(buf))) == 3
    assert len(list(iter_records(memoryview(buf)[len(ONE) :]))) == 2
