"""The character device's edges: a renamed device's node and sysfs directory, stale
nodes (also once the minors wrap), epoll across a rebind, a mapping that leaves an
impossible consumer position, private and removed mappings, and whose right SET_IFID
checks."""

import errno
import mmap
import os
import select
import socket
import threading
from pathlib import Path

import pytest

from mgctl.api import Mgcap
from mgctl.chardev import CaptureDevice, device_path
from mgctl.record import iter_records
from tests.vm.conftest import Module, Pktgen, asleep_in, eventually, in_netns, sh


def test_rename_follows_the_device(mgcap: Module, dummy: str) -> None:
    """/dev/mgcap/<new> and /sys/class/mgcap/<new> replace the old names, files open
    before the rename go on reading, and a new device may take the old name."""
    mgcap.load(ifname=dummy)
    old = Path(device_path(dummy))
    new = "mgd9"
    with CaptureDevice(str(old), nonblock=True) as f:
        sh(f"ip link set {dummy} down")
        sh(f"ip link set {dummy} name {new}")
        try:
            sh(f"ip link set {new} up")
            assert Path(device_path(new)).exists()
            assert not old.exists()
            assert Path(f"/sys/class/mgcap/{new}/ifname").read_text() == f"{new}\n"
            assert not Path(f"/sys/class/mgcap/{dummy}").exists()
            with Mgcap() as m:
                assert [c.ifname for c in m.captures()] == [new]
                assert m.show(new).capturing
            assert f.info().ifname == new
            Pktgen(new).run(count=5)
            assert len(list(iter_records(f.read_all()))) == 5
            # the old name is free again: a new device by that name captures
            sh(f"ip link add {dummy} type dummy")
            with Mgcap() as m:
                m.start(dummy, ring_size=64 << 10)
                assert sorted(c.ifname for c in m.captures()) == sorted([dummy, new])
            assert Path(device_path(dummy)).exists()
            with CaptureDevice(device_path(dummy)) as g:
                assert g.info().ifname == dummy
        finally:
            sh(f"ip link del {new}", check=False)


def keep_past_its_stop(dummy: str, stale: Path) -> int:
    """Start a capture of dummy, bind-mount its node on stale, stop the capture; the
    node's device number."""
    with Mgcap() as m:
        m.start(dummy, ring_size=64 << 10)
    old_rdev = os.stat(device_path(dummy)).st_rdev
    sh(f"mount --bind {device_path(dummy)} {stale}")
    with Mgcap() as m:
        m.stop(dummy)
    return old_rdev


def test_a_stale_node_opens_no_other_capture(mgcap: Module, dummy: str, tmp_path: Path) -> None:
    """A node kept past its capture's stop (a bind mount) does not open the capture that
    starts next, here in another netns: minors are not handed out again at once."""
    mgcap.load()
    stale = tmp_path / "stale"
    stale.touch()
    ns = "mgS"
    sh(f"ip netns add {ns}")
    try:
        old_rdev = keep_past_its_stop(dummy, stale)
        sh(f"ip netns exec {ns} ip link add mgs0 type dummy")
        with in_netns(ns), Mgcap() as m:
            state = m.start("mgs0", ring_size=64 << 10).state
        assert state.chardev
        assert os.stat(state.chardev).st_rdev != old_rdev
        with pytest.raises(OSError) as e:
            os.open(stale, os.O_RDONLY)
        assert e.value.errno in (errno.ENODEV, errno.ENXIO)
    finally:
        sh(f"umount {stale}", check=False)
        sh(f"ip netns del {ns}")
    gone = Path("/dev/mgcap")
    assert eventually(lambda: not gone.exists() or not any(gone.rglob("mgs0")))


def test_a_stale_node_opens_nothing_after_the_minors_wrap(
    mgcap: Module, dummy: str, tmp_path: Path
) -> None:
    """Four minors (module parameter minors=4): a node bind-mounted before its capture
    stopped names minor 0 again after four more starts, the fifth capture's (in another
    netns). Opening the old node gets ENODEV, not that capture: devtmpfs unlinked it."""
    mgcap.load(minors=4)
    stale = tmp_path / "stale"
    stale.touch()
    ns = "mgW"
    sh(f"ip netns add {ns}")
    sh(f"ip netns exec {ns} ip link add mgw0 type dummy")
    try:
        old_rdev = keep_past_its_stop(dummy, stale)
        with in_netns(ns), Mgcap() as m:
            for _ in range(3):  # minors 1, 2 and 3
                m.start("mgw0", ring_size=64 << 10)
                m.stop("mgw0")
            state = m.start("mgw0", ring_size=64 << 10).state
        assert state.chardev
        assert os.stat(state.chardev).st_rdev == old_rdev, "the minor did not wrap"
        with pytest.raises(OSError) as e:
            os.open(stale, os.O_RDONLY)
        assert e.value.errno == errno.ENODEV
        # the capture's own node opens
        os.close(os.open(state.chardev, os.O_RDONLY))
        with in_netns(ns), Mgcap() as m:
            m.stop("mgw0")
    finally:
        sh(f"umount {stale}", check=False)
        sh(f"ip netns del {ns}")


def test_minors_out_of_range_refused(mgcap: Module) -> None:
    """minors=0 and minors=65537 fail the load with a line saying the range."""
    for bad in (0, 65537):
        sh("dmesg -C")
        assert mgcap.try_load(minors=bad).returncode != 0
        assert "mgcap: minors must be 1 to 65536" in sh("dmesg").stdout


def test_epoll_follows_a_rebind(mgcap: Module, dummy: str) -> None:
    """An epoll registration made while bound to ring 1 wakes for ring 0 after the file
    is bound to ring 0."""
    mgcap.load(ifname=dummy)
    with CaptureDevice(device_path(dummy), nonblock=True) as f:
        f.bind(1)
        ep = select.epoll()
        try:
            ep.register(f.fd, select.EPOLLIN)
            assert ep.poll(0.1) == []
            f.bind(0)
            # whatever the rebind itself woke is not a record: drain it
            assert ep.poll(0) == []
            # pktgen's first thread runs on CPU 0: ring 0
            Pktgen(dummy).run(count=1)
            assert ep.poll(10) == [(f.fd, select.EPOLLIN)]
            assert len(list(iter_records(f.read()))) == 1
        finally:
            ep.close()


def test_a_blocking_read_follows_a_rebind(mgcap: Module, dummy: str) -> None:
    """A read() asleep while its file is bound to ring 1 wakes for ring 0's record once
    another thread binds the file to ring 0: it waits on the file's own queue, which
    follows the binding, not on the queue of the ring it started with."""
    mgcap.load(ifname=dummy)
    got: list[bytes] = []
    with CaptureDevice(device_path(dummy)) as f:
        f.bind(1)
        t = threading.Thread(target=lambda: got.append(f.read(1 << 16)), daemon=True)
        t.start()
        try:
            tid = t.native_id
            assert tid is not None
            assert eventually(lambda: asleep_in(tid, "read", fd=f.fd), timeout=60)
            f.bind(0)
            # pktgen's first thread runs on CPU 0: ring 0
            Pktgen(dummy).run(count=1)
            t.join(timeout=30)
            assert not t.is_alive(), "the read still sleeps on ring 1's queue"
            assert len(list(iter_records(got[0]))) == 1
        finally:
            if t.is_alive():  # the stop wakes every ring's readers
                with Mgcap() as m:
                    m.stop(dummy)
                t.join(timeout=60)


@pytest.mark.parametrize("where", ["beyond", "inside"])
def test_an_impossible_consumer_pos_dies_with_its_mapping(
    mgcap: Module, dummy: str, where: str
) -> None:
    """A mmap reader that writes a consumer position more than a ring away, or inside
    the records but not at one (4 bytes into the first), gets EIO; once its file is
    gone the ring is emptied, and the next readers and the producer go on."""
    mgcap.load(ifname=dummy, ring_size=64 << 10)
    with CaptureDevice(device_path(dummy), nonblock=True) as bad:
        bad.bind(0)
        ring = bad.map_ring()
        Pktgen(dummy).run(count=3)
        ring.release(10 * ring.ring_size if where == "beyond" else 4)
        with pytest.raises(OSError) as e:
            bad.read(1 << 16)
        assert e.value.errno == errno.EIO
        ring.close()
    with CaptureDevice(device_path(dummy), nonblock=True) as f:
        with pytest.raises(BlockingIOError):
            f.read(1 << 16)
        Pktgen(dummy).run(count=5)
        assert len(list(iter_records(f.read_all()))) == 5
    assert mgcap.stats(dummy)["ring_full_drops"] == 0


def test_the_consumer_page_needs_a_shared_mapping(mgcap: Module, dummy: str) -> None:
    mgcap.load(ifname=dummy)
    with CaptureDevice(device_path(dummy)) as f:
        f.bind(0)
        with pytest.raises(OSError) as e:
            mmap.mmap(f.fd, mmap.PAGESIZE, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
        assert e.value.errno == errno.EINVAL
        # the data pages may be mapped privately: they are read-only anyway
        m = mmap.mmap(
            f.fd, mmap.PAGESIZE, mmap.MAP_PRIVATE, mmap.PROT_READ, offset=2 * mmap.PAGESIZE
        )
        m.close()


def test_a_file_rebinds_once_its_mappings_are_gone(mgcap: Module, dummy: str) -> None:
    mgcap.load(ifname=dummy)
    with CaptureDevice(device_path(dummy)) as f:
        f.bind(0)
        ring = f.map_ring()
        with pytest.raises(OSError) as e:
            f.bind(1)
        assert e.value.errno == errno.EBUSY
        ring.close()
        f.bind(1)
        assert f.info().bound_ring == 1


def test_set_interface_id_checks_the_opener(mgcap: Module, dummy: str) -> None:
    """The right is the opener's (as for sockets): a file that an unprivileged user
    opened and handed to root cannot change the interface id."""
    mgcap.load(ifname=dummy)
    node = device_path(dummy)
    os.chmod(node, 0o666)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            fd = os.open(node, os.O_RDONLY)
            socket.send_fds(child, [b"x"], [fd])
        finally:
            os._exit(0)
    try:
        _, fds, _, _ = socket.recv_fds(parent, 1, 1)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        parent.close()
        child.close()
    theirs = CaptureDevice.__new__(CaptureDevice)
    theirs.fd, theirs.path = fds[0], node
    with theirs, CaptureDevice(node) as mine:
        with pytest.raises(OSError) as e:
            theirs.set_interface_id(7)
        assert e.value.errno == errno.EPERM
        mine.set_interface_id(7)
        assert theirs.info().interface_id == 7
