"""The rows of the benchmark table: what runs while pktgen floods the dummy device."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.tools import (
    MGDUMP_BUFFER_KIB,
    Capture,
    Dumpcap,
    MgcapCapture,
    Netsniff,
    Tcpdump,
    Xdpdump,
)

SIZES = (64, 128, 256, 1500)
LOSS_RING = 64 << 10
OVERLOAD_MGDUMP_KIB = 2048  # mgdump's smallest buffer: two blocks of 1 MiB
# per CPU; with mgdump's own buffer (tests/bench/tools.py MGDUMP_BUFFER_KIB) 64 MiB in
# all on two CPUs, the buffer the peers get (tcpdump -B 65536 and so on)
RING = 16 << 20

Maker = Callable[[str, Path, int | None], Capture]


@dataclass(frozen=True)
class Traffic:
    """What pktgen sends beyond its defaults (UDP from port 9 to port 9): extra pktgen
    commands per generator thread.  The default traffic has no name and no commands."""

    name: str = ""
    pktgen: tuple[str, ...] = ()


DEFAULT_TRAFFIC = Traffic()
# UDP source ports drawn at random from 1000..1099 for every frame (pktgen's
# udp_src_max is exclusive): "udp src port 1000" matches 1 % of the frames
PORTS = Traffic("100 random src ports", ("flag UDPSRC_RND", "udp_src_min 1000", "udp_src_max 1100"))
FILTER_1PCT = "udp src port 1000"
FILTER_NONE = "udp src port 999"  # no frame of PORTS (nor of the default traffic)


@dataclass(frozen=True)
class Row:
    name: str
    group: str  # pktgen | null | mgcap | peer | reader | loss
    pkt_size: int = 128
    threads: int = 1
    hook: str | None = None  # the null rx_handler: "pass" or "consume"
    make: Maker | None = None
    baseline: str | None = None  # the null row this one adds cost to
    stop_reader: bool = False  # loss regime: the reader is stopped during the flood
    module_params: str = ""  # mgcap.ko parameters for this row (reloaded around it)
    traffic: Traffic = DEFAULT_TRAFFIC
    filter: str | None = None  # the capture filter make() installs (for the record)

    def _key(self, name: str) -> str:
        key = f"{name} | {self.pkt_size} B | {self.threads} thr"
        return f"{key} | {self.traffic.name}" if self.traffic.name else key

    @property
    def key(self) -> str:
        """Name, frame size, generator threads and, unless the default, the traffic."""
        return self._key(self.name)

    def baseline_key(self) -> str | None:
        """The key of the null row with the same frames, threads and traffic."""
        return self._key(self.baseline) if self.baseline else None


NULL_PASS = "null rx_handler, pass"
NULL_CONSUME = "null rx_handler, consume"


def _mgcap(
    mode: str,
    reader: str = "mgdump",
    ring: int = RING,
    capture_filter: str | None = None,
    snaplen: int | None = None,
    buffer_kib: int = MGDUMP_BUFFER_KIB,
    slow_output: bool = False,
) -> Maker:
    def make(dev: str, wd: Path, pin: int | None) -> Capture:
        return MgcapCapture(dev, wd, pin, mode=mode, reader=reader, ring_size=ring,
                            capture_filter=capture_filter, snaplen=snaplen,
                            buffer_kib=buffer_kib, slow_output=slow_output)  # fmt: skip

    return make


def _tcpdump(expression: str | None = None) -> Maker:
    def make(dev: str, wd: Path, pin: int | None) -> Capture:
        return Tcpdump(dev, wd, pin, expression=expression)

    return make


def _mgcap_rows(size: int, threads: int) -> list[Row]:
    return [
        Row("mgcap mirror + mgdump", "mgcap", size, threads, make=_mgcap("mirror"),
            baseline=NULL_PASS),
        Row("mgcap drop + mgdump", "mgcap", size, threads, make=_mgcap("drop"),
            baseline=NULL_CONSUME),
        # netsniff-ng has no snapshot length: the same whole frames from mgcap
        Row("mgcap drop + mgdump -s 0", "mgcap", size, threads,
            make=_mgcap("drop", snaplen=0), baseline=NULL_CONSUME),
        # the records copied out of the rings with read(), as mgdump did before it
        # wrote from the mapped rings
        Row("mgcap drop + mgdump --read", "mgcap", size, threads,
            make=_mgcap("drop", "mgdump-read"), baseline=NULL_CONSUME),
    ]  # fmt: skip


def _peer_rows(size: int, xdpdump: bool) -> list[Row]:
    rows = [
        Row("tcpdump -B 65536 -w", "peer", size, make=Tcpdump, baseline=NULL_PASS),
        Row("dumpcap -B 64 -w", "peer", size, make=Dumpcap, baseline=NULL_PASS),
        Row("netsniff-ng (whole frames)", "peer", size, make=Netsniff, baseline=NULL_PASS),
    ]  # fmt: skip
    if xdpdump:
        rows.append(Row("xdpdump (libpcap mode)", "peer", size, make=Xdpdump, baseline=NULL_PASS))
    return rows


def _base_rows(size: int, threads: int) -> list[Row]:
    return [
        Row("pktgen alone", "pktgen", size, threads),
        Row(NULL_PASS, "null", size, threads, hook="pass"),
        Row(NULL_CONSUME, "null", size, threads, hook="consume"),
    ]


def _mgdump_filtered(expr: str | None, traffic: Traffic = PORTS) -> Row:
    name = f'mgcap drop + mgdump "{expr}"' if expr else "mgcap drop + mgdump"
    return Row(name, "mgcap", make=_mgcap("drop", capture_filter=expr), baseline=NULL_CONSUME,
               traffic=traffic, filter=expr)  # fmt: skip


def _tcpdump_filtered(expr: str | None) -> Row:
    name = f'tcpdump -B 65536 -w "{expr}"' if expr else "tcpdump -B 65536 -w"
    return Row(name, "peer", make=_tcpdump(expr), baseline=NULL_PASS, traffic=PORTS,
               filter=expr)  # fmt: skip


def filter_rows() -> list[Row]:
    """Capture filters: the same flood of 128-byte frames from 100 random UDP source
    ports, unfiltered, with a filter that matches 1 % and one that matches nothing,
    for mgcap (drop mode, mgdump) and tcpdump, and the baselines of that traffic."""
    base = [
        Row("pktgen alone", "pktgen", traffic=PORTS),
        Row(NULL_PASS, "null", hook="pass", traffic=PORTS),
        Row(NULL_CONSUME, "null", hook="consume", traffic=PORTS),
    ]
    tools = [_mgdump_filtered(e) for e in (None, FILTER_1PCT, FILTER_NONE)]
    tools += [_tcpdump_filtered(e) for e in (None, FILTER_1PCT, FILTER_NONE)]
    return base + tools


def select(rows: list[Row], pattern: str) -> list[Row]:
    """The rows whose key matches pattern, and the null rows they add cost to (an added
    cost needs its baseline in the same boot), in the order of rows."""
    keys = {r.key for r in rows if re.search(pattern, r.key)}
    keys |= {b for r in rows if r.key in keys and (b := r.baseline_key())}
    return [r for r in rows if r.key in keys]


def all_rows(xdpdump: bool = True) -> list[Row]:
    rows: list[Row] = []
    for size in SIZES:
        rows += _base_rows(size, 1) + _mgcap_rows(size, 1) + _peer_rows(size, xdpdump)
    rows += _base_rows(128, 2) + _mgcap_rows(128, 2)
    rows += [
        Row("netsniff-ng (whole frames) fanout x2", "peer", threads=2,
            make=lambda d, w, p: Netsniff(d, w, p, fanout=True), baseline=NULL_PASS),
        Row("mgcap drop + cat >/dev/null", "reader", make=_mgcap("drop", "cat-null"),
            baseline=NULL_CONSUME),
        Row("mgcap drop + cat >file", "reader", make=_mgcap("drop", "cat"),
            baseline=NULL_CONSUME),
        Row("mgcap drop + mgdump, wakeup_usecs=10000", "reader", make=_mgcap("drop"),
            baseline=NULL_CONSUME, module_params="wakeup_usecs=10000"),
    ]  # fmt: skip
    rows += filter_rows()
    rows += loss_rows()
    return rows


def loss_rows() -> list[Row]:
    """Loss regimes, where the counters must still add up: a reader stopped during the
    flood; and overload, a running tool whose output is slower than the link (a FIFO
    drained at ~6.5 MB/s), both generator threads, small buffers of the same total
    (mgcap: two 64 KiB rings and mgdump's smallest buffer, 2 MiB)."""
    overload_kib = 2 * (LOSS_RING >> 10) + OVERLOAD_MGDUMP_KIB
    return [
        Row("LOSS mgcap drop, 64 KiB ring, reader stopped", "loss",
            make=_mgcap("drop", ring=LOSS_RING), stop_reader=True),
        Row("LOSS tcpdump -B 256, stopped", "loss",
            make=lambda d, w, p: Tcpdump(d, w, p, buffer_kib=256), stop_reader=True),
        Row(f"OVERLOAD mgcap drop + mgdump -B {OVERLOAD_MGDUMP_KIB}, 64 KiB rings, slow output",
            "loss", threads=2, make=_mgcap("drop", ring=LOSS_RING, slow_output=True,
                                            buffer_kib=OVERLOAD_MGDUMP_KIB)),
        Row(f"OVERLOAD tcpdump -B {overload_kib}, slow output", "loss", threads=2,
            make=lambda d, w, p: Tcpdump(d, w, p, buffer_kib=overload_kib, slow_output=True)),
    ]  # fmt: skip


def smoke_rows() -> list[Row]:
    """A few seconds' worth: every kind of row once, and every peer tool once (each
    has its own way of counting its drops: tests/vm/test_bench_smoke.py checks that
    they account for every frame). The loss row with the quick reader: mgdump's
    start-up costs many seconds under TCG. No filter row: each mgdump costs minutes
    of the suite under TCG, and tests/vm/test_mgdump_filter.py covers mgdump with a
    filter."""
    return [
        Row("pktgen alone", "pktgen"),
        Row(NULL_CONSUME, "null", hook="consume"),
        *_mgcap_rows(128, 1)[1:],
        Row("mgcap drop + cat >/dev/null", "reader", make=_mgcap("drop", "cat-null"),
            baseline=NULL_CONSUME),
        *_peer_rows(128, xdpdump=True),
        Row("LOSS mgcap drop, 64 KiB ring, cat stopped", "loss",
            make=_mgcap("drop", "cat", ring=LOSS_RING), stop_reader=True),
    ]  # fmt: skip
