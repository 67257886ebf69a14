"""What a start may take: user namespace admins (unshare -Urn, containers) share a
bounded budget of captures and ring memory, everyone's rings stay below half of the
memory, and a refusal is an error with an extack message, never the OOM killer."""

import json
import shlex
import sys
from pathlib import Path

from mgctl.api import Mgcap, MgcapError
from tests.vm.conftest import Module, mgctl, sh

PARAMS = Path("/sys/module/mgcap/parameters")
GIB = 1 << 30

# run by `unshare -Urn python -c`: start capture on each dummy, print what happened
STARTER = """
import json, subprocess, sys
from mgctl.api import Mgcap, MgcapError
out = []
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for i in range(int(sys.argv[1])):
    subprocess.run(["ip", "link", "add", f"mgu{i}", "type", "dummy"], check=True)
    try:
        with Mgcap() as m:
            m.start(f"mgu{i}", ring_size=64 << 10)
        out.append("ok")
    except MgcapError as e:
        out.append(f"{e.code} {e.message}")
print(json.dumps(out))
"""


def in_userns(args: str) -> str:
    return f"unshare -Urn {args}"


def test_a_user_namespace_cannot_take_a_gib_ring(mgcap: Module) -> None:
    mgcap.load()
    proc = mgctl("start dev lo ring-size 1073741824", pre="unshare -Urn ")
    assert proc.returncode != 0
    assert "userns_max_ring_mb" in proc.stderr, proc.stderr
    assert "Out of memory" not in sh("dmesg").stdout
    with Mgcap() as m:
        assert m.captures() == []


def test_user_namespaces_share_a_bounded_number_of_captures(mgcap: Module) -> None:
    mgcap.load()
    (PARAMS / "userns_max_captures").write_text("3")
    sh("modprobe dummy")
    script = shlex.quote(STARTER)
    proc = sh(in_userns(f"{sys.executable} -c {script} 4"), timeout=600)
    results = json.loads(proc.stdout)
    assert results[:3] == ["ok"] * 3
    assert results[3].startswith("28 ") and "userns_max_captures" in results[3]  # ENOSPC
    # the init namespace's admin is not bound by it
    sh("ip link add mgu-root type dummy")
    try:
        with Mgcap() as m:
            m.start("mgu-root", ring_size=64 << 10)
            m.stop("mgu-root")
    finally:
        sh("ip link del mgu-root")


def test_rings_stay_below_half_of_the_memory(mgcap: Module) -> None:
    """2 GiB of rings (1 GiB per CPU) on a 2 GiB machine: refused before anything is
    allocated, by the root of the initial namespace too."""
    mgcap.load()
    mem = (
        int(
            next(
                x
                for x in Path("/proc/meminfo").read_text().splitlines()
                if x.startswith("MemTotal")
            ).split()[1]
        )
        << 10
    )
    cpus = len(list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")))
    assert cpus * GIB > mem // 2, "the VM is larger than this test assumes"
    with Mgcap() as m:
        try:
            m.start("lo", ring_size=GIB)
        except MgcapError as e:
            assert "half of the memory" in e.message
        else:
            raise AssertionError("a 1 GiB ring per CPU started")
        assert m.captures() == []
