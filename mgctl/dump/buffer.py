"""The big buffer between ring readers and the writer (Gulp's decoupling).

Readers never wait for the disk: put() takes a chunk if the buffer has room and
refuses it otherwise, and the reader counts the refused records as mgdump's own
drops.  The writer takes chunks in the order they were put.
"""

import threading
from collections import deque
from dataclasses import dataclass


@dataclass
class Chunk:
    source: int  # index of the (device, ring) reader that read it
    data: bytes
    packets: int


class ChunkBuffer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: deque[Chunk] = deque()
        self._bytes = 0
        self._closed = False
        self._cond = threading.Condition()
        self.high_water = 0  # most bytes ever held

    def put(self, chunk: Chunk) -> bool:
        with self._cond:
            if self._bytes + len(chunk.data) > self.capacity:
                return False
            self._chunks.append(chunk)
            self._bytes += len(chunk.data)
            self.high_water = max(self.high_water, self._bytes)
            self._cond.notify()
            return True

    def get(self, timeout: float) -> Chunk | None:
        """The oldest chunk; None after timeout, or once closed and empty."""
        with self._cond:
            if not self._chunks and not self._closed:
                self._cond.wait(timeout)
            if not self._chunks:
                return None
            chunk = self._chunks.popleft()
            self._bytes -= len(chunk.data)
            return chunk

    def close(self) -> None:
        """No more puts will come: get() returns None once the buffer is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._chunks

    @property
    def used(self) -> int:
        with self._cond:
            return self._bytes
