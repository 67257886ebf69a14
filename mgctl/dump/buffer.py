"""The big buffer between ring readers and the writer (Gulp's decoupling).

The buffer is a pool of blocks allocated once: a reader read()s records straight
into a free block (filling it over several reads), hands the filled block to the
writer, and the writer gives it back after writing it.  No memory is allocated
or copied per batch in Python, and the pages stay resident after the first
round, so the only copies are the kernel's: ring -> block, block -> file.

Readers never wait for the writer: when no block is free, a reader reads into
its own spare block and counts those records as mgdump's own drops.
"""

import threading
from collections import deque
from dataclasses import dataclass

BLOCK_SIZE = 1 << 20


@dataclass
class Chunk:
    source: int  # index of the (device, ring) reader that filled it
    block: bytearray
    length: int  # bytes of whole records at the start of block
    packets: int

    @property
    def data(self) -> memoryview:
        return memoryview(self.block)[: self.length]


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

    def put(self, chunk: Chunk) -> None:
        with self._cond:
            self._filled.append(chunk)
            self._used += chunk.length
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
            self._used -= chunk.length
            return chunk

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
