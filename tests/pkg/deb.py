"""Build the mgcap-dkms Debian package (debian/) into a scratch directory.

    python -m tests.pkg.deb OUTDIR     # prints the path of the .deb

dpkg-buildpackage writes its results beside the source tree, so the tree is
copied first: kernel/ as it is in the checkout (with the objects of any
earlier build in it, which the package must leave out) and debian/.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "mgcap-dkms"


def version() -> str:
    return (ROOT / "kernel" / "VERSION").read_text().strip()


def changelog_version(changelog: Path) -> str:
    """The version of the newest entry of a debian/changelog."""
    first = changelog.read_text().splitlines()[0]
    m = re.fullmatch(r"[a-z0-9.+-]+ \(([^)]+)\) [^;]+; urgency=\w+", first)
    if m is None:
        raise ValueError(f"{changelog}: first line is not a changelog entry: {first!r}")
    return m.group(1)


def build_deb(outdir: Path, kernel: Path = ROOT / "kernel") -> Path:
    """Build mgcap-dkms from `kernel` and ROOT/debian into outdir; returns the .deb."""
    src = outdir / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    shutil.copytree(kernel, src / "kernel", symlinks=True)
    shutil.copytree(ROOT / "debian", src / "debian", symlinks=True)
    proc = subprocess.run(
        ["dpkg-buildpackage", "-us", "-uc", "-b"],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    (outdir / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(
            f"dpkg-buildpackage failed ({proc.returncode}), see {outdir}/build.log:\n"
            + (proc.stdout + proc.stderr)[-3000:]
        )
    deb = outdir / f"{PACKAGE}_{version()}_all.deb"
    if not deb.is_file():
        raise RuntimeError(f"dpkg-buildpackage made no {deb.name} in {outdir}")
    return deb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("outdir", type=Path)
    args = ap.parse_args()
    try:
        print(build_deb(args.outdir.resolve()))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        sys.exit(f"deb: {e}")


if __name__ == "__main__":
    main()
