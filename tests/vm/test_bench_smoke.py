"""The benchmark (tests/bench) in miniature, so that it cannot rot: every kind of row
once with a few thousand frames, the accounting exact, the table rendered."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import report
from tests.bench.rows import smoke_rows
from tests.vm.conftest import Module


@pytest.mark.once(
    slot=0,
    why="the benchmark's plumbing, not the kernel's (it costs minutes of a boot under TCG)",
)
def test_bench_smoke(mgcap: Module, tmp_path: Path) -> None:
    raw_path = tmp_path / "raw.json"
    subprocess.run(
        [sys.executable, "-m", "tests.bench.guest", "--smoke", "--count", "3000",
         "--out", str(raw_path)],
        check=True, timeout=600,
    )  # fmt: skip
    raw = json.loads(raw_path.read_text())
    results = {r["name"]: r for r in raw["results"]}
    assert len(results) == len(raw["results"]) == len(smoke_rows())
    for r in results.values():
        assert r["offered"] == 3000, r
        assert r["us_per_packet"] > 0
        if r["group"] in ("mgcap", "reader", "loss"):
            # every frame is either captured or counted as dropped, exactly
            assert r["unaccounted"] == 0, r
    assert results["mgcap drop + mgdump"]["captured"] == 3000
    assert results["mgcap drop + cat >/dev/null"]["captured"] == 3000
    loss = next(r for r in raw["results"] if r["group"] == "loss")
    assert loss["drops"] > 0 and loss["captured"] > 0
    assert loss["captured"] + loss["drops"] == 3000
    text = report.render(raw, tmp_path, "smoke", with_plot=False)
    assert "mgcap drop + mgdump" in text
