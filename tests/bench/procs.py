"""Capture processes under measurement: start, CPU time, quiescence, signals."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def cpu_ns(pid: int) -> int:
    """CPU time (user + system) of every thread of pid so far, in ns."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total


class Proc:
    """One capture process; stdout and stderr go to files (no pipe can fill up)."""

    def __init__(self, argv: Sequence[str], logdir: Path, tag: str, pin: int | None) -> None:
        self.argv = [*(["taskset", "-c", str(pin)] if pin is not None else []), *argv]
        self.out_path = logdir / f"{tag}.out"
        self.err_path = logdir / f"{tag}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid = self.popen.pid

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise RuntimeError(f"{self.argv[0]} did not exit: {self.output()}") from None

    def open_count(self, prefix: str) -> int:
        """How many of its file descriptors are open on paths starting with prefix."""
        try:
            fds = os.listdir(f"/proc/{self.pid}/fd")
        except FileNotFoundError:
            return 0
        n = 0
        for fd in fds:
            try:
                n += os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith(prefix)
            except OSError:
                continue
        return n


def packet_sockets_running(pid: int, ifindex: int) -> int:
    """How many of pid's AF_PACKET sockets are bound to ifindex and receiving
    (/proc/net/packet's R column: the socket's hook is registered)."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return 0
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    n = 0
    for line in Path("/proc/net/packet").read_text().splitlines()[1:]:
        f = line.split()  # sk RefCnt Type Proto Iface R Rmem User Inode
        n += int(f[4]) == ifindex and f[5] == "1" and int(f[8]) in inodes
    return n


def wait_for(
    what: str, pred: Callable[[], bool], procs: Sequence[Proc], timeout: float = 120
) -> None:
    end = time.monotonic() + timeout
    while not pred():
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.argv} exited before {what}: {p.output()}")
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_quiet(procs: Sequence[Proc], files: Sequence[Path], settle: float = 1.5) -> int:
    """Wait until the processes are done with the traffic: for `settle` seconds their
    output files did not grow and they used less than a tenth of a CPU (a TPACKET_V3
    reader gets its last block only at the block timeout, 1 s for tcpdump).  Returns
    their CPU time (ns) when they went quiet, so that idle polling after the traffic
    does not count."""

    def sample() -> tuple[list[int], int]:
        sizes = [f.stat().st_size if f.exists() else 0 for f in files]
        return sizes, sum(cpu_ns(p.pid) for p in procs)

    step = 0.25
    need = max(int(settle / step), 1)
    quiet = 0
    last = sample()
    went_quiet = last[1]
    end = time.monotonic() + 120
    while quiet < need and time.monotonic() < end:
        time.sleep(step)
        cur = sample()
        busy = cur[0] != last[0] or cur[1] - last[1] > 0.1 * step * 1e9
        if busy:
            quiet = 0
            went_quiet = cur[1]
        else:
            quiet += 1
        last = cur
    return went_quiet


def stop_all(procs: Sequence[Proc], sig: int = signal.SIGINT) -> list[int]:
    for p in procs:
        p.signal(signal.SIGCONT)
        p.signal(sig)
    return [p.wait() for p in procs]
