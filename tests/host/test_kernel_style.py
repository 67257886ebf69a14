"""The kernel sources pass checkpatch.pl (from Debian's linux-source-6.12 tarball)."""

import glob
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
CACHE = ROOT / "build" / "linux-scripts"
NEEDED = ("checkpatch.pl", "spelling.txt", "const_structs.checkpatch")


def checkpatch() -> Path:
    script = CACHE / "scripts" / "checkpatch.pl"
    if script.exists():
        return script
    if not TARBALL.exists():
        pytest.skip("linux-source-6.12 not installed (run .ci/setup)")
    (CACHE / "scripts").mkdir(parents=True, exist_ok=True)
    with tarfile.open(TARBALL) as tar:
        for member in tar:
            name = member.name.split("/", 1)[-1]
            if name.startswith("scripts/") and name.removeprefix("scripts/") in NEEDED:
                member.name = name
                tar.extract(member, CACHE, filter="data")
            if all((CACHE / "scripts" / n).exists() for n in NEEDED):
                break
    return script


def test_checkpatch_strict_clean() -> None:
    files = sorted(glob.glob(str(ROOT / "kernel" / "*.[ch]")))
    files += sorted(glob.glob(str(ROOT / "kernel" / "uapi" / "*.h")))
    files += sorted(glob.glob(str(ROOT / "tests" / "kmod" / "*" / "*.[ch]")))
    proc = subprocess.run(
        ["perl", str(checkpatch()), "--no-tree", "--strict", "--terse", "--show-types",
         # token-pasting macros name their argument twice by design
         "--ignore", "MACRO_ARG_REUSE", "-f", *files],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    problems = [ln for ln in proc.stdout.splitlines() if ": ERROR:" in ln or ": WARNING:" in ln
                or ": CHECK:" in ln]  # fmt: skip
    assert not problems, "\n".join(problems)
