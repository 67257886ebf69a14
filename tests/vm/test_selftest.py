"""tests/selftest/mgcap.sh, the kselftest-style script for machines without Python's
tools: run as its users would, against this boot's module, every TAP line ok."""

import re
import subprocess

from tests.vm.conftest import KO, ROOT, Module

SCRIPT = ROOT / "tests" / "selftest" / "mgcap.sh"


def test_selftest_script_passes(mgcap: Module) -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(KO)], capture_output=True, text=True, timeout=600, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    plan = re.search(r"^1\.\.(\d+)$", proc.stdout, re.M)
    assert plan, out
    oks = re.findall(r"^ok \d+ - ", proc.stdout, re.M)
    assert len(oks) == int(plan.group(1)) == 22, out
    assert "not ok" not in proc.stdout, out
