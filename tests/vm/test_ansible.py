"""The example playbook runs against the real module, idempotently."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.conftest import ROOT, Module, mgctl_json

PLAYBOOK = ROOT / "docs" / "examples" / "mgcap-playbook.yml"


def play(tmp: Path, **extra: str) -> tuple[int, str]:
    bindir = Path(sys.executable).parent
    env = dict(
        os.environ,
        HOME=str(tmp),
        ANSIBLE_LOCAL_TEMP=str(tmp / "local"),
        ANSIBLE_REMOTE_TEMP=str(tmp / "remote"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="0",
    )
    args = [str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(PLAYBOOK)]
    extra = {"ansible_python_interpreter": sys.executable, "mgctl": str(bindir / "mgctl"), **extra}
    for k, v in extra.items():
        args += ["-e", f"{k}={v}"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", proc.stdout)
    assert m, proc.stdout
    return int(m.group(1)), proc.stdout


@pytest.mark.once(
    slot=0,
    why="mgctl's logic, not the kernel's (three playbook runs cost about five minutes under TCG)",
)
def test_playbook_idempotent(mgcap: Module, tmp_path: Path) -> None:
    """Twice with the same variables: the first run starts capture, the second changes
    nothing. (Each run costs a minute under TCG, so the stopped state is run once.)"""
    mgcap.load()
    changed, _ = play(tmp_path, mgcap_dev="lo", mgcap_mode="drop", mgcap_state="started")
    assert changed == 1
    assert mgctl_json("show dev lo")[0]["mode"] == "drop"
    changed, out = play(tmp_path, mgcap_dev="lo", mgcap_mode="drop", mgcap_state="started")
    assert changed == 0
    assert "lo: capturing True, mode drop" in out
    changed, _ = play(tmp_path, mgcap_dev="lo", mgcap_state="stopped")
    assert changed == 1
    assert mgctl_json("show dev lo")[0]["capturing"] is False
