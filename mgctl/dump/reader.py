"""One thread per (device, ring): take the kernel ring's records for the writer.

The thread binds its own file to the ring (exclusively) and pins itself to the
ring's CPU.  `ReadReader` read()s whole records into blocks of the buffer;
`mgctl.dump.mapped.MappedReader` (the default) hands the writer the records
where they lie in the mapped ring.  Neither blocks on anything but the ring:
when the buffer has no room, records are counted as dropped.  A reader ends
when the capture ends or when asked to stop, after taking what the ring still
holds if told to drain.  After a small batch it pauses briefly so that the next
one is bigger.
"""

import contextlib
import errno
import os
import threading
import time

from mgctl import record, uapi
from mgctl.chardev import CaptureDevice
from mgctl.dump.buffer import BlockPool

# A block goes to the writer when full, or at the latest HOLD seconds after its
# first record, so that a slow trickle of packets still reaches the file soon.
HOLD = 0.05
# After a small batch, let the ring fill for a while before the next poll: fewer,
# bigger batches cost less CPU per packet.  The pause scales with the ring: 10 ms
# for a 4 MiB ring (which holds 170 ms of 96-byte snapshots at 190 kpps), 0.16 ms
# for the smallest, 64 KiB one.
SMALL_READ = 128 << 10
PAUSE_PER_RING_BYTE = 0.01 / (4 << 20)
MAX_PAUSE = 0.02


class RingReader(threading.Thread):
    """What both kinds of reader share: the bound file, pinning, stop and drops."""

    access = ""  # how the ring is read, as --stats-json says it

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
        self.stop_requested = threading.Event()
        self.drain_on_stop = True
        self.error: OSError | None = None
        self.dropped = 0  # records the buffer had no room for
        self.buffered = 0  # records that went through the buffer (copied out of the ring)
        self._fix_ids = True
        self.dev = CaptureDevice(path, nonblock=True)
        try:
            self.dev.bind(ring)  # exclusive: a second reader of this ring fails here
            self.ring_size = self.dev.info().ring_size
            self.pause = min(self.ring_size * PAUSE_PER_RING_BYTE, MAX_PAUSE)
            self._setup()
        except BaseException:
            self.dev.close()
            raise

    def _setup(self) -> None:
        """What a kind of reader needs besides the bound file."""

    def run(self) -> None:
        if self.pin:
            # a CPU outside our cpuset: run where we may
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {self.ring})
        try:
            self._loop()
        except OSError as e:
            # without the tracebacks, whose frames hold views of the ring
            e.__cause__ = e.__context__ = None
            self.error = e.with_traceback(None)
        except Exception as e:  # a bug: end the capture with a message, never hang
            self.error = OSError(errno.EIO, f"internal error: {e!r}")

    def _loop(self) -> None:
        raise NotImplementedError

    def waiting(self) -> int:
        """Records in the ring not taken yet (before the thread starts)."""
        ring = self.dev.map_ring()
        try:
            return record.count(ring.pending())
        finally:
            ring.close()

    def _needs_ids(self, got: memoryview) -> bool:
        """Whether records written before mgdump set the device's interface id are in
        got; once one with the id is seen, every later one has it."""
        if self._fix_ids and record.first_interface_id(got) == self.interface_id:
            self._fix_ids = False
        return self._fix_ids

    def close(self) -> None:
        self.dev.close()


class ReadReader(RingReader):
    """read() into blocks of the buffer, several reads per block."""

    access = "read"

    def _setup(self) -> None:
        self._block: bytearray | None = None  # being filled
        self._fill = 0
        self._packets = 0
        self._since = 0.0  # when the block got its first records
        self._spare = bytearray(self.pool.block_size)  # read into when no block is free

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
        if self._needs_ids(got):
            record.set_interface_id(got, self.interface_id)
        packets = record.count(got)
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

    def _hand_over(self) -> None:
        block, self._block = self._block, None
        if block is None:
            return
        if self._fill:
            self.pool.put(self.pool.block_chunk(self.source, block, self._fill, self._packets))
            self.buffered += self._packets
        else:
            self.pool.give_back(block)
        self._fill = 0
        self._packets = 0
