"""What an unprivileged or foreign caller cannot do: a non-root uid is refused every
operation but dev-get (reads), the monitor group of one namespace hears nothing of
another, and bad ioctls and mappings get errors (the harness fails the boot on a
WARN)."""

import errno
import fcntl
import json
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from mgctl import spec, uapi
from mgctl.api import Mgcap
from mgctl.chardev import PAGE_SIZE, CaptureDevice, device_path
from mgctl.record import iter_records
from tests.vm.conftest import Module, Pktgen, eventually, in_netns, sh
from tests.vm.test_mgctl import Lines, subscribed

NOBODY = 65534
# what a request of each operation carries (enough to get past the policy)
REQUESTS = {
    "dev-start": {"ring_size": 1 << 16},
    "dev-stop": {},
    "dev-set": {"mode": uapi.MODE_DROP},
    "hwtstamp-get": {},
    "hwtstamp-set": {"hwtstamp_rx": 0},
}


def test_every_operation_but_reads_is_refused_to_a_non_root_uid(mgcap: Module, dummy: str) -> None:
    """uid 65534 without capabilities (not root without CAP_NET_ADMIN: a real other
    user): each operation of the spec that changes something, or talks to a driver,
    fails with EPERM and changes nothing; dev-get answers."""
    ops = spec.family().operations.values()
    do_ops = {op.name for op in ops if op.mcgrp is None and op.notify is None}
    assert do_ops == set(REQUESTS) | {"dev-get"}, "a new operation: say what it needs"
    mgcap.load()
    with Mgcap() as m:
        m.start(dummy)
        before = m.show(dummy).to_json()
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nobody, no capabilities
        os.close(rd)
        out: dict[str, object] = {}
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with Mgcap() as child:
                for op, attrs in {**REQUESTS, "dev-get": {}}.items():
                    try:
                        child.nl.do(op, ifname=dummy, **attrs)
                        out[op] = 0
                    except NetlinkError as e:
                        out[op] = e.code
        except BaseException as e:
            out["error"] = repr(e)
        os.write(wr, json.dumps(out).encode())
        os._exit(0)
    os.close(wr)
    with os.fdopen(rd) as f:
        got = json.load(f)
    os.waitpid(pid, 0)
    assert got == {**dict.fromkeys(REQUESTS, errno.EPERM), "dev-get": 0}
    with Mgcap() as m:
        assert m.show(dummy).to_json() == before
        m.stop(dummy)


def test_monitor_hears_only_its_own_namespace(mgcap: Module, dummy: str) -> None:
    """A monitor in namespace mgsec: captures started and stopped in the initial
    namespace reach it not at all, its own namespace's do (the first events it
    prints are its own lo's, though the others happened first)."""
    mgcap.load()
    ns = "mgsec"
    sh(f"ip netns del {ns}", check=False)
    sh(f"ip netns add {ns} && ip -n {ns} link set lo up")
    exe = Path(sys.executable).with_name("mgctl")
    mon = subprocess.Popen(
        ["ip", "netns", "exec", ns, str(exe), "-j", "monitor"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert eventually(lambda: subscribed(mon.pid), timeout=120)
        with Mgcap() as m:
            m.start(dummy)
            m.set(dummy, mode="drop")
            m.stop(dummy)
        with in_netns(ns), Mgcap() as m:
            m.start("lo")
            m.stop("lo")
        assert mon.stdout is not None
        lines = Lines(mon.stdout)
        events = [json.loads(lines.take()) for _ in range(2)]
        assert [(e["event"], e["ifname"]) for e in events] == [("start", "lo"), ("stop", "lo")]
    finally:
        mon.terminate()
        mon.wait(timeout=60)
        sh(f"ip netns del {ns}", check=False)


def test_sysfs_lists_each_namespace_its_own_captures(mgcap: Module) -> None:
    """/sys/class/mgcap in a sysfs of the initial netns lists its captures only, and
    a sysfs mounted in another netns (ip netns exec mounts one) lists only that
    namespace's, with their counters: a container cannot read the host's filters."""
    mgcap.load(ifname="lo")
    ns = "mgY"
    sh(f"ip netns add {ns}")
    try:
        sh(f"ip netns exec {ns} ip link add mgy0 type dummy")
        with in_netns(ns), Mgcap() as m:
            m.start("mgy0", ring_size=64 << 10)
        inum = os.stat(f"/run/netns/{ns}").st_ino
        assert sorted(p.name for p in Path("/sys/class/mgcap").iterdir()) == ["lo"]
        inside = sh(f"ip netns exec {ns} ls /sys/class/mgcap").stdout.split()
        assert inside == [f"netns-{inum}:mgy0"]
        seen = sh(f"ip netns exec {ns} cat /sys/class/mgcap/{inside[0]}/statistics/seen_packets")
        assert seen.stdout.strip() == "0"
        with in_netns(ns), Mgcap() as m:
            m.stop("mgy0")
    finally:
        sh(f"ip netns del {ns}")


def test_bad_ioctls_and_mappings_get_errors(mgcap: Module, dummy: str) -> None:
    mgcap.load(ifname=dummy, ring_size=1 << 16)
    with CaptureDevice(device_path(dummy), nonblock=True) as dev:
        fd = dev.fileno()
        cases = {
            "unknown command": (uapi._ioc(uapi._IOC_READ, 99, 8), bytes(8)),
            "other magic": (0x8912, bytes(8)),  # SIOCGIFCONF's number
            "bind to no such CPU": (uapi.IOC_BIND_RING, (4096).to_bytes(4, "little")),
        }
        want = {"unknown command": errno.ENOTTY, "other magic": errno.ENOTTY}
        want["bind to no such CPU"] = errno.EINVAL
        for what, (cmd, arg) in cases.items():
            with pytest.raises(OSError) as e:
                fcntl.ioctl(fd, cmd, arg)
            assert e.value.errno == want[what], what
        # bad pointers: an int argument is passed as the address itself
        for cmd in (uapi.IOC_GET_INFO, uapi.IOC_GET_STATS, uapi.IOC_BIND_RING, uapi.IOC_SET_IFID):
            # (-4096: the last page of the address space, a kernel address)
            for addr in (0, 1, -4096):
                with pytest.raises(OSError) as e:
                    fcntl.ioctl(fd, cmd, addr)
                assert e.value.errno == errno.EFAULT, (hex(cmd), addr)
        dev.bind(0)
        ring = dev.info().ring_size
        bad_maps = {
            "longer than the ring's pages": (PAGE_SIZE + 2 * ring + PAGE_SIZE, PAGE_SIZE, True),
            "an offset past them": (PAGE_SIZE, 2 * PAGE_SIZE + 2 * ring, True),
            "a private consumer page": (PAGE_SIZE, 0, False),
        }
        for what, (length, offset, shared) in bad_maps.items():
            flags = mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE
            with pytest.raises(OSError) as e:
                mmap.mmap(fd, length, flags, mmap.PROT_READ, offset=offset)
            assert e.value.errno == errno.EINVAL, what
        # and the file still works
        Pktgen(dummy).run(count=3)
        assert len(list(iter_records(dev.read_all(0.5)))) == 3
