"""Build mgcap.ko (and test-only modules) for one kernel, failing on any warning.

Sources are copied to build/<kernel>/<module dir> so that builds for several
kernels never share object files.  W=1 always, sparse (C=1) when installed.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# $MGCAP_BUILD_ROOT lets two checkouts' runs keep their builds and logs apart
BUILD = Path(os.environ.get("MGCAP_BUILD_ROOT", ROOT / "build"))
# the debug kernel's tree (tests/harness/debug_kernel.py), "debug" in --kernel
DEBUG = "debug"
DEBUG_TREE = BUILD / "debug-kernel" / "linux"


def kdir(kernel: str) -> Path:
    """The tree to build modules against: Debian's headers, or the debug kernel's."""
    return DEBUG_TREE if kernel == DEBUG else Path(f"/lib/modules/{kernel}/build")


def build_module(src: Path, kernel: str, *, sparse: bool = True) -> Path:
    """Build the Kbuild module in src against kernel; returns the directory holding the .ko."""
    out = BUILD / kernel / src.name
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("*.o", "*.ko", ".*.cmd", "*.mod*"))
    cmd = ["make", "-C", str(out), f"KDIR={kdir(kernel)}", "W=1"]
    if sparse and shutil.which("sparse"):
        cmd.append("C=1")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log)
    bad = [
        line
        for line in log.splitlines()
        if "warning:" in line or "error:" in line or line.startswith("WARNING:")
    ]
    if proc.returncode != 0 or bad:
        sys.stderr.write(log)
        raise SystemExit(f"build of {src.name} for {kernel} failed or warned ({out}/build.log)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kernel")
    ap.add_argument("dirs", nargs="*", default=["kernel"])
    args = ap.parse_args()
    for d in args.dirs:
        print(build_module(ROOT / d, args.kernel))


if __name__ == "__main__":
    main()
