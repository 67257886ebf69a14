"""The benchmark's host side: capture files counted by arithmetic, the table, the plot."""

import struct
from pathlib import Path
from typing import Any

import pytest

from mgctl import pcapng
from mgctl.record import Record, build_record
from tests.bench import capfile, report
from tests.bench.rows import FILTER_1PCT, PORTS, all_rows, select, smoke_rows


def records(n: int, caplen: int = 96) -> bytes:
    return b"".join(build_record(Record(0, i, 124, bytes(caplen))) for i in range(n))


def test_count_pcapng_with_a_trailing_statistics_block(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    pcapng.write_file(str(path), [pcapng.Interface("d0", snaplen=96)], records(37))
    assert capfile.count_packets(str(path)) == 37
    with path.open("ab") as f:
        f.write(pcapng.block(5, bytes(20)))  # an interface statistics block, as dumpcap ends
    assert capfile.count_packets(str(path)) == 37


def test_count_raw_records_and_empty_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(records(5, caplen=60))
    assert capfile.count_packets(str(raw)) == 5
    raw.write_bytes(b"")
    assert capfile.count_packets(str(raw)) == 0


def test_count_pcap_and_refuse_a_truncated_one(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 96, 1)
    rec = struct.pack("<IIII", 0, 0, 96, 124) + bytes(96)
    path.write_bytes(head + rec * 11)
    assert capfile.count_packets(str(path)) == 11
    path.write_bytes(head + rec * 11 + rec[:50])
    with pytest.raises(capfile.BadCapture):
        capfile.count_packets(str(path))


def fake_raw() -> dict[str, Any]:
    base = {"pktgen": 5.3, "null": 5.3, "mgcap": 5.5, "reader": 5.4, "peer": 6.9, "loss": 5.0}
    results = []
    for rep in range(3):
        for row in all_rows():
            us = base[row.group] * (1 + 0.01 * rep) + row.pkt_size / 1e4
            if row.filter:
                us -= 0.1
            r: dict[str, Any] = {
                "key": row.key, "name": row.name, "group": row.group, "rep": rep,
                "pkt_size": row.pkt_size, "threads": row.threads,
                "baseline": row.baseline_key(), "traffic": row.traffic.name,
                "filter": row.filter, "offered": 1000 * row.threads,
                "pps": 1e6 / us, "us_per_packet": us, "usecs": [1000],
            }  # fmt: skip
            if row.make:
                captured = 10 if row.stop_reader or row.filter else 1000 * row.threads
                drops = 1000 * row.threads - captured if row.stop_reader else 0
                filtered: int | None = 1000 * row.threads - captured - drops
                unaccounted: int | None = 0
                if row.group == "peer" and row.filter:  # tcpdump does not count them
                    filtered, unaccounted = None, None
                r |= {"captured": captured, "drops": drops, "filtered": filtered,
                      "unaccounted": unaccounted, "cpu_seconds": 0.1,
                      "detail": {}}  # fmt: skip
            results.append(r)
    facts = {"kernel": "6.1.0-test", "cpus": 2, "cpu": "QEMU TCG", "clocksource": "tsc"}
    return {"facts": facts, "count": 1000, "reps": 3, "results": results}


def test_report_tables_and_plot(tmp_path: Path) -> None:
    text = report.render(fake_raw(), tmp_path, "bench")
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    assert "| mgcap drop + mgdump | 128 | 1 |" in text
    rows = {s.key: s for s in report.summarize(fake_raw()["results"])}
    drop = rows["mgcap drop + mgdump | 128 B | 1 thr"]
    assert drop.added_us == pytest.approx(0.2 * 1.01)  # median rep over the null handler
    assert drop.unaccounted == 0 and drop.reps == 3
    assert "| mgcap drop + mgdump (1 thr) | tcpdump -B 65536 -w |" in text


def test_smoke_rows_are_a_subset_of_every_kind() -> None:
    groups = {r.group for r in smoke_rows()}
    assert groups == {r.group for r in all_rows()}


def test_filter_rows_have_their_own_traffic_and_baselines() -> None:
    rows = {r.key: r for r in all_rows()}
    mg = rows[f'mgcap drop + mgdump "{FILTER_1PCT}" | 128 B | 1 thr | {PORTS.name}']
    assert mg.filter == FILTER_1PCT and mg.traffic is PORTS
    assert mg.baseline_key() == f"null rx_handler, consume | 128 B | 1 thr | {PORTS.name}"
    # the unfiltered row of that traffic is not the default traffic's row
    assert f"mgcap drop + mgdump | 128 B | 1 thr | {PORTS.name}" in rows
    assert "mgcap drop + mgdump | 128 B | 1 thr" in rows
    for row in rows.values():
        base = row.baseline_key()
        assert base is None or (base in rows and rows[base].traffic == row.traffic), row.key
    assert "flag UDPSRC_RND" in PORTS.pktgen


def test_only_selects_the_baselines_too() -> None:
    keys = [r.key for r in select(all_rows(), f'tcpdump.*"{FILTER_1PCT}"')]
    assert keys == [
        f"null rx_handler, pass | 128 B | 1 thr | {PORTS.name}",
        f'tcpdump -B 65536 -w "{FILTER_1PCT}" | 128 B | 1 thr | {PORTS.name}',
    ]
    every = select(all_rows(), "random src ports")
    assert {r.group for r in every} == {"pktgen", "null", "mgcap", "peer"}
    assert all(r.traffic is PORTS for r in every)
    assert select(all_rows(), "^pktgen alone") == [r for r in all_rows() if r.group == "pktgen"]


def test_report_filter_section(tmp_path: Path) -> None:
    text = report.render(fake_raw(), tmp_path, "bench", with_plot=False)
    main, _, filters = text.partition("Capture filters")
    assert PORTS.name not in main and FILTER_1PCT not in main
    assert f"| mgcap drop + mgdump | {PORTS.name}, 128 B, 1 thr | `{FILTER_1PCT}` |" in filters
    rows = {s.key: s for s in report.summarize(fake_raw()["results"])}
    mg = rows[f'mgcap drop + mgdump "{FILTER_1PCT}" | 128 B | 1 thr | {PORTS.name}']
    assert mg.filtered == 990 and mg.unaccounted == 0 and mg.captured == 10
    assert mg.added_us == pytest.approx(0.2 * 1.01 - 0.1)
    td = rows[f'tcpdump -B 65536 -w "{FILTER_1PCT}" | 128 B | 1 thr | {PORTS.name}']
    assert td.filtered is None and td.unaccounted is None
    assert (
        f"| mgcap drop + mgdump | `{FILTER_1PCT}` | tcpdump -B 65536 -w `{FILTER_1PCT}` |"
        in filters
    )
    assert f"| mgcap drop + mgdump | `{FILTER_1PCT}` | mgcap drop + mgdump, no filter |" in filters
