"""The queue between ring readers and the writer, and the big buffer (Gulp's decoupling).

Readers hand the writer chunks of whole records in capture order.  A chunk is
either a view of the records where they lie in a mapped ring (the common case:
nothing is copied in user space; the ring gets the bytes back once the writer
wrote them), or a block of the buffer: a pool of blocks allocated once, which a
reader fills when the writer has fallen behind (so that the ring does not fill)
or when it reads with read().  The writer calls the chunk's `done` after writing
it, which gives a block back or releases the ring's bytes.  No memory is
allocated per batch, and the pool's pages stay resident after the first round.

Readers never wait for the writer: when no block is free, a reader counts the
records it has no room for as mgdump's own drops.
"""

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

BLOCK_SIZE = 1 << 20


@dataclass
class Chunk:
    source: int  # index of the (device, ring) reader that filled it
    data: memoryview  # whole records
    packets: int
    done: Callable[[], None]  # the writer is done with data (written or not)
    pooled: bool = True  # data lies in a block of the pool (counted in `used`)


class BlockPool:
    def __init__(self, capacity: int, block_size: int = BLOCK_SIZE) -> None:
        self.block_size = block_size
        self.capacity = max(capacity // block_size, 2) * block_size
        self._free = deque(bytearray(block_size) for _ in range(self.capacity // block_size))
        self._filled: deque[Chunk] = deque()
        self._used = 0
        self._closed = False
        self._cond = threading.Condition()
        self.high_water = 0  # most bytes ever waiting for the writer

    def take(self) -> bytearray | None:
        """A free block, or None when all are waiting for the writer."""
        with self._cond:
            return self._free.popleft() if self._free else None

    def block_chunk(self, source: int, block: bytearray, length: int, packets: int) -> Chunk:
        """A chunk of the first length bytes of block, which goes back to the pool when
        the writer is done with it."""
        return Chunk(source, memoryview(block)[:length], packets, lambda: self.give_back(block))

    def put(self, chunk: Chunk) -> None:
        with self._cond:
            self._filled.append(chunk)
            if chunk.pooled:
                self._used += len(chunk.data)
            self.high_water = max(self.high_water, self._used)
            self._cond.notify()

    def give_back(self, block: bytearray) -> None:
        with self._cond:
            self._free.append(block)

    def get(self, timeout: float) -> Chunk | None:
        """The oldest filled block; None after timeout, or once closed and empty."""
        with self._cond:
            if not self._filled and not self._closed:
                self._cond.wait(timeout)
            if not self._filled:
                return None
            chunk = self._filled.popleft()
            if chunk.pooled:
                self._used -= len(chunk.data)
            return chunk

    def drop_pending(self) -> None:
        """Let go of the chunks the writer will not write (it stopped early)."""
        while (chunk := self.get(0)) is not None:
            chunk.done()

    def close(self) -> None:
        """No more puts will come: get() returns None once the writer has all."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._filled

    @property
    def used(self) -> int:
        with self._cond:
            return self._used
