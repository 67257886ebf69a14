"""The writer thread: buffer -> output files, at a lower priority than the readers.

It routes each chunk to its output (one merged output, or one per ring), stops
at -c's count exactly (cutting a chunk at a record boundary), and on an output
error stops writing and reports the error; everything it did not write is
accounted for by the session from the kernel's and the readers' counters.
"""

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Sequence

from mgctl import record
from mgctl.dump.buffer import BlockPool
from mgctl.dump.output import Output, OutputError

WRITER_NICE = 5  # readers run at the process's priority, the writer below it


class Writer(threading.Thread):
    def __init__(
        self,
        buffer: BlockPool,
        outputs: Sequence[Output],
        route: Callable[[int], int],  # source -> index into outputs
        interface_of: Callable[[int], int],  # source -> interface (device) index
        n_interfaces: int,
        count: int | None,
        on_stop: Callable[[str], None],
    ) -> None:
        super().__init__(name="mgdump-writer", daemon=True)
        self.buffer = buffer
        self.outputs = outputs
        self.route = route
        self.interface_of = interface_of
        self.count = count
        self.on_stop = on_stop
        self.written = 0
        self.written_bytes = 0
        self.written_per_interface = [0] * n_interfaces
        self.error: OutputError | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
        try:
            self._loop()
        except OutputError as e:
            # without the tracebacks, whose frames hold views of the rings
            e.__cause__ = e.__context__ = None
            self.error = e.with_traceback(None)
            self.on_stop("error")
        except Exception as e:  # a bug: end the capture with a message, never hang
            self.error = OutputError(f"internal error in the writer: {e!r}", errno.EIO)
            self.on_stop("error")
        finally:
            self.finished.set()

    def _loop(self) -> None:
        while True:
            chunk = self.buffer.get(0.2)
            now = time.time()
            for out in self.outputs:
                out.tick(now)
            if any(out.done for out in self.outputs):
                self.on_stop("files")
                return
            if chunk is None:
                if self.buffer.drained:
                    return
                continue
            data = chunk.data
            packets = chunk.packets
            if self.count is not None and self.written + packets >= self.count:
                packets = self.count - self.written
                data = data[: record.head(data, packets)]
            nbytes = len(data)
            try:
                self.outputs[self.route(chunk.source)].write_records(data, packets)
            finally:
                data.release()
                chunk.done()
            self.written += packets
            self.written_bytes += nbytes
            self.written_per_interface[self.interface_of(chunk.source)] += packets
            if self.count is not None and self.written >= self.count:
                self.on_stop("count")
                return

    def close_outputs(self) -> None:
        """Finish every file (ISBs); called once the thread is done."""
        for out in self.outputs:
            try:
                out.close()
            except OutputError as e:
                if self.error is None:
                    self.error = e
