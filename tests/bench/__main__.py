"""Benchmark mgcap against its peers: one VM boot per kernel, a table, JSON and a plot.

    python -m tests.bench                          # kernel 6.1, 3 repetitions
    python -m tests.bench --kernel 6.12 --reps 5 --count 500000
    python -m tests.bench --only 'mgcap|null'      # some rows (and their null baselines)
    python -m tests.bench --only 'random src ports'   # the capture filter rows
    python -m tests.bench --report build/bench/bench-6.1.0-56-amd64.raw.json
    python -m tests.bench --only mgcap --mgcap-rev a91b11c   # an older mgcap.ko

Needs root (the VM).  Other VMs running at the same time make the numbers worthless:
wrap the command in `flock /work/vm.lock` on a shared machine.  The guest boots
without the test suite's memory debugging (slub_debug, KFENCE), which would add
allocator cost to every pktgen frame, and with the TSC as its clock.  Results:
build/bench/bench-<kernel>.{md,json,png} and the raw per-repetition results in
bench-<kernel>.raw.json.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.bench import report
from tests.harness import kernels, vmrun
from tests.harness.build import BUILD, ROOT, build_module

# tsc=reliable: under TCG the kernel distrusts the TSC and falls back to the HPET, whose
# every read is an emulated MMIO access (~0.5 µs), paid once per frame by every tool that
# timestamps; real machines read the TSC.  docs/performance.md shows both.
APPEND = "panic_on_warn=1 panic=-1 tsc=reliable"


def guest_command(args: argparse.Namespace) -> str:
    cmd = ["python", "-m", "tests.bench.guest", "--reps", str(args.reps),
           "--count", str(args.count)]  # fmt: skip
    if args.only:
        cmd += ["--only", args.only]
    if args.no_xdpdump:
        cmd.append("--no-xdpdump")
    if args.smoke:
        cmd.append("--smoke")
    if args.perf:
        cmd += ["--perf", args.perf]
    if args.ko:
        cmd += ["--ko", str(args.ko)]
    return shlex.join(cmd) + ' --out "$MGCAP_OUT/raw.json"'


def build_rev(rev: str, kernel: str) -> Path:
    """mgcap.ko from kernel/ as of git revision rev, built in build/<kernel>/mgcap-<rev>."""
    src = BUILD / "src" / f"mgcap-{rev}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "kernel"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src), "--strip-components=1"], input=archive, check=True)
    return build_module(src, kernel) / "mgcap.ko"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kernel", action="append", default=[], help="6.1 (default), 6.12, all")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--count", type=int, default=200_000, help="frames per generator thread")
    ap.add_argument("--only", help="regular expression over the row keys (baselines run too)")
    ap.add_argument("--no-xdpdump", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="a few rows, once")
    ap.add_argument("--out", type=Path, default=BUILD / "bench")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per kernel")
    ap.add_argument("--report", type=Path, help="only render this raw JSON")
    ap.add_argument("--perf", help="profile the rows matching this (perf-*.txt next to the JSON)")
    ap.add_argument("--mgcap-rev", help="measure mgcap.ko as of this git revision")
    args = ap.parse_args()
    if args.report:
        raw = json.loads(args.report.read_text())
        print(report.render(raw, args.out, f"bench-{raw['facts']['kernel']}"))
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (the VM)")
    ok = True
    for kernel in kernels.resolve(args.kernel or ["6.1"]):
        args.ko = build_rev(args.mgcap_rev, kernel) if args.mgcap_rev else None
        # a thread per vCPU: the benchmark boots alone, and its floods run on both
        # vCPUs at once (the test suite's boots share the cores: vmrun.TCG_THREAD)
        if not vmrun.run_kernel(
            kernel, guest_command(args), args.timeout, None, append=APPEND, tcg="multi"
        ):
            ok = False
        raw_path = BUILD / kernel / "vm" / "raw.json"
        if not raw_path.exists():
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy(raw_path, args.out / f"bench-{kernel}.raw.json")
        for prof in raw_path.parent.glob("raw-perf-*.txt"):
            shutil.copy(prof, args.out / f"bench-{kernel}-{prof.name.removeprefix('raw-')}")
        print(report.render(json.loads(raw_path.read_text()), args.out, f"bench-{kernel}"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
