"""The kernel sources pass checkpatch.pl (from Debian's linux-source-6.12 tarball)."""

import glob
import subprocess
from pathlib import Path

import pytest

from tests.harness import kernel_tools

ROOT = Path(__file__).resolve().parents[2]


def checkpatch() -> Path:
    try:
        return kernel_tools.checkpatch()
    except FileNotFoundError as e:
        pytest.skip(str(e))


def test_checkpatch_strict_clean() -> None:
    files = sorted(glob.glob(str(ROOT / "kernel" / "*.[ch]")))
    files += sorted(glob.glob(str(ROOT / "kernel" / "uapi" / "mgcap.h")))
    files += sorted(glob.glob(str(ROOT / "tests" / "kmod" / "*" / "*.[ch]")))
    assert len(files) > 10, files
    proc = subprocess.run(
        ["perl", str(checkpatch()), "--no-tree", "--strict", "--terse", "--show-types",
         # token-pasting macros name their argument twice by design
         "--ignore", "MACRO_ARG_REUSE", "-f", *files],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    problems = [ln for ln in proc.stdout.splitlines() if ": ERROR:" in ln or ": WARNING:" in ln
                or ": CHECK:" in ln]  # fmt: skip
    assert not problems, "\n".join(problems)
    # and its own verdict: the status is non-zero for any report or a failure of its
    # own (a bad option, a perl error); a file it cannot read shows on stderr only
    assert proc.returncode == 0 and not proc.stderr, proc.stdout + proc.stderr
