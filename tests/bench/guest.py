"""The benchmark inside the VM: a dummy device, pktgen, each row several times.

    python -m tests.bench.guest --out raw.json [--reps 3] [--count 200000] [--smoke]

Writes the raw results (one entry per row and repetition) and the machine's facts as
JSON; tests/bench/report.py turns them into the table and the plot.  Needs root,
mgcap.ko and mgnull.ko built for the running kernel ($MGCAP_BUILD).
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.bench import pktgen
from tests.bench.rows import Row, all_rows, select, smoke_rows
from tests.bench.tools import Outcome, mgdump_available

DEV = "d0"
WORK = Path("/tmp/mgbench")
BUILD = Path(os.environ.get("MGCAP_BUILD", "build"))


def sh(cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise RuntimeError(f"{cmd}: {proc.stderr or proc.stdout}")
    return proc.stdout


def setup(ko: Path) -> None:
    sh(f"ip link del {DEV}", check=False)
    sh(f"ip link add {DEV} type dummy")
    Path(f"/proc/sys/net/ipv6/conf/{DEV}/disable_ipv6").write_text("1")
    sh(f"ip link set {DEV} up")
    if not Path("/sys/module/mgcap").exists():
        sh(f"insmod {ko}")
    pktgen.load()
    WORK.mkdir(exist_ok=True)
    if not os.path.ismount(WORK):
        sh(f"mount -t tmpfs -o size=512m mgbench {WORK}")


def teardown() -> None:
    pktgen.reset()
    sh(f"ip link del {DEV}", check=False)
    sh("rmmod mgcap", check=False)
    sh(f"umount {WORK}", check=False)


def facts() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)

    def version(cmd: str) -> str:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
        return (out.stdout + out.stderr).strip().splitlines()[0] if out.stdout + out.stderr else ""

    return {
        "kernel": platform.release(),
        "cpu": model.group(1) if model else "?",
        "cpus": os.cpu_count(),
        "clocksource": Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .read_text()
        .strip(),
        "mgcap_reader": "mgdump" if mgdump_available() else "cat (stand-in for mgdump)",
        "tools": {
            "tcpdump": version("tcpdump --version"),
            "dumpcap": version("dumpcap --version"),
            "netsniff-ng": version("netsniff-ng --version"),
            "xdpdump": version("xdpdump --version"),
        },
    }


class Profile:
    """perf record -a (cpu-clock: TCG has no PMU) around the flood of one row."""

    def __init__(self, out: Path, row: Row) -> None:
        slug = re.sub(r"[^a-z0-9]+", "-", row.key.lower()).strip("-")
        # emulated interrupts are slow: without this the kernel throttles sampling to ~1 Hz
        Path("/proc/sys/kernel/perf_cpu_time_max_percent").write_text("0")
        Path("/proc/sys/kernel/perf_event_max_sample_rate").write_text("10000")
        self.data = out.with_name(f"{out.stem}-perf-{slug}.data")
        self.text = out.with_name(f"{out.stem}-perf-{slug}.txt")
        self.proc = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-c", "500000", "-a", "-o", str(self.data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # perf takes many seconds to start sampling under TCG (it walks /proc first)
        end = time.monotonic() + 60
        while not self.data.exists() and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(15)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        with self.text.open("w") as f:
            for sort in ("sym", "dso,sym"):
                subprocess.run(
                    ["perf", "report", "-i", str(self.data), "--stdio", "--no-children",
                     "--sort", sort, "--percent-limit", "0.3"],
                    stdout=f, stderr=subprocess.DEVNULL, check=False,
                )  # fmt: skip


def reload_mgcap(ko: Path, params: str) -> None:
    sh("rmmod mgcap")
    sh(f"insmod {ko} {params}")


def run_row(row: Row, count: int, ko: Path, perf_out: Path | None = None) -> dict[str, Any]:
    if row.module_params:
        reload_mgcap(ko, row.module_params)
    try:
        return _run_row(row, count, perf_out)
    finally:
        if row.module_params:
            reload_mgcap(ko, "")


def _run_row(row: Row, count: int, perf_out: Path | None) -> dict[str, Any]:
    shutil.rmtree(WORK / "run", ignore_errors=True)
    wd = WORK / "run"
    wd.mkdir()
    if row.hook:
        consume = 1 if row.hook == "consume" else 0
        sh(f"insmod {BUILD / 'mgnull' / 'mgnull.ko'} ifname={DEV} consume={consume}")
    pin = 1 if row.threads == 1 else None  # the generator thread runs on CPU 0
    cap = row.make(DEV, wd, pin) if row.make else None
    outcome = None
    try:
        if cap:
            cap.start()
            cap.mark()
            if row.stop_reader:
                cap.pause()
        prof = Profile(perf_out, row) if perf_out else None
        run = pktgen.run(DEV, count, row.pkt_size, row.threads, row.traffic.pktgen)
        if prof:
            prof.stop()
        if cap:
            if row.stop_reader:
                cap.resume()
            outcome = cap.finish()
    finally:
        if cap:
            cap.kill()
        if row.hook:
            sh("rmmod mgnull")
        if Path(f"/dev/mgcap/{DEV}").exists():
            from mgctl.api import Mgcap

            with Mgcap() as m:
                m.stop(DEV)
    res: dict[str, Any] = {
        "key": row.key,
        "name": row.name,
        "group": row.group,
        "pkt_size": row.pkt_size,
        "threads": row.threads,
        "baseline": row.baseline_key(),
        "traffic": row.traffic.name,
        "filter": row.filter,
        "offered": run.sent,
        "pps": run.pps,
        "us_per_packet": run.us_per_packet,
        "usecs": list(run.usecs),
    }
    if outcome:
        res |= {
            "captured": outcome.captured,
            "drops": outcome.drops,
            "filtered": outcome.filtered,
            "unaccounted": unaccounted(row, run.sent, outcome),
            "cpu_seconds": outcome.cpu_seconds,
            "detail": outcome.detail,
        }
    return res


def unaccounted(row: Row, sent: int, outcome: Outcome) -> int | None:
    """offered - captured - drops - rejected by the filter; None when a filter rejected
    frames that the tool does not count (tcpdump): nothing to check against."""
    if outcome.filtered is None:
        return None if row.filter else sent - outcome.captured - outcome.drops
    return sent - outcome.captured - outcome.drops - outcome.filtered


def progress(res: dict[str, Any]) -> str:
    line = f"{res['key']}: {res['us_per_packet']:.3f} us/pkt"
    if "captured" in res:
        line += f" captured {res['captured']} drops {res['drops']}"
        if res["filter"]:
            line += f" filtered {res['filtered']}"
        line += f" unaccounted {res['unaccounted']} cpu {res['cpu_seconds']:.2f} s"
    return line


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--count", type=int, default=200_000, help="frames per generator thread")
    ap.add_argument("--smoke", action="store_true", help="a few rows, once each")
    ap.add_argument(
        "--only",
        help="regular expression: run only the rows whose key matches (and their baselines)",
    )
    ap.add_argument("--no-xdpdump", action="store_true", help="leave xdpdump out")
    ap.add_argument("--perf", help="regular expression: profile these rows (perf record -a)")
    ap.add_argument("--ko", type=Path, default=BUILD / "kernel" / "mgcap.ko", help="mgcap.ko")
    a = ap.parse_args(argv)
    rows = smoke_rows() if a.smoke else all_rows(xdpdump=not a.no_xdpdump)
    if a.only:
        rows = select(rows, a.only)
    reps = 1 if a.smoke else a.reps
    setup(a.ko)
    results: list[dict[str, Any]] = []
    doc = {"facts": facts() | {"ko": str(a.ko)}, "count": a.count, "reps": reps, "results": results}
    start = time.monotonic()
    try:
        pktgen.run(DEV, min(a.count, 50_000), 128)  # warm-up, not recorded
        for rep in range(reps):
            for row in rows:
                profile = a.perf and rep == 0 and re.search(a.perf, row.key)
                res = run_row(row, a.count, a.ko, a.out if profile else None) | {"rep": rep}
                results.append(res)
                print(f"[{time.monotonic() - start:6.0f}s] rep {rep} {progress(res)}", flush=True)
                a.out.write_text(json.dumps(doc, indent=1))
    finally:
        teardown()
    doc["seconds"] = time.monotonic() - start
    a.out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
