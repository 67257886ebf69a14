"""The benchmark (tests/bench) in miniature, so that it cannot rot: every kind of row
and every peer tool once with a few thousand frames, the accounting exact on every
row that captures (captured + counted drops = sent), the table rendered."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench import report
from tests.bench.rows import smoke_rows
from tests.vm.conftest import Module

# the peer tools of the smoke run (tests/bench/rows.py smoke_rows()), by row name
PEERS = ("tcpdump -B 65536 -w", "dumpcap -B 64 -w", "netsniff-ng (whole frames)",
         "xdpdump (libpcap mode)")  # fmt: skip


def assert_accounted(results: list[dict[str, Any]], offered: int) -> None:
    """Every row sent `offered` frames; every row that captures (each tool's and
    mgcap's: pktgen and the null hooks capture and count nothing) has every frame
    sent in the tool's output or counted as dropped (by the tool, from its socket's
    counters, or by mgcap and mgdump), exactly. No smoke row filters, so nothing is
    left to a filter. Every peer tool has its row."""
    capturing = [r for r in results if r["group"] not in ("pktgen", "null")]
    assert sorted(r["name"] for r in capturing if r["group"] == "peer") == sorted(PEERS)
    for r in results:
        assert r["offered"] == offered, r
        assert r["us_per_packet"] > 0, r
        assert ("captured" in r) == (r in capturing), r
    for r in capturing:
        assert r["filter"] is None and r["filtered"] in (None, 0), r
        assert r["captured"] + r["drops"] == r["offered"], r
        assert r["unaccounted"] == 0, r


@pytest.mark.once(
    slot=0,
    why="the benchmark's plumbing, not the kernel's (it costs minutes of a boot under TCG)",
)
def test_bench_smoke(mgcap: Module, tmp_path: Path) -> None:
    raw_path = tmp_path / "raw.json"
    # its own process group: on a timeout or a failure here, the tools it started
    # (tcpdump, mgdump, ...) are killed with it
    bench = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.guest", "--smoke", "--count", "3000",
         "--out", str(raw_path)],
        start_new_session=True,
    )  # fmt: skip
    try:
        assert bench.wait(timeout=600) == 0
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
    raw = json.loads(raw_path.read_text())
    results = {r["name"]: r for r in raw["results"]}
    assert len(results) == len(raw["results"]) == len(smoke_rows())
    assert_accounted(raw["results"], 3000)
    assert results["mgcap drop + mgdump"]["captured"] == 3000
    assert results["mgcap drop + cat >/dev/null"]["captured"] == 3000
    loss = next(r for r in raw["results"] if r["group"] == "loss")
    assert loss["drops"] > 0 and loss["captured"] > 0
    assert loss["captured"] + loss["drops"] == 3000
    text = report.render(raw, tmp_path, "smoke", with_plot=False)
    assert "mgcap drop + mgdump" in text
