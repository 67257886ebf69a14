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


def write(node: str, command: str) -> None:
    # pktgen takes the last byte of a write for its newline
    (PROC / node).write_text(command + "\n")


def _threads() -> list[str]:
    return [f"kpktgend_{t}" for t in range(os.cpu_count() or 1)]


def thread_has_devices(thread: str) -> bool:
    """Whether /proc/net/pktgen/<thread> lists a running or stopped device."""
    text = (PROC / thread).read_text()
    return any(
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith(("Running:", "Stopped:"))
    )


def reset() -> None:
    """Remove every device from the generator threads and wait until they are gone.
    A thread acts on rem_device_all later (within a second) and would then remove a
    device added meanwhile: it is sent only to threads that have devices."""
    for t in _threads():
        if thread_has_devices(t):
            write(t, "rem_device_all")
    end = time.monotonic() + 10
    keep = {"pgctrl", *_threads()}
    while set(os.listdir(PROC)) - keep:
        if time.monotonic() > end:
            raise RuntimeError(f"pktgen devices linger: {os.listdir(PROC)}")
        time.sleep(0.05)


def sofar(name: str) -> int:
    """Frames pktgen device `name` has sent so far (0 once it is gone)."""
    path = PROC / name
    if not path.exists():
        return 0
    m = re.search(r"pkts-sofar:\s*(\d+)", path.read_text())
    if not m:
        raise RuntimeError(f"pktgen {name}: no pkts-sofar:\n{path.read_text()}")
    return int(m.group(1))


def load() -> None:
    subprocess.run(["modprobe", "pktgen"], check=True)


def add(
    dev: str,
    threads: int,
    count: int,
    pkt_size: int,
    xmit_mode: str = "netif_receive",
    extra: Sequence[str] = (),
) -> list[str]:
    """After a reset, dev on generator threads 0..threads-1 (pktgen devices dev@t):
    count frames each (0: until "stop"), back to back, no clones. xmit_mode
    "netif_receive" injects into dev's own receive path, "start_xmit" transmits on
    dev (a veth: its peer receives). extra: more commands for every thread's device
    (e.g. "flag UDPSRC_RND"), each checked. Writing "start" to pgctrl sends."""
    mac = Path(f"/sys/class/net/{dev}/address").read_text().strip()
    reset()
    names = []
    for t in range(threads):
        name = f"{dev}@{t}"
        names.append(name)
        write(f"kpktgend_{t}", f"add_device {name}")
        for c in (
            f"count {count}",
            "clone_skb 0",
            "burst 1",
            "delay 0",
            f"pkt_size {pkt_size}",
            f"xmit_mode {xmit_mode}",
            f"dst {NON_LOCAL_DST}",
            f"dst_mac {mac}",
        ):
            write(name, c)
        for c in extra:
            write(name, c)
            # pktgen takes an unknown flag or value without an error from write()
            text = (PROC / name).read_text()
            if "Result: OK" not in text:
                raise RuntimeError(f"pktgen {name}: {c!r} refused:\n{text}")
    return names


def start(names: Sequence[str], count: int) -> None:
    """Send: write "start" to pgctrl, then wait until every device in names has its
    result (count frames each; count 0 runs until "stop", which is what returns).
    pgctrl's start returns as soon as no thread runs a device, after 125 ms at least;
    a generator thread with nothing to do looks at its control flags only every
    100 ms (no wake-up), so under load it may not have begun when start returns, and
    the devices would be removed unsent."""
    write("pgctrl", "start")
    if not count:
        return
    end = time.monotonic() + 60 + count / 10_000
    for name in names:
        while not RESULT.search((PROC / name).read_text()):
            if time.monotonic() > end:
                raise RuntimeError(f"pktgen {name}: no result:\n{(PROC / name).read_text()}")
            time.sleep(0.05)


def run(dev: str, count: int, pkt_size: int, threads: int = 1, extra: Sequence[str] = ()) -> Run:
    """Inject count frames per thread (thread t on CPU t) into dev's receive path.
    extra: more pktgen commands for every thread's device (e.g. "flag UDPSRC_RND")."""
    names = add(dev, threads, count, pkt_size, extra=extra)
    start(names, count)
    counts, usecs = [], []
    for name in names:
        m = RESULT.search((PROC / name).read_text())
        assert m
        usecs.append(int(m.group(1)))
        counts.append(int(m.group(2)))
    reset()
    return Run(tuple(counts), tuple(usecs))
