"""One output stream of PCAP-NG: a file (rotated by size or time) or stdout.

Every file starts with an SHB and the IDBs of all captured devices, and ends with
one ISB per device carrying the counters at that moment.  Writes go straight to
the file descriptor (no second buffer).  A write that fails (ENOSPC, EIO, EPIPE)
is undone by truncating the file to the end of the last whole block, so the file
stays valid; the error is then raised for the writer to stop the capture.
"""

import contextlib
import errno
import os
import time
from collections import deque
from collections.abc import Callable, Sequence

from mgctl import pcapng, record
from mgctl.dump.naming import Naming

StatsFn = Callable[[], list[pcapng.InterfaceStatistics]]

# Names of files kept for the summary when they are not a -C/-W ring of files:
# a long run that never reuses a name lists its last FILES_LISTED files.
FILES_LISTED = 10_000


class OutputError(Exception):
    """Writing the output failed: message names the file and the reason."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Output:
    def __init__(
        self,
        naming: Naming | None,  # None: standard output
        interfaces: Sequence[pcapng.Interface],
        isb: StatsFn,
        rotate_bytes: int | None = None,
        rotate_seconds: float | None = None,
    ) -> None:
        self.naming = naming
        self.header = pcapng.file_header(interfaces)
        self.isb = isb
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.fd = -1
        self.path = "-"
        self.size = 0
        # the names of the last files started (each once): with -C and -W the ring
        # of W files, else at most FILES_LISTED; memory stays flat in a long run
        keep = FILES_LISTED
        if naming and naming.size_rotation and not naming.time_rotation and naming.max_files:
            keep = naming.max_files
        self._names: deque[str] = deque(maxlen=keep)
        self.files_started = 0
        self.period_start = time.time()
        self.period_count = 0
        self.packets = 0  # packets in all files of this output
        self.periods = 0  # -G periods completed
        self.done = False  # -G with -W: the last file is complete

    def _open(self) -> None:
        if self.naming is None:
            self.fd = 1
        else:
            self.path = self.naming.name(self.period_start, self.period_count)
            try:
                self.fd = os.open(
                    self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
                )
            except OSError as e:
                raise OutputError(f"{self.path}: {e.strerror}", e.errno or errno.EIO) from e
            if self.path in self._names:
                self._names.remove(self.path)  # a name used again is listed once
            self._names.append(self.path)
            self.files_started += 1
        self.size = 0
        self._write(self.header)

    @property
    def files(self) -> list[str]:
        """The files this output wrote, oldest first: with -C and -W the ring's names
        in the order they were last started, else the last FILES_LISTED."""
        return list(self._names)

    def _write(self, data: bytes | memoryview) -> None:
        start = self.size
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
                self.size += n
        except OSError as e:
            if self.fd != 1:
                # a short write may have landed part of the data: cut it off, and
                # move the offset back too (ftruncate leaves it where it was)
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, start)
                    os.lseek(self.fd, start, os.SEEK_SET)
            self.size = start
            raise OutputError(f"{self.path}: {e.strerror}", e.errno or errno.EIO) from e

    def _finish(self) -> None:
        """End the current file: statistics, then close (standard output stays open)."""
        if self.fd < 0:
            return
        try:
            self._write(b"".join(pcapng.interface_statistics(s) for s in self.isb()))
        finally:
            if self.fd != 1:
                os.close(self.fd)
            self.fd = -1

    def _next_file(self) -> None:
        self._finish()
        self._open()

    def write_records(self, data: bytes | memoryview, packets: int) -> None:
        """Append whole records, starting a new file whenever -C's size is reached."""
        if self.fd < 0:
            self._open()
        view = memoryview(data)
        while view:
            take = len(view)
            if self.rotate_bytes:
                if self.size >= self.rotate_bytes and self.size > len(self.header):
                    self.period_count += 1
                    self._next_file()
                room = self.rotate_bytes - self.size
                if room < take:
                    take = record.head_bytes(view, room)[1]
                    if take == 0 and self.size == len(self.header):
                        take = record.head(view, 1)  # one record bigger than -C
                    if take == 0:
                        self.period_count += 1
                        self._next_file()
                        continue
            self._write(view[:take])
            view = view[take:]
        self.packets += packets

    def tick(self, now: float) -> None:
        """-G: start the next file when the period is over (or finish after -W files)."""
        if not self.rotate_seconds or self.fd < 0 or now - self.period_start < self.rotate_seconds:
            return
        self.periods += 1
        self.period_start = now
        self.period_count = 0
        if self.naming and self.naming.max_files and self.periods >= self.naming.max_files:
            self._finish()
            self.done = True
            return
        self._next_file()

    def close(self) -> None:
        if self.fd < 0 and not self.done and (self.naming is None or not self.files):
            self._open()  # even an empty capture leaves a valid file
        self._finish()
