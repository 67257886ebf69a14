"""What a start may take: user namespace admins (unshare -Urn, containers) share a
bounded budget of captures and ring memory, everyone's rings stay below half of the
memory, and a refusal is an error with an extack message, never the OOM killer."""

import contextlib
import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from mgctl.api import Mgcap, MgcapError
from tests.vm.conftest import (
    Module,
    kernel_log_mark,
    kernel_log_since,
    kernel_problems_since,
    mgctl,
    sh,
)

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


# run inside a memory cgroup (argv[1]): its limit set 8 MiB above what it uses, a
# 2 x 1 MiB capture started and stopped, then one of 2 x 64 MiB asked for
CHARGED = """
import json, sys
from pathlib import Path
from mgctl.api import Mgcap, MgcapError
cg = Path(sys.argv[1])
def current():
    return int((cg / "memory.current").read_text())
out = {}
with Mgcap() as m:
    m.captures()  # everything imported and connected before the limit is set
    (cg / "memory.max").write_text(str(current() + (8 << 20)))
    before = current()
    m.start("lo", ring_size=1 << 20)
    out["started"] = current() - before
    m.stop("lo")
    out["stopped"] = current() - before
    try:
        m.start("lo", ring_size=64 << 20)
        out["big"] = "started"
    except MgcapError as e:
        out["big"] = f"{e.code} {e.message}"
    out["after"] = current() - before
print(json.dumps(out))
"""
CGROUP = Path("/sys/fs/cgroup")


@contextlib.contextmanager
def memory_cgroup(name: str) -> Iterator[Path]:
    """A cgroup v2 child with the memory controller (cgroup2 mounted if it is not)."""
    if not (CGROUP / "cgroup.controllers").exists():
        sh(f"mount -t cgroup2 none {CGROUP}")
    assert "memory" in (CGROUP / "cgroup.controllers").read_text().split()
    (CGROUP / "cgroup.subtree_control").write_text("+memory")
    cg = CGROUP / name
    cg.mkdir(exist_ok=True)
    try:
        yield cg
    finally:
        cg.rmdir()


def test_rings_are_charged_to_the_starters_memory_cgroup(mgcap: Module) -> None:
    """A container's rings count against its memory limit (GFP_KERNEL_ACCOUNT): a
    start beyond the limit is refused with ENOMEM and a message, without the OOM
    killer; a stop gives the memory back."""
    mgcap.load()
    mark = kernel_log_mark()
    with memory_cgroup("mgcap-memcg") as cg:
        script = shlex.quote(CHARGED)
        proc = sh(
            f'sh -c \'echo $$ > {cg}/cgroup.procs && exec "$0" "$@"\' '
            f"{sys.executable} -c {script} {cg}",
            timeout=600,
        )
    out = json.loads(proc.stdout)
    # two 1 MiB rings (and their consumer and producer pages) charged at start:
    # memory.current moves in per-CPU batches of 64 pages (MEMCG_CHARGE_BATCH), so it
    # may show up to one batch less (6.1 showed exactly 2 MiB, 6.12 more)...
    assert out["started"] >= 2 * (1 << 20) - 64 * 4096, out
    # ... and uncharged at stop (what else the process allocated meanwhile is small)
    assert out["stopped"] < (1 << 20), out
    assert out["big"].startswith("12 ") and "out of memory for the rings" in out["big"], out
    assert out["after"] < (1 << 20), out
    assert kernel_problems_since(mark) == []
    assert not [ln for ln in kernel_log_since(mark) if "oom" in ln.lower()]
    with Mgcap() as m:
        assert m.captures() == []


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
