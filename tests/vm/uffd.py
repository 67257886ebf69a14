"""userfaultfd(2) from Python, for tests that need the kernel to stop inside a copy
to user space: a page registered here faults into this process, which decides when
(and whether) the fault is resolved. Root only (faults taken by the kernel itself,
such as copy_to_user()'s, need CAP_SYS_PTRACE)."""

import ctypes
import errno
import fcntl
import mmap
import os
import struct

PAGE = mmap.PAGESIZE
SYS_USERFAULTFD = 323  # x86_64
UFFD_API = 0xAA
UFFD_EVENT_PAGEFAULT = 0x12
UFFDIO_REGISTER_MODE_MISSING = 1
MSG = struct.Struct("=BBHI QQ Q")  # struct uffd_msg, the page fault member: 32 bytes


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (UFFD_API << 8) | nr


UFFDIO_API = _iowr(0x3F, 24)
UFFDIO_REGISTER = _iowr(0x00, 32)
UFFDIO_COPY = _iowr(0x03, 40)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class MissingPages:
    """`pages` pages of anonymous memory, none present, whose first touches (by
    this process or by the kernel on its behalf) wait until fill() is called."""

    def __init__(self, pages: int = 1) -> None:
        fd = _libc.syscall(SYS_USERFAULTFD, os.O_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"userfaultfd: {os.strerror(e)}")
        self.fd = int(fd)
        fcntl.ioctl(self.fd, UFFDIO_API, bytearray(struct.pack("=QQQ", UFFD_API, 0, 0)))
        self.size = pages * PAGE
        self.map = mmap.mmap(-1, self.size)
        self._anchor = (ctypes.c_char * self.size).from_buffer(self.map)
        self.addr = ctypes.addressof(self._anchor)
        reg = struct.pack("=QQQQ", self.addr, self.size, UFFDIO_REGISTER_MODE_MISSING, 0)
        fcntl.ioctl(self.fd, UFFDIO_REGISTER, bytearray(reg))
        self._zero = ctypes.create_string_buffer(PAGE)

    def buffer(self) -> memoryview:
        return memoryview(self.map)

    def next_fault(self) -> int:
        """Block until a registered page faults; its page address."""
        while True:
            try:
                msg = os.read(self.fd, MSG.size)
            except InterruptedError:
                continue
            event, _, _, _, _flags, address, _ptid = MSG.unpack(msg)
            if event == UFFD_EVENT_PAGEFAULT:
                return int(address) & ~(PAGE - 1)

    def fill(self, page: int) -> None:
        """Resolve a fault: the page becomes present (zeros) and its waiter goes on."""
        copy = bytearray(struct.pack("=QQQQq", page, ctypes.addressof(self._zero), PAGE, 0, 0))
        try:
            fcntl.ioctl(self.fd, UFFDIO_COPY, copy)
        except OSError as e:
            if e.errno != errno.EEXIST:  # filled already
                raise

    def close(self) -> None:
        del self._anchor
        self.map.close()
        os.close(self.fd)
