"""Captures tied to the netlink socket that started them (dev-start socket-owner):
mgdump's captures end when mgdump is SIGKILLed, a capture started by mgctl start
stays, a raw socket's capture ends when the socket closes, and neither an earlier
dev-stop nor an rmmod before the close breaks anything."""

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgctl.api import DevState, Mgcap
from tests.vm.conftest import Module, VethPair, eventually, in_netns, run_mgctl
from tests.vm.rawgenl import RawGenl, attr, attrs, string

TIMEOUT = 300
MGDUMP = Path(sys.executable).with_name("mgdump")


def state(ifname: str) -> DevState:
    with Mgcap() as m:
        return m.show(ifname)


def gone(ifname: str) -> bool:
    return not state(ifname).capturing and not Path(f"/dev/mgcap/{ifname}").exists()


class Mgdump:
    """mgdump as a separate process (it is to be killed), its stderr collected."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [MGDUMP, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_listening(self, ifname: str) -> None:
        """mgdump's "listening on" line: the capture runs, the readers are bound."""
        ok = eventually(
            lambda: (
                any(f"listening on {ifname}," in x for x in self.lines)
                or self.proc.poll() is not None
            ),
            timeout=TIMEOUT,
        )
        assert ok and self.proc.poll() is None, "".join(self.lines)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=TIMEOUT) == -signal.SIGKILL


@pytest.fixture
def loaded(mgcap: Module) -> Iterator[Module]:
    mgcap.load()
    yield mgcap


class Udp:
    """Datagrams from the namespace to veth.dev:9997, and the socket receiving them."""

    def __init__(self, veth: VethPair) -> None:
        self.dst = (veth.addr, 9997)
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(self.dst)
        with in_netns(veth.ns):
            self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, count: int) -> None:
        for i in range(count):
            self.tx.sendto(i.to_bytes(4, "big"), self.dst)

    def received(self, count: int) -> int:
        """Up to count datagrams, waiting for each at most 30 s."""
        self.rx.settimeout(30)
        got = 0
        with contextlib.suppress(TimeoutError):
            while got < count:
                self.rx.recv(64)
                got += 1
        return got

    def pending(self) -> bool:
        try:
            self.rx.recv(64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


def test_mgdump_killed_its_capture_stops(loaded: Module, veth: VethPair, tmp_path: Path) -> None:
    """SIGKILL cannot be caught: the kernel stops the drop-mode capture mgdump started,
    and the device delivers to the stack again."""
    udp = Udp(veth)
    dump = Mgdump(["-i", veth.dev, "--mode", "drop", "-w", str(tmp_path / "k.pcapng")])
    try:
        dump.wait_listening(veth.dev)
        s = state(veth.dev)
        assert s.capturing and s.mode == "drop" and s.owner_portid is not None
        udp.send(5)  # consumed by the capture: the socket gets none
        assert eventually(lambda: loaded.stat(veth.dev, "consumed_packets") == 5)
        assert not udp.pending()
        dump.kill()
        assert eventually(lambda: gone(veth.dev), timeout=TIMEOUT), state(veth.dev)
        udp.send(20)
        assert udp.received(20) == 20
    finally:
        if dump.proc.poll() is None:
            dump.proc.kill()
        udp.close()


def test_capture_started_by_mgctl_stays(loaded: Module, veth: VethPair, tmp_path: Path) -> None:
    """mgdump on two devices, one already captured by `mgctl start` (left as found), one
    started by mgdump: SIGKILL stops only the latter. Its stop shows the kernel has
    handled the socket's release, so the other one's survival is no matter of time."""
    assert run_mgctl("start dev lo").returncode == 0
    assert state("lo").owner_portid is None
    dump = Mgdump(["-i", "lo", "-i", veth.dev, "-w", str(tmp_path / "two.pcapng")])
    try:
        dump.wait_listening(veth.dev)
        assert state(veth.dev).owner_portid is not None
        dump.kill()
    finally:
        if dump.proc.poll() is None:
            dump.proc.kill()
    assert eventually(lambda: gone(veth.dev), timeout=TIMEOUT)
    assert state("lo").capturing and Path("/dev/mgcap/lo").exists()
    assert run_mgctl("stop dev lo").returncode == 0


def owned_start(g: RawGenl, ifname: str) -> int:
    """dev-start with socket-owner on g: the owner-portid of the reply."""
    body = string(g.dev_attr("ifname"), ifname) + attr(g.dev_attr("socket-owner"), b"")
    replies, ack = g.request("dev-start", body)
    assert ack.error == 0, ack
    (reply,) = replies
    got = dict(attrs(reply))
    return int.from_bytes(got[g.dev_attr("owner-portid")], "little")


def test_raw_socket_closed_capture_stops(loaded: Module) -> None:
    g = RawGenl()
    try:
        portid = owned_start(g, "lo")
        assert portid == g.sock.getsockname()[0] != 0
        assert state("lo").owner_portid == portid
        (shown,) = json.loads(run_mgctl("-j show dev lo").stdout)
        assert shown["owner_portid"] == portid
    finally:
        g.close()
    assert eventually(lambda: gone("lo"), timeout=TIMEOUT)


def test_stopped_first_then_closed(loaded: Module, dummy: str) -> None:
    """An owned capture stopped by dev-stop, then lo captured again by someone else:
    closing the socket stops only what it still owns (dummy), not the new capture."""
    g = RawGenl()
    try:
        owned_start(g, "lo")
        owned_start(g, dummy)
        _, ack = g.request("dev-stop", string(g.dev_attr("ifname"), "lo"))
        assert ack.error == 0
        assert run_mgctl("start dev lo").returncode == 0
    finally:
        g.close()
    assert eventually(lambda: gone(dummy), timeout=TIMEOUT)
    s = state("lo")
    assert s.capturing and s.owner_portid is None
    assert run_mgctl("stop dev lo").returncode == 0


def test_rmmod_while_owned_and_socket_open(mgcap: Module) -> None:
    """The unload stops the owned capture; the socket closed afterwards finds no module
    to tell (the kernel log must stay clean: the harness checks it)."""
    mgcap.load()
    g = RawGenl()
    try:
        owned_start(g, "lo")
        mgcap.unload()
        assert not Path("/dev/mgcap/lo").exists()
    finally:
        g.close()
    mgcap.load()
    g = RawGenl()
    try:
        owned_start(g, "lo")
    finally:
        g.close()
    assert eventually(lambda: gone("lo"), timeout=TIMEOUT)
