"""The interleaving test_lock_order.py checks, run as a process of its own: with a
wrong lock order its threads wait on each other for ever, and so does any other
thread of the process that needs mmap_lock (malloc, a fault), so the verdict must
come from outside. Prints "tid NAME TID" lines to stderr as threads start and one
JSON line of results to stdout when everything has returned.

    python -m tests.vm.lock_order_scenario /dev/mgcap/IF
"""

import json
import mmap
import os
import select
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from mgctl.chardev import CaptureDevice
from tests.vm.conftest import eventually
from tests.vm.uffd import MissingPages


class Step(threading.Thread):
    """One blocking call on its own thread; its kernel state can be looked at."""

    def __init__(self, name: str, call: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self.call = call
        self.tid = 0
        self.result: object = None
        self.error = ""
        self.started_ev = threading.Event()

    def run(self) -> None:
        self.tid = threading.get_native_id()
        print(f"tid {self.name} {self.tid}", file=sys.stderr, flush=True)
        self.started_ev.set()
        try:
            self.result = self.call()
        except Exception as e:  # reported in the JSON
            self.error = f"{type(e).__name__}: {e}"

    def begin(self) -> "Step":
        self.start()
        self.started_ev.wait(30)
        return self

    def blocked(self) -> bool:
        """Alive and asleep uninterruptibly (D): waiting on a lock."""
        try:
            stat = Path(f"/proc/self/task/{self.tid}/stat").read_text()
        except OSError:  # the thread has ended (ENOENT, or ESRCH once opened)
            return False
        return self.is_alive() and stat.rsplit(")", 1)[1].split()[0] == "D"


def main(path: str) -> dict[str, object]:
    dev = CaptureDevice(path)
    pages = MissingPages()
    buf = pages.buffer()
    dev.bind(0)
    if not eventually(lambda: dev.wait(0) != 0, 10):
        return {"error": "no records in ring 0"}
    reader = Step("read", lambda: os.readv(dev.fd, [buf])).begin()
    if not select.select([pages.fd], [], [], 30)[0]:
        return {"error": "read() never touched its buffer"}
    page = pages.next_fault()
    # the reader now sleeps in its fault, holding ring 0's consumer lock
    binder = Step("bind", lambda: dev.bind(1)).begin()
    if not eventually(binder.blocked, 30):
        return {"error": "the rebind did not wait for ring 0"}
    mapper = Step(
        "mmap", lambda: mmap.mmap(dev.fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)
    ).begin()
    # with the right order the mapping goes through at once; with the wrong one it
    # sleeps on the file's lock, which the rebind holds, and holds mmap_lock
    eventually(lambda: not mapper.is_alive() or mapper.blocked(), 30)
    filler = Step("fill", lambda: pages.fill(page)).begin()
    steps = (reader, binder, mapper, filler)
    for s in steps:
        s.join()
    mapped = mapper.result
    out: dict[str, object] = {
        "errors": [s.error for s in steps if s.error],
        "read": reader.result,
        "bound_ring": dev.info().bound_ring,
        "mapped": isinstance(mapped, mmap.mmap),
    }
    if isinstance(mapped, mmap.mmap):
        mapped.close()
    buf.release()
    pages.close()
    dev.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])), flush=True)
