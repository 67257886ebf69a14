"""One thread per (device, ring): drain the kernel ring into the buffer.

The thread binds its own file to the ring (exclusively), pins itself to the
ring's CPU, and reads big batches of whole records.  It never blocks on
anything but the ring: when the buffer is full the batch is dropped and
counted.  It ends when the capture ends (read() returns 0) or when asked to
stop, after taking what the ring still holds if told to drain.
"""

import contextlib
import os
import threading

from mgctl import uapi
from mgctl.chardev import CaptureDevice
from mgctl.dump import records
from mgctl.dump.buffer import Chunk, ChunkBuffer

READ_SIZE = 1 << 20


class RingReader(threading.Thread):
    def __init__(
        self,
        source: int,
        path: str,
        ring: int,
        interface_id: int,
        snaplen: int,
        buffer: ChunkBuffer,
        pin: bool,
    ) -> None:
        super().__init__(name=f"mgdump-ring{ring}", daemon=True)
        self.source = source
        self.ring = ring
        self.interface_id = interface_id
        self.record_len = uapi.record_len(snaplen)
        self.buffer = buffer
        self.pin = pin
        self.dev = CaptureDevice(path, nonblock=True)
        self.dev.bind(ring)  # exclusive: a second reader of this ring fails here
        self.stop_requested = threading.Event()
        self.drain_on_stop = True
        self.ended = False  # the capture ended (read() returned 0)
        self.error: OSError | None = None
        self.delivered = 0  # records read from the ring
        self.dropped = 0  # records the buffer had no room for
        self.bytes = 0
        self._fix_ids = True

    def stats(self) -> dict[str, int]:
        """The ring's kernel counters (sum over rings: use the device file)."""
        return self.dev.stats()

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
        while True:
            stopping = self.stop_requested.is_set()
            if stopping and not self.drain_on_stop:
                return
            if not stopping and not dev.wait(0.1):
                continue
            try:
                data = dev.read(READ_SIZE)
            except BlockingIOError:
                if stopping:
                    return  # drained what was there when asked to stop
                continue
            if not data:
                self.ended = True
                return
            self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self._fix_ids:
            # records written before mgdump set the device's interface id
            if records.first_interface_id(data) == self.interface_id:
                self._fix_ids = False
            else:
                fixed = bytearray(data)
                records.set_interface_id(fixed, self.interface_id)
                data = bytes(fixed)
        n = records.count(data, self.record_len)
        self.delivered += n
        self.bytes += len(data)
        if not self.buffer.put(Chunk(self.source, data, n)):
            self.dropped += n

    def close(self) -> None:
        self.dev.close()
