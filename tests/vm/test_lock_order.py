"""The character device's lock order, tested by building the interleaving that
would deadlock if it were wrong (lockdep found it once on the debug kernel; this
test makes it happen on any kernel).

read() copies records to user space under the ring's consumer lock, and the copy
may fault; here the fault waits on a userfaultfd page until the scenario resolves
it. Meanwhile one thread rebinds the same file to another ring (which gives the old
ring back: it needs that consumer lock) and another mmap()s the file (mmap_lock,
then the file's lock). Resolving the fault needs mmap_lock. With a consumer lock
taken under the file's lock (the bug fixed in 96d524b) the four wait on each other
for ever; with the right order the mmap goes through, the fault is resolved, the
read returns its records and the rebind completes.

The scenario runs in a process of its own (tests/vm/lock_order_scenario.py): a
deadlocked process cannot report, so this test does, from each stuck thread's
kernel stack.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mgctl import uapi
from mgctl.chardev import device_path
from tests.vm.conftest import Module, Pktgen

pytestmark = pytest.mark.timeout(300)
RECORDS = 5
PATIENCE = 150  # seconds; the scenario needs a few under TCG when the order is right


def stuck_threads(pid: int, log: str) -> dict[str, str]:
    """name -> state and kernel stack of each scenario thread still alive."""
    out = {}
    for line in log.splitlines():
        if line.startswith("tid "):
            _, name, tid = line.split()
            task = Path(f"/proc/{pid}/task/{tid}")
            try:
                state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                stack = (task / "stack").read_text()
            except FileNotFoundError:
                continue
            frames = [f.split("+")[0].split()[-1] for f in stack.splitlines()[:6]]
            out[name] = f"{state}: {' < '.join(frames)}"
    return out


def test_read_faulting_under_the_consumer_lock_blocks_no_mmap(
    mgcap: Module, dummy: str, tmp_path: Path
) -> None:
    mgcap.load(ifname=dummy)
    assert Pktgen(dummy).run(count=RECORDS) == RECORDS  # kpktgend_0: ring 0
    log = tmp_path / "scenario.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.vm.lock_order_scenario", device_path(dummy)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            stdout, _ = proc.communicate(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            stuck = stuck_threads(proc.pid, log.read_text())
            # a deadlocked process cannot be killed: it stays, and so does the module
            pytest.fail(f"deadlock: {stuck}")
    assert proc.returncode == 0, log.read_text()
    out = json.loads(stdout)
    assert out == {
        "errors": [],
        "read": RECORDS * uapi.record_len(96),
        "bound_ring": 1,
        "mapped": True,
    }, log.read_text()
