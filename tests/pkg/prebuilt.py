"""The mgcap-dkms package and the modules its DKMS install built on this host,
for the VM test (tests/vm/test_dkms.py), made before the guests boot.

    python -m tests.pkg.prebuilt OUTDIR   # prints OUTDIR once it holds both

OUTDIR gets mgcap-dkms_<version>_all.deb and mgcap-<version>-<kernel>.dkms.tar.gz
(tests/pkg/dkms-prebuild.sh). Kept while kernel/, debian/ and the two scripts
are unchanged (a hash of their contents), since the install takes about a
minute.
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from tests.pkg.deb import PACKAGE, ROOT, build_deb, version

SCRIPT = ROOT / "tests" / "pkg" / "dkms-prebuild.sh"
INPUTS = ("kernel", "debian", "tests/pkg/dkms-prebuild.sh", "tests/pkg/deb.py")
SKIP = (".o", ".ko", ".cmd", ".mod", ".mod.c", ".d", ".symvers", ".order")


def sources_hash() -> str:
    h = hashlib.sha256()
    for name in INPUTS:
        top = ROOT / name
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.is_file() and not path.name.endswith(SKIP):
                h.update(f"{path.relative_to(ROOT)}\0".encode() + path.read_bytes() + b"\0")
    return h.hexdigest()


def tarball(outdir: Path, kernel: str) -> Path:
    return outdir / f"mgcap-{version()}-{kernel}.dkms.tar.gz"


def deb(outdir: Path) -> Path:
    return outdir / f"{PACKAGE}_{version()}_all.deb"


def prepare(outdir: Path) -> Path:
    stamp = outdir / "sources.sha256"
    key = sources_hash()
    if stamp.exists() and stamp.read_text() == key and list(outdir.glob("*.dkms.tar.gz")):
        return outdir
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    built = build_deb(outdir / "deb")
    proc = subprocess.run(
        ["sh", str(SCRIPT), str(built), str(outdir)],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not list(outdir.glob("*.dkms.tar.gz")) or not deb(outdir).exists():
        raise RuntimeError(f"dkms-prebuild failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    stamp.write_text(key)
    return outdir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("outdir", type=Path)
    args = ap.parse_args()
    try:
        print(prepare(args.outdir.resolve()))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        sys.exit(f"prebuilt: {e}")


if __name__ == "__main__":
    main()
