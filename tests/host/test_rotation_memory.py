"""A long run with rotation keeps a bounded amount of state: 20,000 -C/-W 3 rotations
hold the names of 3 files, and the memory mgdump's output allocates stays flat."""

import tracemalloc
from pathlib import Path

import pytest

from mgctl import pcapng, uapi
from mgctl.dump import output
from mgctl.dump.naming import Naming
from mgctl.dump.output import Output
from mgctl.record import Record, build_record

IFACES = [pcapng.Interface("lo", snaplen=96)]
ONE = build_record(Record(0, 1_700_000_000_000_000_000, 98, bytes(96)))


def no_statistics() -> list[pcapng.InterfaceStatistics]:
    return []


def one_record_per_file(naming: Naming) -> Output:
    limit = len(pcapng.file_header(IFACES)) + uapi.record_len(96)
    return Output(naming, IFACES, no_statistics, rotate_bytes=limit)


def test_20000_rotations_with_W_keep_memory_flat(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    out = one_record_per_file(Naming(str(path), size_rotation=True, max_files=3))
    for _ in range(1_000):
        out.write_records(ONE, 1)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(19_000):
            out.write_records(ONE, 1)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    out.close()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 16 << 10, f"{grown} bytes more after 19,000 more rotations"
    assert out.files_started == 20_000
    assert out.files == [f"{path}2", f"{path}0", f"{path}1"]  # the last started last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pcapng0", "w.pcapng1", "w.pcapng2"]


def test_without_W_the_names_listed_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "FILES_LISTED", 50)
    out = one_record_per_file(Naming(str(tmp_path / "c"), size_rotation=True))
    for _ in range(55):
        out.write_records(ONE, 1)
    out.close()
    assert out.files_started == 55 and len(list(tmp_path.iterdir())) == 55
    assert out.files == [str(tmp_path / f"c{i}") for i in range(5, 55)]
