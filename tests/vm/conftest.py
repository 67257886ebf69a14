"""Fixtures of the VM tests: the module, namespaces and veth pairs, pktgen, real readers.

These tests need the real mgcap.ko and run only inside the test VM
(tests/harness/vmrun.py sets MGCAP_VM=1); on the host they are skipped.
"""

import contextlib
import ctypes
import gc
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mgctl import pcapng
from mgctl.api import Mgcap
from mgctl.chardev import CaptureDevice, device_path
from mgctl.record import Record, iter_records
from tests.bench import pktgen as bench_pktgen
from tests.harness import kernel_log
from tests.harness.skips import ONCE_ELSEWHERE
from tests.vm import traffic as traffic_source

IN_VM = os.environ.get("MGCAP_VM") == "1"
ROOT = Path(os.environ.get("MGCAP_ROOT", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("MGCAP_BUILD", ROOT / "build"))
KO = BUILD / "kernel" / "mgcap.ko"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs the test VM (python -m tests.harness.vmrun)")
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)
            if not IN_VM:
                item.add_marker(skip)
            elif (why := not_this_boot(item)) is not None:
                item.add_marker(pytest.mark.skip(reason=why))


def not_this_boot(item: pytest.Item) -> str | None:
    """Why a test marked once(slot=k, why=...) does not run in this boot, or None.

    Such a test checks user space (mgctl's, mgdump's logic, a tool's plumbing), not
    the kernel: a run over n kernels runs it in one boot only, the (k % n)-th, so
    that these costly tests are spread over the kernels' boots (which vmrun.py can
    run in parallel). A run on one kernel runs all of them."""
    mark = item.get_closest_marker("once")
    if mark is None:
        return None
    index, _, count = os.environ.get("MGCAP_SHARE", "0/1").partition("/")
    n = max(int(count or 1), 1)
    if int(mark.kwargs.get("slot", 0)) % n == int(index):
        return None
    # the reason's end tells the expected-skip check a once skip (tests/harness/skips.py)
    return f"{mark.kwargs.get('why', 'user space only')}: {ONCE_ELSEWHERE}"


def sh(cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, shell=True, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd!r} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc


def kernel_log_mark() -> str:
    """A unique line written into the kernel log: kernel_problems_since() reads from it."""
    mark = f"mgcap-test: mark {time.monotonic_ns()}"
    Path("/dev/kmsg").write_text(mark + "\n")
    return mark


def kernel_log_since(mark: str) -> list[str]:
    """The kernel's log lines from mark on."""
    log = sh("dmesg").stdout
    return log[log.rindex(mark) :].splitlines()


def kernel_problems_since(mark: str) -> list[str]:
    """The WARN/BUG/KASAN/... lines the kernel logged after mark (vmrun's own rule)."""
    return kernel_log.problems(kernel_log_since(mark))


def sysctl(name: str, value: str) -> None:
    Path("/proc/sys/" + name.replace(".", "/")).write_text(value)


class Module:
    """Load and unload mgcap.ko; the test ends with the module unloaded."""

    def __init__(self) -> None:
        self.loaded = False

    def load(self, **params: object) -> None:
        args = " ".join(f"{k}={v}" for k, v in params.items())
        sh(f"insmod {KO} {args}")
        self.loaded = True

    def try_load(self, **params: object) -> subprocess.CompletedProcess[str]:
        args = " ".join(f"{k}={v}" for k, v in params.items())
        proc = sh(f"insmod {KO} {args}", check=False)
        self.loaded = proc.returncode == 0
        return proc

    def unload(self) -> None:
        sh("rmmod mgcap")
        self.loaded = False

    def stat(self, ifname: str, name: str) -> int:
        return int(Path(f"/sys/class/mgcap/{ifname}/statistics/{name}").read_text())

    def stats(self, ifname: str) -> dict[str, int]:
        d = Path(f"/sys/class/mgcap/{ifname}/statistics")
        return {p.name: int(p.read_text()) for p in d.iterdir()}

    def cpu_stats(self, ifname: str) -> list[dict[str, int]]:
        """Each ring's counters (netlink cpu-stats), with its "cpu"."""
        with Mgcap() as m:
            return m.show(ifname).cpu_stats

    def ring_stats(self, ifname: str) -> list[dict[str, int]]:
        """Each ring's counters, checked: in every ring seen = captured + filtered +
        ring-full drops + copy errors, and each counter of sysfs's totals is the sum
        over the rings. Element i is ring (CPU) i's."""
        rings = self.cpu_stats(ifname)
        total = self.stats(ifname)
        assert [r["cpu"] for r in rings] == list(range(len(rings))), rings
        for r in rings:
            parts = ("captured_packets", "filtered_packets", "ring_full_drops", "copy_errors")
            assert r["seen_packets"] == sum(r[k] for k in parts), r
        for name, value in total.items():
            assert sum(r[name] for r in rings) == value, (name, total, rings)
        return rings


@pytest.fixture
def mgcap() -> Iterator[Module]:
    assert KO.exists(), f"{KO} not built"
    if Path("/sys/module/mgcap").exists():
        sh("rmmod mgcap")
    m = Module()
    yield m
    if Path("/sys/module/mgcap").exists() and sh("rmmod mgcap", check=False).returncode != 0:
        # a failed test may have left its files open: close them so the next test
        # starts clean, and fail this one
        close_leaked_files()
        sh("rmmod mgcap")
        raise AssertionError("the test left /dev/mgcap files open")
    assert not Path("/dev/mgcap").exists() or not any(Path("/dev/mgcap").iterdir())


def close_leaked_files() -> None:
    gc.collect()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/mgcap/"):
            os.close(int(fd))


@dataclass
class VethPair:
    """ns side: `peer` in netns `ns` (addr 10.77.0.1); init side: `dev` (10.77.0.2)."""

    ns: str
    peer: str
    dev: str
    ns_addr: str = "10.77.0.1"
    addr: str = "10.77.0.2"

    def ns_run(self, cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return sh(f"ip netns exec {self.ns} {cmd}", **kw)  # type: ignore[arg-type]

    def mac(self, ifname: str, ns: bool = False) -> str:
        pre = f"ip netns exec {self.ns} " if ns else ""
        path = f"/sys/class/net/{ifname}/address"
        return sh(f"{pre}cat {path}").stdout.strip()


@pytest.fixture
def veth() -> Iterator[VethPair]:
    """A veth pair from netns mgA to the initial netns, IPv6 off, static neighbours: no
    packet but the test's own crosses it."""
    p = VethPair(ns="mgA", peer="vpeer", dev="vcap")
    sh(f"ip netns del {p.ns}", check=False)
    sh(f"ip link del {p.dev}", check=False)
    sh(f"ip netns add {p.ns}")
    sh(f"ip link add {p.dev} type veth peer name {p.peer} netns {p.ns}")
    sysctl(f"net.ipv6.conf.{p.dev}.disable_ipv6", "1")
    p.ns_run(f"sysctl -qw net.ipv6.conf.{p.peer}.disable_ipv6=1")
    p.ns_run("ip link set lo up")
    sh(f"ip addr add {p.addr}/24 dev {p.dev}")
    p.ns_run(f"ip addr add {p.ns_addr}/24 dev {p.peer}")
    sh(f"ip link set {p.dev} up")
    p.ns_run(f"ip link set {p.peer} up")
    mac_dev, mac_peer = p.mac(p.dev), p.mac(p.peer, ns=True)
    sh(f"ip neigh replace {p.ns_addr} lladdr {mac_peer} dev {p.dev} nud permanent")
    p.ns_run(f"ip neigh replace {p.addr} lladdr {mac_dev} dev {p.peer} nud permanent")
    sysctl("net.core.netdev_max_backlog", "100000")
    sysctl("net.core.rmem_max", str(64 << 20))
    yield p
    sh(f"ip link del {p.dev}", check=False)
    sh(f"ip netns del {p.ns}", check=False)


def traffic(cmd: str, ns: str | None = None, cpu: int | None = None) -> None:
    """Send what `python -m tests.vm.traffic CMD` sends, from a thread of this process
    in netns ns, pinned to cpu: the same sockets without a Python start-up (seconds
    under TCG). The thread's own namespace and CPU mask end with it."""
    args = traffic_source.parser().parse_args(shlex.split(cmd))
    failed: list[BaseException] = []

    def send() -> None:
        try:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})  # 0: this thread
            with in_netns(ns):
                traffic_source.run(args)
        except BaseException as e:  # raised again in the test's thread
            failed.append(e)

    sender = threading.Thread(target=send, name=f"traffic {cmd}", daemon=True)
    sender.start()
    sender.join(600)
    assert not sender.is_alive(), f"traffic {cmd!r} still sending after 600 s"
    if failed:
        raise failed[0]


def pg_write(node: str, command: str) -> None:
    bench_pktgen.write(node, command)


def pktgen_reset() -> None:
    """Every device removed from pktgen's threads (tests/bench/pktgen.py's reset())."""
    bench_pktgen.reset()


def pktgen_setup(
    dev: str,
    threads: int,
    count: int,
    pkt_size: int = 128,
    xmit_mode: str = "netif_receive",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """pktgen loaded and reset, dev on threads kpktgend_0.. (tests/bench/pktgen.py's
    add()); returns the pktgen device names; writing "start" to pgctrl sends."""
    bench_pktgen.load()
    return bench_pktgen.add(dev, threads, count, pkt_size, xmit_mode, extra)


@dataclass
class Pktgen:
    dev: str

    def run(
        self, count: int, pkt_size: int = 128, threads: int = 1, extra: tuple[str, ...] = ()
    ) -> int:
        """Inject count frames per thread (0: until `stop` is written to pgctrl) into
        dev's receive path; extra: more pktgen commands per device. Returns frames sent."""
        names = pktgen_setup(self.dev, threads, count, pkt_size, extra=extra)
        bench_pktgen.start(names, count)
        sent = sum(bench_pktgen.sofar(name) for name in names)
        pktgen_reset()
        return sent


@pytest.fixture
def dummy() -> Iterator[str]:
    """A dummy device, up, IPv6 off, for pktgen floods."""
    name = "mgd0"
    sh(f"ip link del {name}", check=False)
    sh(f"ip link add {name} type dummy")
    sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
    sh(f"ip link set {name} up")
    yield name
    sh(f"ip link del {name}", check=False)


def read_raw(ifname: str, idle: float = 0.5) -> bytes:
    with CaptureDevice(device_path(ifname), nonblock=True) as dev:
        return dev.read_all(idle)


def read_records(ifname: str, idle: float = 0.5) -> list[Record]:
    return list(iter_records(read_raw(ifname, idle)))


def write_pcapng(path: Path, ifname: str, data: bytes, snaplen: int = 96) -> Path:
    pcapng.write_file(str(path), [pcapng.Interface(ifname, snaplen=snaplen)], data)
    return path


def tshark_fields(path: Path, *fields: str, display_filter: str | None = None) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [line.split("\t") for line in proc.stdout.splitlines()]


def capinfos_count(path: Path) -> int:
    out = subprocess.run(
        ["capinfos", "-M", "-c", str(path)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    m = re.search(r"Number of packets:\s*(\d+)", out)
    assert m, out
    return int(m.group(1))


def eventually(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


# x86_64's numbers of the system calls a test waits in: the first field of
# /proc/self/task/<tid>/syscall while the thread is inside one (glibc's poll() may
# be either poll or ppoll)
SYSCALL_NRS = {"read": 0, "poll": 7, "ppoll": 271}


def asleep_in(tid: int, *calls: str, fd: int | None = None) -> bool:
    """Thread tid of this process sleeps (state S) inside one of these system calls
    (on file descriptor fd, their first argument, if given): the state to wait for
    before the event that must wake it, instead of a fixed sleep."""
    task = Path(f"/proc/self/task/{tid}")
    try:
        state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        nr, *args = (task / "syscall").read_text().split()
    except (FileNotFoundError, IndexError, ValueError):
        return False
    if state != "S" or nr not in {str(SYSCALL_NRS[c]) for c in calls}:
        return False
    return fd is None or (bool(args) and args[0] == hex(fd))


def mgctl(args: str, ns: str | None = None, pre: str = "") -> subprocess.CompletedProcess[str]:
    """Run the mgctl command line (optionally in netns `ns`, after a wrapper `pre`)."""
    netns = f"ip netns exec {ns} " if ns else ""
    exe = Path(sys.executable).with_name("mgctl")
    # generous: a Python start-up takes seconds under TCG, minutes on a busy host
    return sh(f"exec {netns}{pre}{exe} {args}", check=False, timeout=900)


def mgctl_json(args: str, ns: str | None = None) -> Any:
    proc = run_mgctl(f"-j {args}", ns=ns)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(ns: str | None) -> Iterator[None]:
    """Run the body (this thread) in network namespace `ns` (/run/netns/NS)."""
    if ns is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        setns(target)
        yield
    finally:
        setns(home)
        os.close(home)
        os.close(target)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_mgctl(args: str, ns: str | None = None) -> CliResult:
    """mgctl's main() in this process (same code as the console script, without the
    seconds a Python start-up costs under TCG)."""
    from mgctl import cli

    out, err = io.StringIO(), io.StringIO()
    code = 0
    argv = sys.argv
    sys.argv = ["mgctl", *shlex.split(args)]
    try:
        with in_netns(ns), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


def text_counters(text: str) -> dict[str, int]:
    """The totals of `mgctl -s show dev IF`'s text: {"seen packets": N, "seen filtered":
    N, "captured packets": N, ...} from each group's header line and the line below."""
    from itertools import pairwise  # here: this helper is all of the file that needs it

    out: dict[str, int] = {}
    for head, values in pairwise(text.splitlines()):
        group, *names = head.split() or [""]
        if group in ("seen:", "captured:"):
            nums = [int(v) for v in values.split()]
            out.update((f"{group[:-1]} {n}", v) for n, v in zip(names, nums, strict=True))
    return out
