"""Faults while frames flow: pktgen floods both CPUs' receive paths, a reader drains
each ring (one with blocking read(), one through the ring's mapping, waiting in
poll()), and a second, quiet device has a reader asleep in read() and one asleep in
poll(). Then, mid-flood: stop, `set mode` over and over, the devices unregistered,
rmmod tried (and done once the files are closed), the network namespace torn down.

Each test checks what docs/format.md promises the readers (the records already
captured, then end of file / POLLHUP, never an error or a torn record), and the
harness fails the boot on any kernel report (WARN, KASAN, lockdep, ...)."""

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from mgctl.api import Mgcap, MgcapError
from mgctl.chardev import CaptureDevice, RingMap, device_path
from mgctl.record import iter_records
from tests.bench import pktgen as bench_pktgen
from tests.vm.conftest import (
    Module,
    eventually,
    in_netns,
    pg_write,
    pktgen_reset,
    pktgen_setup,
    sh,
    sysctl,
)

pytestmark = pytest.mark.timeout(600)

NS = "mgfns"
FLOOD_DEV = "mgf0"  # receives the flood
QUIET_DEV = "mgf1"  # receives nothing: its readers sleep
RING = 1 << 20


class Flood:
    """pktgen threads 0 and 1 sending to `dev` until stop() (pktgen_setup()'s modes).
    The blocking `start` is written by a thread of its own."""

    def __init__(self, dev: str, mode: str) -> None:
        self.dev = dev
        # a flood: both CPUs busy in pktgen (delay 0), the readers and the test get
        # what the scheduler gives them (each netlink request takes seconds)
        pktgen_setup(dev, threads=2, count=0, xmit_mode=mode)
        self._starter = threading.Thread(target=pg_write, args=("pgctrl", "start"), daemon=True)
        self._starter.start()

    def sent(self) -> int:
        return sum(bench_pktgen.sofar(f"{self.dev}@{t}") for t in (0, 1))

    def stop(self) -> None:
        pg_write("pgctrl", "stop")
        self._starter.join(timeout=60)
        assert not self._starter.is_alive(), "pktgen did not stop"
        pktgen_reset()


class Drain(threading.Thread):
    """One ring's reader until end of file: "read" (blocking read()), "poll" (poll(),
    then a non-blocking read()) or "mmap" (poll(), then the records in place through
    the ring's mapping, released by writing consumer_pos). end: "eof", "hup", "quit"
    (asked to stop), or what went wrong."""

    def __init__(self, path: str, ring: int, how: str) -> None:
        super().__init__(daemon=True)
        self.path, self.ring, self.how = path, ring, how
        self.count = 0
        self.end = ""
        self.quit = threading.Event()
        self.dev = CaptureDevice(path, nonblock=how != "read")
        self.dev.bind(ring)
        self.map: RingMap | None = self.dev.map_ring() if how == "mmap" else None

    def run(self) -> None:
        try:
            self.end = self._loop()
        except Exception as e:  # the test asserts on self.end
            self.end = f"{type(e).__name__}: {e}"

    def _loop(self) -> str:
        while True:
            if self.how == "read":
                data = self.dev.read(1 << 20)
                if not data:
                    return "eof"
                self.count += sum(1 for _ in iter_records(data))
            elif self.how == "poll":
                ev = self.dev.wait(0.5)
                try:
                    data = self.dev.read(1 << 20)
                except BlockingIOError:
                    data = None
                if data == b"":
                    # the end may come between poll()'s timeout and the read(): then
                    # poll() must say so now
                    ev = ev or self.dev.wait(0)
                    assert ev & select.POLLHUP, f"end of file without POLLHUP ({ev:#x})"
                    return "eof"
                if data:
                    self.count += sum(1 for _ in iter_records(data))
            else:
                assert self.map is not None
                ev = self.dev.wait(0.5)
                view = self.map.pending()
                n = len(view)
                if n:
                    self.count += sum(1 for _ in iter_records(bytes(view)))
                view.release()
                self.map.release(n)
                if not n and ev & select.POLLHUP and not len(self.map.pending()):
                    return "hup"
            if self.quit.is_set():
                return "quit"

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        self.dev.close()


@dataclass
class Rig:
    ns: str | None
    flood_dev: str
    inum: int | None
    drains: list[Drain]
    flood: Flood | None = None

    def path(self, ifname: str) -> str:
        return device_path(ifname, self.inum)

    def busy(self) -> list[Drain]:
        return self.drains[:2]

    def sleeping(self) -> list[Drain]:
        return self.drains[2:]


def start_drains(rig: Rig) -> None:
    rig.drains = [
        Drain(rig.path(rig.flood_dev), 0, "read"),
        Drain(rig.path(rig.flood_dev), 1, "mmap"),
        Drain(rig.path(QUIET_DEV), 0, "read"),
        Drain(rig.path(QUIET_DEV), 1, "poll"),
    ]
    for d in rig.drains:
        d.start()


def make_rig(stack: ExitStack, netns: bool) -> Rig:
    """The devices and their captures (ring of 1 MiB per CPU), the readers, the flood
    running: both flooded rings have records before this returns."""
    sh(f"ip netns del {NS}", check=False)
    for d in (FLOOD_DEV, QUIET_DEV, "mgfv0"):
        sh(f"ip link del {d}", check=False)
    if netns:
        # the flood is transmitted on mgfv0 in this namespace; its peer FLOOD_DEV in
        # NS receives it
        sh(f"ip netns add {NS}")
        stack.callback(sh, f"ip netns del {NS}", check=False)
        sh(f"ip link add mgfv0 type veth peer name {FLOOD_DEV} netns {NS}")
        stack.callback(sh, "ip link del mgfv0", check=False)
        sh(f"ip -n {NS} link add {QUIET_DEV} type dummy")
        sysctl("net.ipv6.conf.mgfv0.disable_ipv6", "1")
        sh(f"ip netns exec {NS} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        for d in (FLOOD_DEV, QUIET_DEV, "lo"):
            sh(f"ip -n {NS} link set {d} up")
        sh("ip link set mgfv0 up")
        inum: int | None = os.stat(f"/run/netns/{NS}").st_ino
    else:
        for d in (FLOOD_DEV, QUIET_DEV):
            sh(f"ip link add {d} type dummy")
            stack.callback(sh, f"ip link del {d}", check=False)
            sysctl(f"net.ipv6.conf.{d}.disable_ipv6", "1")
            sh(f"ip link set {d} up")
        inum = None
    with in_netns(NS if netns else None), Mgcap() as m:
        for d in (FLOOD_DEV, QUIET_DEV):
            m.start(d, ring_size=RING)
    rig = Rig(NS if netns else None, FLOOD_DEV, inum, [])
    start_drains(rig)
    stack.callback(close_drains, rig)
    rig.flood = Flood("mgfv0", "start_xmit") if netns else Flood(FLOOD_DEV, "netif_receive")
    stack.callback(stop_flood, rig)
    busy = rig.busy()
    assert eventually(lambda: all(d.count > 200 for d in busy), timeout=60), [
        (d.count, d.end) for d in busy
    ]
    return rig


def stop_flood(rig: Rig) -> None:
    if rig.flood is not None:
        rig.flood.stop()
        rig.flood = None


def close_drains(rig: Rig, keep: tuple[str, ...] = ()) -> None:
    """Ask every reader to finish and close its file. A reader asleep in read() or
    poll() (the quiet device's; a flooded one's once the flood stopped) wakes only at
    the end of its capture: the captures are stopped first, but those in keep."""
    if not rig.drains:
        return
    for d in rig.drains:
        d.quit.set()
    if rig.ns is None or Path(f"/run/netns/{rig.ns}").exists():
        with in_netns(rig.ns), Mgcap() as m:
            for dev in (FLOOD_DEV, QUIET_DEV):
                if dev not in keep:
                    with contextlib.suppress(MgcapError):  # gone with its device
                        m.stop(dev, idempotent=True)
    for d in rig.drains:
        d.join(timeout=60)
        assert not d.is_alive(), (d.path, d.ring, d.how, d.count)
        d.close()
    rig.drains = []


def assert_all_ended(rig: Rig, how: tuple[str, ...] = ("eof", "hup")) -> None:
    """Every reader, busy or asleep, saw the end of its capture within 60 s."""
    for d in rig.drains:
        d.join(timeout=60)
    ends = [(d.path, d.ring, d.how, d.end, d.count) for d in rig.drains]
    assert all(d.end in how for d in rig.drains), ends
    assert all(d.count > 0 for d in rig.busy()), ends
    assert all(d.count == 0 for d in rig.sleeping()), ends


@pytest.fixture
def rig(mgcap: Module) -> Iterator[Rig]:
    mgcap.load()
    with ExitStack() as stack:
        yield make_rig(stack, netns=False)


def test_stop_while_frames_flow(rig: Rig) -> None:
    """dev-stop on both devices mid-flood: the busy readers get the rest of their
    rings then end of file, the sleeping ones wake up to it; both files reopen to
    nothing (the capture is gone)."""
    with Mgcap() as m:
        for d in (FLOOD_DEV, QUIET_DEV):
            assert m.stop(d).changed
    assert_all_ended(rig)
    assert not Path(rig.path(FLOOD_DEV)).exists()
    # the flood goes on into a device that no longer captures
    before = rig.flood.sent() if rig.flood else 0
    assert eventually(lambda: rig.flood is not None and rig.flood.sent() > before + 100)


def test_mode_flips_while_frames_flow(rig: Rig, mgcap: Module) -> None:
    """`set mode` drop/mirror 6 times mid-flood (each request takes seconds with both
    CPUs flooded under TCG): nothing lost in between, each ring's reader got exactly
    what its ring captured, the counters add up ring by ring."""
    with Mgcap() as m:
        for i in range(6):
            m.set(FLOOD_DEV, mode="drop" if i % 2 == 0 else "mirror")
        assert m.show(FLOOD_DEV).mode == "mirror"
    stop_flood(rig)
    busy = rig.busy()
    rings = mgcap.ring_stats(FLOOD_DEV)
    assert eventually(
        lambda: [d.count for d in busy] == [r["captured_packets"] for r in rings], timeout=60
    ), ([d.count for d in busy], rings)
    assert sum(r["seen_packets"] for r in rings) > 400


def test_unregister_while_frames_flow(rig: Rig) -> None:
    """Both devices deleted mid-flood (pktgen loses its device too): every reader ends
    cleanly, the capture and its node are gone, the module unloads."""
    sh(f"ip link del {FLOOD_DEV}")
    sh(f"ip link del {QUIET_DEV}")
    assert_all_ended(rig)
    assert not Path(rig.path(FLOOD_DEV)).exists()
    assert not Path(rig.path(QUIET_DEV)).exists()
    with Mgcap() as m:
        assert m.captures() == []


def test_rmmod_while_frames_flow(rig: Rig, mgcap: Module) -> None:
    """rmmod mid-flood is refused while readers hold files (and changes nothing: the
    readers go on); once the files are closed it succeeds with the flood still on and
    the flooded device still capturing: its rx_handler unhooked under traffic."""
    busy = rig.busy()
    proc = sh("rmmod mgcap", check=False)
    assert proc.returncode != 0 and "in use" in proc.stderr, proc
    counts = [d.count for d in busy]
    assert eventually(lambda: all(d.count > c + 100 for d, c in zip(busy, counts, strict=True)))
    drains = list(rig.drains)
    close_drains(rig, keep=(FLOOD_DEV,))
    # the flooded device's readers were asked to finish; the quiet one's reader asleep
    # in read() saw its end, the one in poll() that or the request to finish
    ends = [d.end for d in drains]
    assert ends[:3] == ["quit", "quit", "eof"] and ends[3] in ("eof", "quit"), ends
    assert Path(rig.path(FLOOD_DEV)).exists()
    sent = rig.flood.sent() if rig.flood else 0
    mgcap.unload()
    assert not Path("/sys/module/mgcap").exists()
    assert eventually(lambda: rig.flood is not None and rig.flood.sent() > sent + 100)


def test_netns_torn_down_while_frames_flow(mgcap: Module) -> None:
    """The capturing namespace deleted mid-flood (veth from this namespace, pktgen
    transmitting): its devices go with it, every reader ends cleanly, nothing is left
    of its captures."""
    mgcap.load()
    with ExitStack() as stack:
        rig = make_rig(stack, netns=True)
        inum = rig.inum
        sh(f"ip netns del {NS}")
        # the veth pair goes when the namespace does (cleanup_net runs in a workqueue)
        assert_all_ended(rig)
        assert eventually(lambda: not Path(f"/dev/mgcap/netns-{inum}").exists(), timeout=60)
        assert eventually(lambda: not Path("/sys/class/net/mgfv0").exists(), timeout=60)


def test_device_moved_to_another_netns_while_frames_flow(rig: Rig) -> None:
    """A flooded device moved to another namespace stops capturing, as when removed
    (docs/format.md): its readers end cleanly; the quiet device captures on."""
    sh(f"ip netns del {NS}2", check=False)
    sh(f"ip netns add {NS}2")
    try:
        sh(f"ip link set {FLOOD_DEV} netns {NS}2")
        busy, sleeping = rig.busy(), rig.sleeping()
        for d in busy:
            d.join(timeout=60)
        assert [d.end for d in busy] == ["eof", "hup"], [(d.end, d.count) for d in busy]
        assert not Path(rig.path(FLOOD_DEV)).exists()
        with Mgcap() as m:
            assert [c.ifname for c in m.captures()] == [QUIET_DEV]
        assert all(d.is_alive() for d in sleeping)
    finally:
        sh(f"ip netns del {NS}2", check=False)


READER = """
import os, sys
from mgctl.chardev import CaptureDevice
dev = CaptureDevice(sys.argv[1])
dev.bind(0)
n = 0
while True:
    n += len(dev.read(1 << 20))
    if n > 100000:
        print("reading", flush=True)
        n = -(1 << 62)
"""


def test_reader_killed_mid_read(rig: Rig, mgcap: Module) -> None:
    """A process reading ring 0 (blocking read(), the flood on) is SIGKILLed: its
    binding goes with its file, a new reader binds ring 0 and reads on, and the
    module unloads afterwards (nothing of the dead reader kept a reference)."""
    rig.drains[0].quit.set()
    rig.drains[0].join(timeout=60)
    assert rig.drains[0].end == "quit"
    rig.drains[0].close()
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, rig.path(FLOOD_DEV)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "reading\n"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    again = Drain(rig.path(FLOOD_DEV), 0, "read")
    rig.drains[0] = again
    again.start()
    assert eventually(lambda: again.count > 200, timeout=60), again.end
