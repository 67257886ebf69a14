"""The default ring reader: the writer writes the records where they lie in the mapped ring.

The reader maps its ring (docs/format.md, "mmap(): zero-copy readers") and hands
the writer views of the records the kernel has published since the last batch,
without copying them; the writer's write() reads them from the ring, and only
then are they handed back to the kernel (consumer_pos moves past them).  So on
the common path user space touches no record: one poll(), a few loads and
stores of positions and one write() per batch.

The Gulp rule still holds when the file is slower than the link: once the
records the writer has not finished take more than half the ring, the reader
copies new records into the big buffer and hands them back to the kernel at
once, so the ring does not fill while the buffer has room (and counts them as
mgdump's drops when it has none).  The kernel is given back bytes only in
order: up to the first records the writer still has to write.

The contract's acquire load of producer_pos and release store of consumer_pos
are plain aligned loads and stores here, which x86-64 orders as required;
elsewhere mgdump uses read() (see `usable`).
"""

import contextlib
import gc
import platform
import select
import threading
from collections import deque
from collections.abc import Callable

from mgctl import record
from mgctl.chardev import RingMap
from mgctl.dump.buffer import Chunk
from mgctl.dump.reader import HOLD, SMALL_READ, RingReader

# Architectures whose plain loads and stores give the ring's acquire/release order.
TSO_MACHINES = {"x86_64", "amd64", "i686", "i386"}
# While the writer still has records of this ring, poll() reports the ring
# readable; the reader sleeps at least this long between looks instead.
MIN_WAIT = 0.001


def usable() -> bool:
    return platform.machine().lower() in TSO_MACHINES


class Handback:
    """Which of a ring's bytes may go back to the kernel: in order, everything before
    the first bytes the writer still has (bytes copied or dropped included)."""

    def __init__(self, pos: int, release: Callable[[int], None]) -> None:
        self._release = release
        self._lock = threading.Lock()  # the reader and the writer call in
        self._in_flight: deque[tuple[int, int]] = deque()  # [start, end) the writer has
        self._taken_to = pos  # bytes before this are in flight, copied or dropped

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight)

    def hand(self, start: int, end: int) -> None:
        """The writer has [start, end) to write."""
        with self._lock:
            self._in_flight.append((start, end))

    def taken(self, end: int) -> None:
        """Everything up to end not in flight is copied or dropped."""
        with self._lock:
            self._taken_to = end
            if not self._in_flight:
                self._release(end)

    def written(self, start: int, end: int) -> None:
        """The writer is done with [start, end) (written or not)."""
        with self._lock:
            first = self._in_flight.popleft()
            assert first == (start, end), (first, start, end)
            if self._in_flight:
                self._release(self._in_flight[0][0])
            else:
                self._release(max(end, self._taken_to))


class MappedReader(RingReader):
    access = "mmap"

    def _setup(self) -> None:
        self.map: RingMap | None = self.dev.map_ring()
        self.copy_above = self.ring_size // 2
        self._taken = self.map.consumer_pos  # handed to the writer, copied or dropped
        self._handback = Handback(self._taken, self.map.release_to)

    def waiting(self) -> int:
        assert self.map is not None
        return record.count(self.map.records(self._taken, self.map.producer_pos))

    def _loop(self) -> None:
        m = self.map
        assert m is not None
        ended = False
        while True:
            stopping = self.stop_requested.is_set()
            if stopping and not self.drain_on_stop:
                return
            prod = m.producer_pos
            if prod != self._taken:
                n = self._take(m, prod)
                if n < SMALL_READ and not (stopping or ended):
                    self.stop_requested.wait(self.pause)
                continue
            if stopping or ended:
                # everything published is taken; after the capture stopped (the
                # session stops it before asking readers to stop, or poll() said so)
                # that is every record
                return
            if self._handback.busy:
                self.stop_requested.wait(max(self.pause, MIN_WAIT))
                continue
            if self.dev.wait(HOLD) & select.POLLHUP:
                ended = True  # the capture ended: take what it published, then end

    def _take(self, m: RingMap, prod: int) -> int:
        """Hand the writer the records in [taken, prod); returns their bytes."""
        start = self._taken
        view = m.records(start, prod)
        self._taken = prod
        if self._needs_ids(view) or prod - m.consumer_pos > self.copy_above:
            self._copy(view, prod)
            return prod - start
        packets = record.count(view)
        self._handback.hand(start, prod)
        self.pool.put(
            Chunk(
                self.source,
                view,
                packets,
                lambda: self._handback.written(start, prod),
                pooled=False,
            )
        )
        return prod - start

    def _copy(self, view: memoryview, prod: int) -> None:
        """Copy into blocks of the buffer (fixing interface ids if need be), then give
        the ring's bytes back unless the writer still has earlier ones of this ring."""
        stride = record.uniform_length(view)
        size = self.pool.block_size
        while view:
            if stride:
                n = min(len(view) // stride, size // stride)
                nbytes = n * stride
            else:
                n, nbytes = record.head_bytes(view, size)
            block = self.pool.take()
            if block is None:
                self.dropped += n
            else:
                block[:nbytes] = view[:nbytes]
                got = memoryview(block)[:nbytes]
                if self._fix_ids:
                    record.set_interface_id(got, self.interface_id)
                self.buffered += n
                self.pool.put(self.pool.block_chunk(self.source, block, nbytes, n))
            view = view[nbytes:]
        self._handback.taken(prod)

    def close(self) -> None:
        if self.map is not None:
            try:
                self.map.close()
            except BufferError:
                # a view of the ring outlived the writer (a bug): once the garbage
                # collector has it the mapping can go; else it goes with the process
                gc.collect()
                with contextlib.suppress(BufferError):
                    self.map.close()
            self.map = None
        super().close()
