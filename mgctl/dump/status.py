"""The live status line on stderr (a terminal only): packets, rate, MB/s, drops."""

import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from mgctl.dump.session import Session


class StatusLine:
    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.live = Live(console=self.console, auto_refresh=False, transient=True)
        self.last = (time.monotonic(), 0, 0)

    def __enter__(self) -> "StatusLine":
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def update(self, session: Session) -> None:
        w = session.writer
        if w is None:
            return
        now = time.monotonic()
        t0, p0, b0 = self.last
        dt = max(now - t0, 1e-6)
        pkts, nbytes = w.written, w.written_bytes
        self.last = (now, pkts, nbytes)
        kdrops = sum(t.kernel_drops for t in session.totals())
        udrops = sum(r.dropped for r in session.readers)
        buf = 100 * session.buffer.used // max(session.buffer.capacity, 1)
        line = Text.assemble(
            (f"{pkts:,} packets", "bold"),
            f"  {(pkts - p0) / dt / 1000:,.1f} kpps  {(nbytes - b0) / dt / 1e6:,.1f} MB/s",
            "  drops: kernel ",
            (f"{kdrops:,}", "red" if kdrops else ""),
            ", mgdump ",
            (f"{udrops:,}", "red" if udrops else ""),
            f"  buffer {buf}%",
        )
        self.live.update(line, refresh=True)
