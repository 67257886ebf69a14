"""Reading /dev/mgcap/<ifname>: read(), ring binding, ioctls and the mmap'd ring.

See kernel/uapi/mgcap.h for the contract this module implements the user side of.
"""

import errno
import fcntl
import mmap
import os
import select
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from mgctl import uapi

DEV_DIR = "/dev/mgcap"
PAGE_SIZE = mmap.PAGESIZE


def device_path(ifname: str, netns_inum: int | None = None) -> str:
    """The character device of a capturing device (netns_inum for a non-initial netns)."""
    if netns_inum is None:
        return f"{DEV_DIR}/{ifname}"
    return f"{DEV_DIR}/netns-{netns_inum}/{ifname}"


@dataclass(frozen=True)
class Info:
    ifindex: int
    mode: int
    snaplen: int
    ring_size: int
    nr_rings: int
    bound_ring: int | None
    interface_id: int
    link_type: int
    ifname: str


class CaptureDevice:
    """An open /dev/mgcap/<ifname>."""

    def __init__(self, path: str, nonblock: bool = False) -> None:
        flags = os.O_CLOEXEC | (os.O_NONBLOCK if nonblock else 0)
        self.path = path
        try:
            # read-write so that the ring's consumer page can be mapped writable
            self.fd = os.open(path, os.O_RDWR | flags)
        except PermissionError:
            self.fd = os.open(path, os.O_RDONLY | flags)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def fileno(self) -> int:
        return self.fd

    def info(self) -> Info:
        buf = bytearray(uapi.Info.sizeof())
        fcntl.ioctl(self.fd, uapi.IOC_GET_INFO, buf)
        i = uapi.Info.parse(bytes(buf))
        return Info(
            ifindex=i.ifindex,
            mode=i.mode,
            snaplen=i.snaplen,
            ring_size=i.ring_size,
            nr_rings=i.nr_rings,
            bound_ring=None if i.bound_ring == uapi.RING_UNBOUND else i.bound_ring,
            interface_id=i.interface_id,
            link_type=i.link_type,
            ifname=i.ifname,
        )

    def stats(self) -> dict[str, int]:
        buf = bytearray(uapi.Stats.sizeof())
        fcntl.ioctl(self.fd, uapi.IOC_GET_STATS, buf)
        s = uapi.Stats.parse(bytes(buf))
        return {k: int(s[k]) for k in uapi.STAT_FIELDS}

    def bind(self, ring: int | None) -> None:
        """Read only the ring of CPU `ring` (exclusively); None unbinds."""
        val = uapi.RING_UNBOUND if ring is None else ring
        fcntl.ioctl(self.fd, uapi.IOC_BIND_RING, val.to_bytes(4, "little"))

    def set_interface_id(self, ifid: int) -> None:
        fcntl.ioctl(self.fd, uapi.IOC_SET_IFID, ifid.to_bytes(4, "little"))

    def read(self, size: int = 1 << 20) -> bytes:
        """Whole records, b"" at the end of the capture; EAGAIN raises BlockingIOError."""
        return os.read(self.fd, size)

    def wait(self, timeout: float | None) -> int:
        """poll() for input; returns the revents (0 on timeout)."""
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        ms = None if timeout is None else int(timeout * 1000)
        for _fd, ev in p.poll(ms):
            return ev
        return 0

    def read_all(self, idle: float = 0.5) -> bytes:
        """Records until none has come for `idle` seconds or the capture ended."""
        out = bytearray()
        while True:
            ev = self.wait(idle)
            if not ev:
                return bytes(out)
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                return bytes(out)
            out += chunk

    def map_ring(self) -> "RingMap":
        return RingMap(self)


class RingMap:
    """The mmap'd ring of a bound CaptureDevice: zero-copy access to its records."""

    def __init__(self, dev: CaptureDevice) -> None:
        info = dev.info()
        if info.bound_ring is None:
            raise OSError(errno.EINVAL, "bind the file to a ring before mapping it")
        self.ring_size = info.ring_size
        self._cons = mmap.mmap(dev.fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._data = mmap.mmap(
            dev.fd,
            PAGE_SIZE + 2 * self.ring_size,
            mmap.MAP_SHARED,
            mmap.PROT_READ,
            offset=PAGE_SIZE,
        )
        # 8-byte aligned loads and stores of the positions are single accesses
        self._cons_pos = memoryview(self._cons).cast("Q")
        self._prod_view = memoryview(self._data)
        self._prod_pos = self._prod_view[:8].cast("Q")
        self._records = self._prod_view[PAGE_SIZE:]

    def producer_page(self) -> Any:
        return uapi.ProducerPage.parse(bytes(self._prod_view[: uapi.ProducerPage.sizeof()]))

    @property
    def consumer_pos(self) -> int:
        return int(self._cons_pos[0])

    @property
    def producer_pos(self) -> int:
        """Records up to here are written (an aligned 8-byte load: on x86-64 it has the
        acquire semantics the contract asks for)."""
        return int(self._prod_pos[0])

    def records(self, start: int, end: int) -> memoryview:
        """The records between two positions, contiguous even across the wrap."""
        off = start & (self.ring_size - 1)
        return self._records[off : off + (end - start)]

    def release_to(self, pos: int) -> None:
        """Hand the bytes before pos back to the kernel (an aligned 8-byte store: on
        x86-64 it has release semantics)."""
        self._cons_pos[0] = pos

    def pending(self) -> memoryview:
        """The records not consumed yet, contiguous even across the wrap."""
        prod = int(self._prod_pos[0])
        cons = int(self._cons_pos[0])
        start = cons & (self.ring_size - 1)
        return self._records[start : start + (prod - cons)]

    def release(self, nbytes: int) -> None:
        """Hand nbytes of records back to the kernel."""
        self._cons_pos[0] = int(self._cons_pos[0]) + nbytes

    def close(self) -> None:
        for v in (self._cons_pos, self._prod_pos, self._records, self._prod_view):
            v.release()
        self._cons.close()
        self._data.close()
