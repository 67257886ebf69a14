"""The capture tools the benchmark measures, each behind one interface:
start() returns once the tool captures, mark() takes the CPU baseline just before
the traffic, finish() waits until the tool has taken everything, stops it and
accounts for every frame: captured (packets in its output), drops it reports, and
the frames its capture filter rejected where the tool counts them."""

import functools
import json
import os
import re
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.capfile import count_packets
from tests.bench.procs import Proc, cpu_ns, packet_sockets_running, stop_all, wait_for, wait_quiet

SNAPLEN = 96
# mgdump's buffer: with mgcap's two rings (tests/bench/rows.py RING) the 64 MiB the
# peers get
MGDUMP_BUFFER_KIB = 32 << 10


@dataclass
class Outcome:
    captured: int
    drops: int  # the drops the tool (and, for mgcap, the kernel) counted
    cpu_seconds: float  # CPU time of the capture processes between mark() and the end
    detail: dict[str, Any] = field(default_factory=dict)
    # frames the capture filter rejected; None: the tool does not count them (tcpdump)
    filtered: int | None = None


# An output slower than the link: drain a FIFO into a file, 64 KiB every 10 ms
# (at most ~6.5 MB/s, less under TCG), until the writer closes it.
SLOW_SINK = """
import os, sys, time
src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
while True:
    data = os.read(src, 65536)
    if not data:
        break
    os.write(dst, data)
    time.sleep(0.01)
"""


class Capture(ABC):
    """A capture tool under measurement; subclasses say how to run and account it."""

    name = "capture"

    def __init__(self, dev: str, workdir: Path, pin: int | None) -> None:
        self.dev = dev
        self.workdir = workdir
        self.pin = pin
        self.procs: list[Proc] = []
        self.sinks: list[Proc] = []  # slow outputs: not the tool, their CPU not counted
        self._cpu0 = 0

    def slow_sink(self, out: Path) -> Path:
        """A FIFO for the tool to write to instead of out, drained into out slowly."""
        fifo = out.with_name(out.name + ".fifo")
        os.mkfifo(fifo)
        argv = [sys.executable, "-I", "-S", "-c", SLOW_SINK, str(fifo), str(out)]
        self.sinks.append(Proc(argv, self.workdir, f"sink{len(self.sinks)}", None))
        return fifo

    def end_sinks(self) -> None:
        """After the tool exited: the slow outputs have written all it gave them."""
        for s in self.sinks:
            s.wait(600)

    def kill(self) -> None:
        for p in [*self.procs, *self.sinks]:
            if p.alive():
                p.popen.kill()
                p.popen.wait()

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def finish(self) -> Outcome: ...

    def outputs(self) -> list[Path]:
        return []

    def mark(self) -> None:
        self._cpu0 = self._cpu()

    def _cpu(self) -> int:
        return sum(cpu_ns(p.pid) for p in self.procs)

    def pause(self) -> None:
        for p in self.procs:
            p.signal(signal.SIGSTOP)

    def resume(self) -> None:
        for p in self.procs:
            p.signal(signal.SIGCONT)

    def settle(self) -> float:
        """Wait until the traffic is processed; returns CPU seconds used since mark()."""
        return (wait_quiet(self.procs, self.outputs()) - self._cpu0) / 1e9

    def spawn(self, argv: list[str], tag: str | None = None, pin: int | None = None) -> Proc:
        p = Proc(argv, self.workdir, tag or f"{self.name}{len(self.procs)}", pin)
        self.procs.append(p)
        return p


def _number(pattern: str, text: str, what: str) -> int:
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"no {what} in the tool's output:\n{text}")
    return int(m.group(1))


class PeerCapture(Capture):
    """A tool started as one or more processes writing capture files, stopped by SIGINT."""

    ready_marker = ""

    def argvs(self) -> list[list[str]]:
        raise NotImplementedError

    def pins(self) -> list[int | None]:
        return [self.pin] * len(self.argvs())

    def drops(self, output: str) -> int:
        raise NotImplementedError

    def start(self) -> None:
        for argv, pin in zip(self.argvs(), self.pins(), strict=True):
            self.spawn(argv, pin=pin)
        for p in self.procs:
            wait_for(f"{self.name} to start", self._ready(p), [p])
            # its message can come before its socket receives (dumpcap's does: the
            # first frames of a flood were neither captured nor counted)
            wait_for(f"{self.name}'s packet socket on {self.dev}", self._receiving(p), [p])

    def _receiving(self, p: Proc) -> Callable[[], bool]:
        ifindex = int(Path(f"/sys/class/net/{self.dev}/ifindex").read_text())
        return lambda: packet_sockets_running(p.pid, ifindex) > 0

    def _ready(self, p: Proc) -> Callable[[], bool]:
        return lambda: self.ready_marker in p.output()

    def finish(self) -> Outcome:
        cpu = self.settle()
        stop_all(self.procs)
        self.end_sinks()
        outputs = [p.output() for p in self.procs]
        return Outcome(
            captured=sum(count_packets(str(f)) for f in self.outputs()),
            drops=sum(self.drops(o) for o in outputs),
            cpu_seconds=cpu,
            detail={"output": [o[-400:] for o in outputs]},
        )


class Tcpdump(PeerCapture):
    """tcpdump, optionally with a capture filter expression (libpcap attaches it to the
    socket: the kernel runs it before the copy and counts nothing it rejects)."""

    name = "tcpdump"
    ready_marker = "listening on"

    def __init__(
        self,
        dev: str,
        workdir: Path,
        pin: int | None,
        buffer_kib: int = 65536,
        expression: str | None = None,
        slow_output: bool = False,
    ) -> None:
        super().__init__(dev, workdir, pin)
        self.buffer_kib = buffer_kib
        self.expression = expression
        self.slow_output = slow_output
        self.target = self.outputs()[0]  # what -w names: the file, or a slow sink's FIFO

    def outputs(self) -> list[Path]:
        return [self.workdir / "tcpdump.pcap"]

    def start(self) -> None:
        if self.slow_output:
            self.target = self.slow_sink(self.outputs()[0])
        super().start()

    def argvs(self) -> list[list[str]]:
        return [
            ["tcpdump", "-i", self.dev, "-n", "-s", str(SNAPLEN), "-B", str(self.buffer_kib),
             "-w", str(self.target), *([self.expression] if self.expression else [])]
        ]  # fmt: skip

    def drops(self, output: str) -> int:
        return _number(r"(\d+) packets? dropped by kernel", output, "kernel drops")


class Xdpdump(Tcpdump):
    """xdpdump on a device without an XDP program: its libpcap ("legacy") mode."""

    name = "xdpdump"

    def outputs(self) -> list[Path]:
        return [self.workdir / "xdpdump.pcap"]

    def argvs(self) -> list[list[str]]:
        return [["xdpdump", "-i", self.dev, "-s", str(SNAPLEN), "-w", str(self.outputs()[0])]]


class Dumpcap(PeerCapture):
    name = "dumpcap"
    ready_marker = "Capturing on"

    def outputs(self) -> list[Path]:
        return [self.workdir / "dumpcap.pcapng"]

    def argvs(self) -> list[list[str]]:
        return [
            ["dumpcap", "-i", self.dev, "-s", str(SNAPLEN), "-B", "64",
             "-w", str(self.outputs()[0])]
        ]  # fmt: skip

    def drops(self, output: str) -> int:
        return _number(r"Packets received/dropped on interface .*: \d+/(\d+)", output, "drops")


class Netsniff(PeerCapture):
    """netsniff-ng, one process, or two in a PACKET_FANOUT_CPU group (one per CPU)."""

    name = "netsniff-ng"
    ready_marker = "Running"

    def __init__(self, dev: str, workdir: Path, pin: int | None, fanout: bool = False):
        super().__init__(dev, workdir, pin)
        self.fanout = fanout

    def outputs(self) -> list[Path]:
        n = 2 if self.fanout else 1
        return [self.workdir / f"netsniff{i}.pcap" for i in range(n)]

    def argvs(self) -> list[list[str]]:
        argvs = []
        for out in self.outputs():
            argv = ["netsniff-ng", "--in", self.dev, "--out", str(out), "--silent",
                    "--ring-size", "64MiB", "--notouch-irq"]  # fmt: skip
            if self.fanout:
                argv += ["--fanout-group", "7", "--fanout-type", "cpu"]
            argvs.append(argv)
        return argvs

    def pins(self) -> list[int | None]:
        return [0, 1] if self.fanout else [self.pin]

    def drops(self, output: str) -> int:
        return _number(r"(\d+)\s+packets failed filter", output, "drops")


def _python_tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def mgdump_available() -> bool:
    return Path(_python_tool("mgdump")).exists()


@functools.cache
def mgdump_takes_filter() -> bool:
    """Whether this mgdump takes a trailing filter expression (tcpdump's syntax)."""
    if not mgdump_available():
        return False
    out = subprocess.run(
        [_python_tool("mgdump"), "--help"], capture_output=True, text=True, check=False
    ).stdout
    return "EXPRESSION" in out


class MgcapCapture(Capture):
    """mgcap with a user space reader: mgdump writing PCAP-NG (or, until mgdump exists,
    a stand-in `cat /dev/mgcap/DEV > FILE`), or `cat /dev/mgcap/DEV > /dev/null`.

    capture_filter: a tcpdump expression installed with the capture; mgdump gets it as
    its trailing expression and starts the capture with it, or, if this mgdump takes
    none, the capture is started with it here and mgdump reads a capture it did not
    start (it leaves it running; the row's cleanup stops it)."""

    name = "mgcap"

    def __init__(
        self,
        dev: str,
        workdir: Path,
        pin: int | None,
        mode: str,
        reader: str = "mgdump",
        ring_size: int | None = None,
        capture_filter: str | None = None,
        snaplen: int | None = None,
        buffer_kib: int = MGDUMP_BUFFER_KIB,
        slow_output: bool = False,
    ) -> None:
        super().__init__(dev, workdir, pin)
        self.buffer_kib = buffer_kib
        self.slow_output = slow_output
        self.mode = mode
        self.ring_size = ring_size
        self.capture_filter = capture_filter
        self.snaplen = snaplen  # None: the module's default (96)
        self.started_here = False  # the capture was started here, not by mgdump
        # "mgdump-read": mgdump --read (the records copied out with read())
        self.read_rings = reader == "mgdump-read"
        if self.read_rings:
            reader = "mgdump"
        self.reader = "cat" if reader == "mgdump" and not mgdump_available() else reader
        self.stats_json = workdir / "mgdump-stats.json"
        self.out = workdir / ("mgcap.pcapng" if self.reader != "cat-null" else "null")

    def outputs(self) -> list[Path]:
        return [self.out] if self.reader != "cat-null" else []

    def start(self) -> None:
        node = f"/dev/mgcap/{self.dev}"
        if self.reader == "mgdump":
            target = self.slow_sink(self.out) if self.slow_output else self.out
            argv = [_python_tool("mgdump"), "-i", self.dev, "-w", str(target),
                    "-q", "--stats-json", str(self.stats_json),
                    "-B", str(self.buffer_kib)]  # fmt: skip
            if self.read_rings:
                argv.append("--read")
            if self.snaplen is not None:
                argv += ["-s", str(self.snaplen)]
            if self.capture_filter and not mgdump_takes_filter():
                self._start_capture()
            else:
                argv += ["--mode", self.mode]
                if self.ring_size:
                    argv += ["--ring-size", str(self.ring_size)]
            if self.pin is not None:
                # its ring readers would pin themselves to their rings' CPUs, here the
                # generator's: keep mgdump where the other tools run
                argv.append("--no-pin")
            if self.capture_filter and mgdump_takes_filter():
                argv += ["--", self.capture_filter]  # last: nothing after it is an option
            p = self.spawn(argv, tag="mgdump", pin=self.pin)
            # one file per ring reader
            readers = os.cpu_count() or 1
        else:
            self._start_capture()
            into = "/dev/null" if self.reader == "cat-null" else str(self.out)
            p = self.spawn(["sh", "-c", f"exec cat {node} > {into}"], tag="cat", pin=self.pin)
            readers = 1
        wait_for(f"{self.reader} to open {node}", lambda: p.open_count(node) >= readers, [p])

    def _start_capture(self) -> None:
        from mgctl.api import Mgcap

        with Mgcap() as m:
            m.start(self.dev, mode=self.mode, ring_size=self.ring_size, snaplen=self.snaplen,
                    filter=self.capture_filter)  # fmt: skip
        self.started_here = True

    def _kernel_stats(self) -> dict[str, int]:
        d = Path(f"/sys/class/mgcap/{self.dev}/statistics")
        return {f.name: int(f.read_text()) for f in d.iterdir()}

    def finish(self) -> Outcome:
        cpu = self.settle()
        if self.reader == "mgdump":
            stop_all(self.procs)
            self.end_sinks()
            stats = json.loads(self.stats_json.read_text())
            in_file = count_packets(str(self.out))
            if in_file != stats["written"]:
                raise RuntimeError(f"mgdump says {stats['written']} written, file has {in_file}")
            detail: dict[str, Any] = {"mgdump": stats, "reader": "mgdump"}
            if self.started_here:
                # mgdump counted from the capture's state when it came; the kernel's
                # counters are the whole story (it started with the capture)
                kernel = self._kernel_stats()
                filtered = kernel.get("filtered_packets", 0)
                detail["kernel"] = kernel
            else:
                filtered = stats.get("filtered", 0)
            return Outcome(
                captured=stats["written"],
                drops=stats["kernel_drops"] + stats["mgdump_drops"],
                cpu_seconds=cpu,
                detail=detail,
                filtered=filtered,
            )
        from mgctl.api import Mgcap

        kernel = self._kernel_stats()
        # stopping the capture ends the reader: it gets what is left, then EOF
        with Mgcap() as m:
            m.stop(self.dev)
        self.procs[0].wait()
        captured = kernel["captured_packets"]
        if self.reader == "cat":
            in_file = count_packets(str(self.out))
            if in_file != captured:
                raise RuntimeError(f"mgcap captured {captured}, the reader wrote {in_file}")
        return Outcome(
            captured=captured,
            drops=kernel["ring_full_drops"] + kernel["copy_errors"],
            cpu_seconds=cpu,
            detail={"kernel": kernel, "reader": self.reader},
            filtered=kernel.get("filtered_packets", 0),
        )
