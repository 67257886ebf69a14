"""Rings under pktgen floods: exact accounting, per-CPU binding, mmap, read() semantics,
batched wakeups."""

import ctypes
import errno
import mmap
import os
import select
import threading
import time
from collections.abc import Callable

import pytest

from mgctl import uapi
from mgctl.chardev import CaptureDevice, device_path
from mgctl.record import iter_records
from tests.vm.conftest import Module, Pktgen, asleep_in, eventually, read_records


def test_overflow_captured_plus_drops_equals_sent(mgcap: Module, dummy: str) -> None:
    """No reader, smallest ring: most frames are dropped, and every one is counted."""
    mgcap.load(ifname=dummy, ring_size=64 << 10)
    sent = Pktgen(dummy).run(count=20_000, pkt_size=128)
    assert sent == 20_000
    s = mgcap.stats(dummy)
    assert s["seen_packets"] == sent
    assert s["ring_full_drops"] > 0
    assert s["captured_packets"] + s["ring_full_drops"] + s["copy_errors"] == sent
    assert s["copy_errors"] == 0
    # kpktgend_0 runs on CPU 0: every frame in ring 0, nothing in ring 1
    rings = mgcap.ring_stats(dummy)
    assert rings[0]["seen_packets"] == sent
    assert all(r["seen_packets"] == 0 for r in rings[1:]), rings
    # the ring holds exactly what was counted as captured: 64 KiB of 128-byte records
    recs = read_records(dummy)
    assert len(recs) == s["captured_packets"] == (64 << 10) // 128
    assert all(r.origlen == 128 and r.caplen == 96 for r in recs)


def test_flood_two_rings_with_bound_readers(mgcap: Module, dummy: str) -> None:
    """Two pktgen threads (one per CPU), one reader thread bound to each ring: everything
    read plus everything dropped equals everything sent."""
    mgcap.load(ifname=dummy, mode="drop", ring_size=256 << 10)
    got = [0, 0]
    bound = [threading.Event(), threading.Event()]
    stop = threading.Event()

    def reader(cpu: int) -> None:
        with CaptureDevice(device_path(dummy)) as dev:
            dev.bind(cpu)
            assert dev.info().bound_ring == cpu
            bound[cpu].set()
            while True:
                if not dev.wait(0.2):
                    if stop.is_set():
                        break
                    continue
                data = dev.read(1 << 20)
                got[cpu] += sum(1 for _ in iter_records(data))

    threads = [threading.Thread(target=reader, args=(c,), daemon=True) for c in (0, 1)]
    for t in threads:
        t.start()
    try:
        # both rings bound before the flood: an unbound reader would read either ring
        assert all(b.wait(60) for b in bound), "a reader did not bind its ring"
        sent = Pktgen(dummy).run(count=20_000, threads=2)
        # every captured record read: the readers' counts reach the ring's count
        assert eventually(
            lambda: got[0] + got[1] == mgcap.stats(dummy)["captured_packets"], timeout=60
        ), (got, mgcap.stats(dummy))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    s = mgcap.stats(dummy)
    assert sent == 40_000
    assert s["seen_packets"] == s["consumed_packets"] == sent
    assert got[0] + got[1] == s["captured_packets"]
    assert s["captured_packets"] + s["ring_full_drops"] == sent
    assert got[0] > 0 and got[1] > 0
    # pktgen thread t runs on CPU t: each ring saw its 20,000 and its reader read
    # exactly what it captured
    rings = mgcap.ring_stats(dummy)
    assert [r["seen_packets"] for r in rings[:2]] == [20_000, 20_000], rings
    assert [r["captured_packets"] for r in rings[:2]] == got, rings


def test_binding_is_exclusive_and_unbound_readers_skip_bound_rings(
    mgcap: Module, dummy: str
) -> None:
    mgcap.load(ifname=dummy)
    path = device_path(dummy)
    with CaptureDevice(path, nonblock=True) as a, CaptureDevice(path, nonblock=True) as b:
        a.bind(0)
        with pytest.raises(OSError) as e:
            b.bind(0)
        assert e.value.errno == errno.EBUSY
        with pytest.raises(OSError) as e:
            b.bind(7777)
        assert e.value.errno == errno.EINVAL
        # traffic on CPU 0 goes to ring 0, which only `a` may read
        Pktgen(dummy).run(count=50)  # kpktgend_0 runs on CPU 0
        with pytest.raises(BlockingIOError):
            b.read(1 << 16)
        assert len(list(iter_records(a.read(1 << 16)))) == 50
        a.bind(None)
        assert a.info().bound_ring is None
        b.bind(0)


def test_read_semantics(mgcap: Module, dummy: str) -> None:
    mgcap.load(ifname=dummy, snaplen=200)
    with CaptureDevice(device_path(dummy), nonblock=True) as dev:
        with pytest.raises(BlockingIOError):
            dev.read(4096)
        Pktgen(dummy).run(count=3, pkt_size=128)
        reclen = uapi.record_len(128)
        # a buffer smaller than one record is refused, and loses nothing
        with pytest.raises(OSError) as e:
            dev.read(reclen - 1)
        assert e.value.errno == errno.EINVAL
        # whole records only, never a part of one
        assert len(dev.read(reclen + reclen // 2)) == reclen
        assert len(dev.read(1 << 16)) == 2 * reclen
        info = dev.info()
        assert (info.snaplen, info.mode, info.ifname) == (200, uapi.MODE_MIRROR, dummy)
        assert info.ring_size == uapi.RING_SIZE_DEFAULT
        assert info.nr_rings >= 2


def test_poll_wakes_for_a_single_packet(mgcap: Module, dummy: str) -> None:
    """A trickle is delivered promptly: the wakeup timer wakes a reader for one record."""
    mgcap.load(ifname=dummy)
    with CaptureDevice(device_path(dummy), nonblock=True) as dev:
        assert dev.wait(0.1) == 0
        # the frame comes once this thread sleeps in poll(): only the wakeup wakes it
        t = send_when_asleep(lambda: Pktgen(dummy).run(count=1), "poll", "ppoll")
        try:
            start = time.monotonic()
            ev = dev.wait(10)
        finally:
            t.join(timeout=120)
        assert not t.is_alive()
        assert ev & select.POLLIN
        assert time.monotonic() - start < 5
        assert len(dev.read(4096)) == uapi.record_len(96)


def send_when_asleep(
    send: Callable[[], object], *calls: str, fd: int | None = None
) -> threading.Thread:
    """A thread that runs send once the calling thread sleeps in one of calls (on fd):
    the state the wakeup under test starts from, waited for, not slept for."""
    tid = threading.get_native_id()

    def run() -> None:
        if eventually(lambda: asleep_in(tid, *calls, fd=fd), timeout=60):
            send()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_blocking_read_wakes(mgcap: Module, dummy: str) -> None:
    mgcap.load(ifname=dummy)
    with CaptureDevice(device_path(dummy)) as dev:
        t = send_when_asleep(lambda: Pktgen(dummy).run(count=2), "read", fd=dev.fd)
        try:
            data = dev.read(1 << 16)
        finally:
            t.join(timeout=120)
        assert not t.is_alive()
        # one record or both: read() returns what is there when the wakeup (the first
        # record's timer, or the second's) lets it run, which the test cannot order
        assert len(data) in (uapi.record_len(96), 2 * uapi.record_len(96))


def test_mmap_reader(mgcap: Module, dummy: str) -> None:
    """Zero-copy reader: records straight from the mapped ring, consumer page written back;
    records that wrap around the end of the ring are contiguous."""
    ring_size = 64 << 10
    mgcap.load(ifname=dummy, ring_size=ring_size, mode="drop", snaplen=100)
    with CaptureDevice(device_path(dummy), nonblock=True) as dev:
        # not bound: the kernel refuses the mapping (mmap(2) itself, not map_ring(),
        # which refuses in user space before asking)
        with pytest.raises(OSError) as e:
            mmap.mmap(dev.fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        assert e.value.errno == errno.EINVAL
        dev.bind(0)
        ring = dev.map_ring()
        page = ring.producer_page()
        layout = (page.ring_size, page.cpu, page.data_offset)
        assert layout == (ring_size, 0, 2 * os.sysconf("SC_PAGE_SIZE"))
        total = 0
        # 100-byte snapshots make 132-byte records, which do not divide the ring: some wrap
        for _ in range(5):
            Pktgen(dummy).run(count=300, pkt_size=200)
            pending = ring.pending()
            recs = list(iter_records(pending))
            assert len(recs) == 300
            assert all(r.caplen == 100 for r in recs)
            ring.release(len(pending))
            pending.release()
            total += len(recs)
        assert ring.consumer_pos == 1500 * uapi.record_len(100)
        page = ring.producer_page()
        assert page.captured_packets == total == 1500
        assert page.ring_full_drops == 0
        assert page.producer_pos == ring.consumer_pos
        # read() on the same ring sees the consumer position the mapping wrote
        with pytest.raises(BlockingIOError):
            dev.read(4096)
        # the mapped file stays bound while a mapping lasts
        with pytest.raises(OSError) as e:
            dev.bind(1)
        assert e.value.errno == errno.EBUSY
        ring.close()


libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]  # fmt: skip
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value


def sys_mmap(fd: int, length: int, prot: int, flags: int, offset: int) -> int:
    """mmap(2) itself (Python's mmap gives no address for mprotect): the address."""
    addr = libc.mmap(None, length, prot, flags, fd, offset)
    if addr == MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    assert addr is not None
    return int(addr)


def sys_mprotect(addr: int, length: int, prot: int) -> int:
    """mprotect(2): 0, or the errno."""
    return 0 if libc.mprotect(addr, length, prot) == 0 else ctypes.get_errno()


def test_mmap_data_pages_are_read_only(mgcap: Module, dummy: str) -> None:
    """Everything but the consumer page is read-only, shared or private: a writable
    mapping of the producer page, the data pages or both is refused (EPERM), and a
    read-only one cannot be made writable (mprotect: EACCES). The reader reads its
    records through such a mapping."""
    ring_size = 64 << 10
    page = mmap.PAGESIZE
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    mgcap.load(ifname=dummy, ring_size=ring_size)
    with CaptureDevice(device_path(dummy)) as dev:
        dev.bind(0)
        Pktgen(dummy).run(count=3)  # kpktgend_0 runs on CPU 0: ring 0
        data = 2 * page
        areas = {"producer page": (page, page), "data": (data, 2 * ring_size),
                 "producer page and data": (page, page + 2 * ring_size)}  # fmt: skip
        for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
            for what, (offset, length) in areas.items():
                with pytest.raises(OSError) as e:
                    sys_mmap(dev.fd, length, rw, flags, offset)
                assert e.value.errno == errno.EPERM, (what, flags)
                addr = sys_mmap(dev.fd, length, mmap.PROT_READ, flags, offset)
                try:
                    assert sys_mprotect(addr, length, rw) == errno.EACCES, (what, flags)
                    assert sys_mprotect(addr, length, mmap.PROT_WRITE) == errno.EACCES
                    if offset == data:
                        raw = ctypes.string_at(addr, 3 * uapi.record_len(96))
                        recs = list(iter_records(raw))
                        assert [(r.caplen, r.origlen) for r in recs] == [(96, 128)] * 3
                finally:
                    assert libc.munmap(addr, length) == 0
