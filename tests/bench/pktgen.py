"""pktgen as the benchmark's traffic source: frames injected into a dummy device's
receive path (xmit_mode netif_receive), one generator thread per CPU.

The capture hook runs inside the generator thread (the receive path is synchronous),
so the generator's own rate measures what capturing costs per packet.
"""

import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc/net/pktgen")
RESULT = re.compile(r"Result: OK: (\d+)\(c\d+\+d\d+\) usec, (\d+) \(")
NON_LOCAL_DST = "198.51.100.1"  # TEST-NET-2: routed nowhere, never local


@dataclass(frozen=True)
class Run:
    """What the generator threads report: frames sent and elapsed µs, per thread."""

    counts: tuple[int, ...]
    usecs: tuple[int, ...]

    @property
    def sent(self) -> int:
        return sum(self.counts)

    @property
    def pps(self) -> float:
        """Frames per second of all threads together."""
        return self.sent * 1e6 / max(max(self.usecs), 1)

    @property
    def us_per_packet(self) -> float:
        """Generator CPU time per frame, averaged over the threads."""
        return sum(u / max(c, 1) for u, c in zip(self.usecs, self.counts, strict=True)) / len(
            self.counts
        )


def _write(node: str, command: str) -> None:
    # pktgen takes the last byte of a write for its newline
    (PROC / node).write_text(command + "\n")


def _threads() -> list[str]:
    return [f"kpktgend_{t}" for t in range(os.cpu_count() or 1)]


def reset() -> None:
    """Remove every device from the generator threads and wait until they are gone."""
    for t in _threads():
        _write(t, "rem_device_all")
    end = time.monotonic() + 10
    keep = {"pgctrl", *_threads()}
    while set(os.listdir(PROC)) - keep:
        if time.monotonic() > end:
            raise RuntimeError(f"pktgen devices linger: {os.listdir(PROC)}")
        time.sleep(0.05)


def load() -> None:
    subprocess.run(["modprobe", "pktgen"], check=True)


def run(dev: str, count: int, pkt_size: int, threads: int = 1, extra: Sequence[str] = ()) -> Run:
    """Inject count frames per thread (thread t on CPU t) into dev's receive path.
    extra: more pktgen commands for every thread's device (e.g. "flag UDPSRC_RND")."""
    mac = Path(f"/sys/class/net/{dev}/address").read_text().strip()
    reset()
    names = []
    for t in range(threads):
        name = f"{dev}@{t}"
        names.append(name)
        _write(f"kpktgend_{t}", f"add_device {name}")
        for c in (
            f"count {count}",
            "clone_skb 0",
            "burst 1",
            "delay 0",
            f"pkt_size {pkt_size}",
            "xmit_mode netif_receive",
            f"dst {NON_LOCAL_DST}",
            f"dst_mac {mac}",
        ):
            _write(name, c)
        for c in extra:
            _write(name, c)
            # pktgen takes an unknown flag or value without an error from write()
            text = (PROC / name).read_text()
            if "Result: OK" not in text:
                raise RuntimeError(f"pktgen {name}: {c!r} refused:\n{text}")
    _write("pgctrl", "start")
    counts, usecs = [], []
    for name in names:
        text = (PROC / name).read_text()
        m = RESULT.search(text)
        if not m:
            raise RuntimeError(f"pktgen {name}: no result:\n{text}")
        usecs.append(int(m.group(1)))
        counts.append(int(m.group(2)))
    reset()
    return Run(tuple(counts), tuple(usecs))
