"""The rows of the benchmark table: what runs while pktgen floods the dummy device."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.tools import Capture, Dumpcap, MgcapCapture, Netsniff, Tcpdump, Xdpdump

SIZES = (64, 128, 256, 1500)
LOSS_RING = 64 << 10
# per CPU: 64 MiB in all on two CPUs, the buffer the peers get (tcpdump -B 65536 and so on)
RING = 32 << 20

Maker = Callable[[str, Path, int | None], Capture]


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

    @property
    def key(self) -> str:
        return f"{self.name} | {self.pkt_size} B | {self.threads} thr"

    def baseline_key(self) -> str | None:
        if not self.baseline:
            return None
        return f"{self.baseline} | {self.pkt_size} B | {self.threads} thr"


NULL_PASS = "null rx_handler, pass"
NULL_CONSUME = "null rx_handler, consume"


def _mgcap(mode: str, reader: str = "mgdump", ring: int = RING) -> Maker:
    def make(dev: str, wd: Path, pin: int | None) -> Capture:
        return MgcapCapture(dev, wd, pin, mode=mode, reader=reader, ring_size=ring)

    return make


def _mgcap_rows(size: int, threads: int) -> list[Row]:
    return [
        Row("mgcap mirror + mgdump", "mgcap", size, threads, make=_mgcap("mirror"),
            baseline=NULL_PASS),
        Row("mgcap drop + mgdump", "mgcap", size, threads, make=_mgcap("drop"),
            baseline=NULL_CONSUME),
    ]  # fmt: skip


def _base_rows(size: int, threads: int) -> list[Row]:
    return [
        Row("pktgen alone", "pktgen", size, threads),
        Row(NULL_PASS, "null", size, threads, hook="pass"),
        Row(NULL_CONSUME, "null", size, threads, hook="consume"),
    ]


def all_rows(xdpdump: bool = True) -> list[Row]:
    rows: list[Row] = []
    for size in SIZES:
        rows += _base_rows(size, 1) + _mgcap_rows(size, 1)
    rows += _base_rows(128, 2) + _mgcap_rows(128, 2)
    rows += [
        Row("mgcap drop + cat >/dev/null", "reader", make=_mgcap("drop", "cat-null"),
            baseline=NULL_CONSUME),
        Row("mgcap drop + cat >file", "reader", make=_mgcap("drop", "cat"),
            baseline=NULL_CONSUME),
        Row("mgcap drop + mgdump, wakeup_usecs=10000", "reader", make=_mgcap("drop"),
            baseline=NULL_CONSUME, module_params="wakeup_usecs=10000"),
        Row("tcpdump -B 65536 -w", "peer", make=Tcpdump, baseline=NULL_PASS),
        Row("dumpcap -B 64 -w", "peer", make=Dumpcap, baseline=NULL_PASS),
        Row("netsniff-ng", "peer", make=Netsniff, baseline=NULL_PASS),
        Row("netsniff-ng fanout x2", "peer", threads=2,
            make=lambda d, w, p: Netsniff(d, w, p, fanout=True), baseline=NULL_PASS),
    ]  # fmt: skip
    if xdpdump:
        rows.append(Row("xdpdump (libpcap mode)", "peer", make=Xdpdump, baseline=NULL_PASS))
    rows += loss_rows()
    return rows


def loss_rows() -> list[Row]:
    return [
        Row("LOSS mgcap drop, 64 KiB ring, reader stopped", "loss",
            make=_mgcap("drop", ring=LOSS_RING), stop_reader=True),
        Row("LOSS tcpdump -B 256, stopped", "loss",
            make=lambda d, w, p: Tcpdump(d, w, p, buffer_kib=256), stop_reader=True),
    ]  # fmt: skip


def smoke_rows() -> list[Row]:
    """A few seconds' worth: every kind of row once (the loss row with the quick reader:
    mgdump's start-up costs many seconds under TCG)."""
    return [
        Row("pktgen alone", "pktgen"),
        Row(NULL_CONSUME, "null", hook="consume"),
        *_mgcap_rows(128, 1)[1:],
        Row("mgcap drop + cat >/dev/null", "reader", make=_mgcap("drop", "cat-null"),
            baseline=NULL_CONSUME),
        Row("tcpdump -B 65536 -w", "peer", make=Tcpdump, baseline=NULL_PASS),
        Row("LOSS mgcap drop, 64 KiB ring, cat stopped", "loss",
            make=_mgcap("drop", "cat", ring=LOSS_RING), stop_reader=True),
    ]  # fmt: skip
