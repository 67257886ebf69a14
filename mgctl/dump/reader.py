"""One thread per (device, ring): drain the kernel ring into the buffer.

The thread binds its own file to the ring (exclusively), pins itself to the
ring's CPU, and read()s whole records straight into a block of the buffer
pool, several reads per block.  It never blocks on anything but the ring: when
no block is free the records are read into a spare block and counted as
dropped.  It ends when the capture ends (read() returns 0) or when asked to
stop, after taking what the ring still holds if told to drain.  After a small
read it pauses briefly so that the next one is bigger.
"""

import contextlib
import errno
import os
import threading
import time

from mgctl import record, uapi
from mgctl.chardev import CaptureDevice
from mgctl.dump.buffer import BlockPool, Chunk

# A block goes to the writer when full, or at the latest HOLD seconds after its
# first record, so that a slow trickle of packets still reaches the file soon.
HOLD = 0.05
# After a small read, let the ring fill for a while before the next poll: fewer,
# bigger reads cost less CPU per packet.  The pause scales with the ring: 10 ms
# for a 4 MiB ring (which holds 170 ms of 96-byte snapshots at 190 kpps), 0.16 ms
# for the smallest, 64 KiB one.
SMALL_READ = 128 << 10
PAUSE_PER_RING_BYTE = 0.01 / (4 << 20)
MAX_PAUSE = 0.02


class RingReader(threading.Thread):
    def __init__(
        self,
        source: int,
        path: str,
        ring: int,
        interface_id: int,
        snaplen: int,
        pool: BlockPool,
        pin: bool,
    ) -> None:
        super().__init__(name=f"mgdump-ring{ring}", daemon=True)
        self.source = source
        self.ring = ring
        self.interface_id = interface_id
        self.record_len = uapi.record_len(snaplen)
        self.pool = pool
        self.pin = pin
        self.dev = CaptureDevice(path, nonblock=True)
        self.dev.bind(ring)  # exclusive: a second reader of this ring fails here
        self.pause = min(self.dev.info().ring_size * PAUSE_PER_RING_BYTE, MAX_PAUSE)
        self.stop_requested = threading.Event()
        self.drain_on_stop = True
        self.error: OSError | None = None
        self.dropped = 0  # records the buffer had no room for
        self._fix_ids = True
        self._block: bytearray | None = None  # being filled
        self._fill = 0
        self._packets = 0
        self._since = 0.0  # when the block got its first records
        self._spare = bytearray(pool.block_size)  # read into when no block is free

    def run(self) -> None:
        if self.pin:
            # a CPU outside our cpuset: run where we may
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {self.ring})
        try:
            self._loop()
        except OSError as e:
            self.error = e

    def _loop(self) -> None:
        dev = self.dev
        try:
            while True:
                stopping = self.stop_requested.is_set()
                if stopping and not self.drain_on_stop:
                    return
                if self._block is not None and (stopping or time.monotonic() - self._since >= HOLD):
                    self._hand_over()
                if not stopping and not dev.wait(HOLD):
                    continue
                n = self._read()
                if n < 0:
                    if stopping:
                        return  # drained what was there when asked to stop
                    continue
                if n == 0:
                    return  # the capture ended
                if n < SMALL_READ and not stopping:
                    self.stop_requested.wait(self.pause)
        finally:
            if self._block is not None:
                self._hand_over()

    def _read(self) -> int:
        """One read() into the block being filled; bytes read, 0 at the end of the
        capture, -1 when the ring is empty."""
        if self._block is None:
            self._block = self.pool.take()
            self._fill = 0
        block = self._block if self._block is not None else self._spare
        view = memoryview(block)[self._fill :]
        try:
            n = os.readv(self.dev.fd, [view])
        except BlockingIOError:
            return -1
        except OSError as e:
            if e.errno != errno.EINVAL or self._fill == 0:
                raise
            # the next record does not fit in what is left of the block
            self._hand_over()
            return self._read()
        if n == 0:
            return 0
        got = view[:n]
        if self._fix_ids:
            self._fix_interface_ids(got)
        packets = record.count(got, self.record_len)
        if self._block is None:
            self.dropped += packets  # no free block: the spare one is overwritten
            return n
        if self._fill == 0:
            self._since = time.monotonic()
        self._fill += n
        self._packets += packets
        if self.pool.block_size - self._fill < self.record_len:
            self._hand_over()
        return n

    def _fix_interface_ids(self, got: memoryview) -> None:
        """Records written before mgdump set the device's interface id get it."""
        if record.first_interface_id(got) == self.interface_id:
            self._fix_ids = False  # this and every later record has it
        else:
            record.set_interface_id(got, self.interface_id)

    def _hand_over(self) -> None:
        block, self._block = self._block, None
        if block is None:
            return
        if self._fill:
            self.pool.put(Chunk(self.source, block, self._fill, self._packets))
        else:
            self.pool.give_back(block)
        self._fill = 0
        self._packets = 0

    def close(self) -> None:
        self.dev.close()
