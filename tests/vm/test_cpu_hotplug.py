"""CPU 1 goes offline while its ring captures and a reader is bound to it, then comes
back: no record is lost or duplicated, and a single frame on CPU 1 afterwards still
wakes its reader (the wakeup timer migrated away is replaced by one pinned to CPU 1:
capture.c's mgcap_cpu_online). The readers sleep in poll() with no timeout: only the
kernel's wakeup (or the test's own stop) wakes them, so a wakeup that never comes
fails the test instead of being covered by a periodic poll."""

import os
import select
import socket
import threading
from pathlib import Path

import pytest

from mgctl.chardev import CaptureDevice, device_path
from mgctl.record import iter_records
from tests.vm.conftest import Module, asleep_in, eventually, sh

CPU1 = Path("/sys/devices/system/cpu/cpu1/online")
PORT = 47999


def send_on(cpu: int, n: int) -> None:
    """n UDP datagrams to a bound socket on lo, from a thread pinned to cpu: on lo the
    receive path runs on the sending CPU, so each lands in ring `cpu`."""

    def run() -> None:
        os.sched_setaffinity(0, {cpu})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(n):
                s.sendto(b"mgcap-hotplug", ("127.0.0.1", PORT))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=300)
    assert not t.is_alive()


def restore_pktgen_threads() -> None:
    """pktgen's kpktgend_1 lost its binding to CPU 1 when the CPU went offline, and
    nothing binds it again: later tests count on thread t running on CPU t. Reloading
    the module makes new, bound threads (the next Pktgen.run loads it)."""
    if Path("/sys/module/pktgen").exists():
        sh("rmmod pktgen")


class Reader(threading.Thread):
    """Counts the records of one ring, asleep in poll() without a timeout between
    them, until stop() (a pipe in the same poll): then reads what is left and ends."""

    def __init__(self, ring: int) -> None:
        super().__init__(daemon=True)
        self.ring = ring
        self.count = 0
        self.tid = 0
        self.dev = CaptureDevice(device_path("lo"), nonblock=True)
        self.dev.bind(ring)
        self._stop_r, self._stop_w = os.pipe()

    def run(self) -> None:
        self.tid = threading.get_native_id()
        p = select.poll()
        p.register(self.dev.fd, select.POLLIN)
        p.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in p.poll()}  # no timeout
            if not self._drain() or self._stop_r in ready:
                return

    def _drain(self) -> bool:
        """Read every record there is; False at end of file."""
        while True:
            try:
                data = self.dev.read(1 << 20)
            except BlockingIOError:
                return True
            if not data:
                return False
            self.count += sum(1 for _ in iter_records(data))

    def asleep(self) -> bool:
        """Asleep in poll(), waiting for the kernel's wakeup."""
        return self.tid != 0 and asleep_in(self.tid, "poll", "ppoll")

    def stop(self) -> None:
        os.write(self._stop_w, b"x")

    def close(self) -> None:
        """After stop(): the thread joined, its file closed (the module then unloads)."""
        self.join(timeout=60)
        assert not self.is_alive(), f"ring {self.ring}'s reader did not stop"
        self.dev.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


def test_a_cpu_goes_offline_and_back_while_capturing(mgcap: Module) -> None:
    if not CPU1.exists():
        pytest.skip("CPU 1 cannot go offline in this VM")
    n = 500
    mgcap.load(ifname="lo", ring_size=1 << 20)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", PORT))
    readers = [Reader(0), Reader(1)]
    for r in readers:
        r.start()
    try:
        send_on(0, n)
        send_on(1, n)
        CPU1.write_text("0")
        try:
            send_on(0, n)
        finally:
            CPU1.write_text("1")
        # one frame on CPU 1 while its reader sleeps in poll(): only the ring's
        # wakeup timer, armed again on the returning CPU, can wake it
        assert eventually(lambda: readers[1].count == n and readers[1].asleep(), timeout=60), (
            readers[1].count
        )
        send_on(1, 1)
        assert eventually(lambda: readers[1].count == n + 1, timeout=30), (
            f"ring 1's reader not woken for the single frame on the returning CPU "
            f"({readers[1].count} records of {n + 1})"
        )
        send_on(1, n)
        send_on(0, n)
        assert eventually(lambda: readers[1].count == 2 * n + 1, timeout=60)
        assert eventually(lambda: readers[0].count == 3 * n, timeout=60)
    finally:
        CPU1.write_text("1")
        restore_pktgen_threads()
        for r in readers:
            r.stop()
        for r in readers:
            r.close()
        sink.close()
    s = mgcap.stats("lo")
    assert s["ring_full_drops"] == 0
    assert s["captured_packets"] == readers[0].count + readers[1].count == 5 * n + 1
    # and ring by ring: each reader read exactly what its ring captured
    rings = mgcap.ring_stats("lo")
    assert [r["captured_packets"] for r in rings] == [readers[0].count, readers[1].count]
