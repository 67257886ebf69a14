"""mgdump's tcpdump habits against the real module: -s 0 keeps 1514-byte frames
whole, the "listening on" line, -D, --version, one line per packet without -w (and
a reader of the pipe that goes away), SIGHUP ending mgdump with its capture
stopped, SIGUSR1 printing the counts while the capture goes on."""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pcapng as independent  # python-pcapng: an independent reader of the IDB
import pytest

from mgctl import __version__, api, uapi
from tests.vm.conftest import (
    Module,
    VethPair,
    capinfos_count,
    eventually,
    run_mgctl,
    sh,
    traffic,
    tshark_fields,
)

pytestmark = pytest.mark.once(
    slot=1,
    why="mgdump's tcpdump habits, user space only",
)

MGDUMP = Path(sys.executable).with_name("mgdump")
DEADLINE = 300.0  # seconds any one mgdump run may take before it is interrupted
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)


@dataclass
class DumpResult:
    code: int
    stdout: str
    stderr: str
    stats: dict[str, Any]


def run_mgdump(
    args: list[str], tmp: Path, during: Callable[[Callable[[], str]], None] | None = None
) -> DumpResult:
    """mgdump's main() in this process (signals reach the main thread only); `during`
    runs in a thread and gets mgdump's stderr so far. A failing `during`, or DEADLINE
    passing, interrupts mgdump so that no test hangs; the failure is raised after.
    Standard output is taken both from sys.stdout (print: -D, --version) and at the
    file descriptor (the packet lines are os.write()s to fd 1)."""
    from mgctl.dump import cli

    stats = tmp / "stats.json"
    stats.unlink(missing_ok=True)
    err, printed = io.StringIO(), io.StringIO()
    failure: list[BaseException] = []
    done = threading.Event()

    def interrupt() -> None:
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    def helper() -> None:
        assert during is not None
        try:
            during(err.getvalue)
        except BaseException as e:  # re-raised in the test's thread
            failure.append(e)
            interrupt()

    out_path = tmp / "stdout"
    saved_stdout = os.dup(1)
    out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    argv = sys.argv
    sys.argv = ["mgdump", "--stats-json", str(stats), *args]
    handlers = [signal.getsignal(s) for s in HANDLED]
    watchdog = threading.Timer(DEADLINE, interrupt)
    watchdog.start()
    thread = None
    if during is not None:
        thread = threading.Thread(target=helper, daemon=True)
        thread.start()
    code = 0
    try:
        sys.stdout.flush()
        os.dup2(out_fd, 1)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(printed):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        done.set()
        watchdog.cancel()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
        os.close(out_fd)
        sys.argv = argv
        for s, h in zip(HANDLED, handlers, strict=True):
            signal.signal(s, h)
    if thread is not None:
        thread.join(timeout=DEADLINE)
    if failure:
        raise failure[0]
    data = json.loads(stats.read_text()) if stats.exists() else {}
    return DumpResult(code, printed.getvalue() + out_path.read_text(), err.getvalue(), data)


def wait_listening(stderr: Callable[[], str], ifname: str) -> None:
    """The "listening on" line: the capture runs and mgdump's readers are bound."""
    assert eventually(lambda: f"listening on {ifname}," in stderr(), timeout=120), stderr()


def capturing(ifname: str) -> bool:
    state = json.loads(run_mgctl(f"-j show dev {ifname}").stdout)[0]
    return bool(state["capturing"])


@pytest.fixture
def loaded(mgcap: Module) -> Iterator[Module]:
    mgcap.load()
    yield mgcap


def test_s_0_keeps_1514_byte_frames_whole(loaded: Module, veth: VethPair, tmp_path: Path) -> None:
    out = tmp_path / "whole.pcapng"

    def send(stderr: Callable[[], str]) -> None:
        wait_listening(stderr, veth.dev)
        traffic(f"udp --dst {veth.addr} --count 5 --size 1472", ns=veth.ns)

    r = run_mgdump(["-i", veth.dev, "-s", "0", "-w", str(out), "-c", "5"], tmp_path, send)
    assert r.code == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert first == (
        f"mgdump: listening on {veth.dev}, link-type EN10MB (Ethernet), snapshot length "
        f"{uapi.SNAPLEN_MAX} bytes; mgcap mirror capture, {os.cpu_count()} rings"
    )
    rows = tshark_fields(out, "frame.len", "frame.cap_len", "udp.length")
    assert rows == [["1514", "1514", "1480"]] * 5
    with open(out, "rb") as f:
        idbs = [
            b
            for b in independent.FileScanner(f)
            if isinstance(b, independent.blocks.InterfaceDescription)
        ]
    assert [i.snaplen for i in idbs] == [uapi.SNAPLEN_MAX]
    assert not capturing(veth.dev)


def test_q_keeps_the_listening_line_back(loaded: Module, tmp_path: Path) -> None:
    def ping(stderr: Callable[[], str]) -> None:
        # no line to wait for: ping for longer than mgdump takes to bind its readers
        assert eventually(lambda: Path("/dev/mgcap/lo").exists(), timeout=120)
        sh("ping -c 10 -i 0.2 127.0.0.1")

    r = run_mgdump(["-q", "-i", "lo", "-w", str(tmp_path / "q.pcapng"), "-c", "1"], tmp_path, ping)
    assert r.code == 0, r.stderr
    assert "listening on" not in r.stderr and "1 packets written" in r.stderr


def mgdump_D(tmp_path: Path) -> DumpResult:
    return run_mgdump(["-D"], tmp_path)


def test_D_lists_devices_with_mgcap_state(mgcap: Module, dummy: str, tmp_path: Path) -> None:
    r = mgdump_D(tmp_path)
    assert r.code == 0
    assert r.stderr == f"mgdump: {api.module_missing()}: capture state unknown\n"
    listed = r.stdout.splitlines()
    assert [re.sub(r"^\d+\.", "", line) for line in listed if ".lo " in line] == [
        "lo [Up, Running, Loopback]"
    ]
    assert [int(line.split(".", 1)[0]) for line in listed] == list(range(1, len(listed) + 1))
    mgcap.load()
    assert run_mgctl("start dev lo mode drop snaplen 128").returncode == 0
    try:
        r = mgdump_D(tmp_path)
    finally:
        assert run_mgctl("stop dev lo").returncode == 0
    assert r.code == 0 and r.stderr == "", r.stderr
    rows = {re.sub(r"^\d+\.", "", line).split(" ", 1)[0]: line for line in r.stdout.splitlines()}
    assert re.fullmatch(
        rf"\d+\.lo \[Up, Running, Loopback\] \(mgcap: capturing, drop, snaplen 128, "
        rf"{os.cpu_count()} rings\)",
        rows["lo"],
    ), rows["lo"]
    assert re.fullmatch(rf"\d+\.{dummy} \[Up, Running\] \(mgcap: not capturing\)", rows[dummy])
    # tcpdump's order: devices that run before the loopback device
    assert int(rows[dummy].split(".")[0]) < int(rows["lo"].split(".")[0])


def test_version_names_mgdump_the_module_and_libpcap(mgcap: Module) -> None:
    """--version as a real command (one Python start-up), with and without the module."""
    p = sh(f"exec {MGDUMP} --version", timeout=900)
    lines = p.stdout.splitlines()
    assert lines[0] == f"mgdump version {__version__}"
    assert lines[1] == "mgcap module not loaded"
    assert lines[2].startswith("libpcap version 1.")
    mgcap.load()
    from mgctl.dump import about

    version = Path("/sys/module/mgcap/version")
    want = (
        f"mgcap module version {version.read_text().strip()}"
        if version.exists()
        else "mgcap module loaded, version unknown (it has no MODULE_VERSION)"
    )
    assert about.module_version() == want
    assert about.version_text().splitlines() == [lines[0], want, lines[2]]


LINE = re.compile(
    r"\d\d:\d\d:\d\d\.\d{6} lo In length 98: IP 127\.0\.0\.1 > 127\.0\.0\.1: "
    r"ICMP echo (request|reply), id \d+, seq [12], length 64"
)


def test_without_w_one_line_per_packet(loaded: Module, tmp_path: Path) -> None:
    def ping(stderr: Callable[[], str]) -> None:
        wait_listening(stderr, "lo")
        sh("ping -c 2 -i 0.2 127.0.0.1")

    r = run_mgdump(["-i", "lo", "-c", "4"], tmp_path, ping)
    assert r.code == 0, r.stderr
    matches = [LINE.fullmatch(line) for line in r.stdout.splitlines()]
    assert len(matches) == 4 and all(matches), r.stdout
    assert sorted(m.group(1) for m in matches if m) == ["reply", "reply", "request", "request"]
    assert "4 packets written" in r.stderr and "packet count reached" in r.stderr
    assert r.stats["written"] == 4 and r.stats["files"] == []
    assert not capturing("lo")


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[str]) -> str:
    def there() -> bool:
        assert proc.poll() is None, path.read_text()
        return path.exists() and text in path.read_text()

    assert eventually(there, timeout=300, step=0.1), path.read_text()
    return path.read_text()


def test_a_reader_that_goes_away_ends_mgdump_quietly(loaded: Module, tmp_path: Path) -> None:
    """mgdump | head -n 2: once head is gone, mgdump stops its capture and exits 0
    with its summary and no error."""
    err, rc = tmp_path / "err", tmp_path / "rc"
    proc = subprocess.Popen(
        ["sh", "-c", f"({MGDUMP} -i lo 2>{err}; echo $? >{rc}) | head -n 2"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_text(err, "listening on lo,", proc)
        sh("ping -c 20 -i 0.2 127.0.0.1", timeout=300)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(out.splitlines()) == 2 and all(LINE.fullmatch(x) for x in out.splitlines()), out
    assert rc.read_text() == "0\n", err.read_text()
    text = err.read_text()
    assert "mgdump: standard output closed" in text
    assert "Traceback" not in text and "Broken pipe" not in text, text
    assert not capturing("lo")


def test_sighup_in_drop_mode_leaves_no_capture(loaded: Module, dummy: str, tmp_path: Path) -> None:
    """The hang-up of an ssh session: mgdump ends as on SIGTERM, and the drop-mode
    capture it started (the device deaf to the stack) is gone."""
    out = tmp_path / "hup.pcapng"

    def hang_up(stderr: Callable[[], str]) -> None:
        wait_listening(stderr, dummy)
        os.kill(os.getpid(), signal.SIGHUP)

    r = run_mgdump(["-i", dummy, "--mode", "drop", "-w", str(out)], tmp_path, hang_up)
    assert r.code == 0, r.stderr
    assert "mgdump: interrupted" in r.stderr and r.stats["reason"] == "signal"
    assert capinfos_count(out) == r.stats["written"] == 0
    assert not capturing(dummy)
    assert not Path(f"/dev/mgcap/{dummy}").exists()


def test_sigusr1_prints_counts_and_goes_on_then_sighup(loaded: Module, tmp_path: Path) -> None:
    """A separate mgdump process: SIGUSR1 prints tcpdump-like counts on stderr and the
    capture goes on; SIGHUP then ends it with the file finished and the capture gone."""
    out, err = tmp_path / "usr1.pcapng", tmp_path / "err"
    with open(err, "w") as errf:
        proc = subprocess.Popen(
            [MGDUMP, "-i", "lo", "-w", str(out), "--stats-json", str(tmp_path / "s.json")],
            stderr=errf, text=True,
        )  # fmt: skip
    try:
        wait_for_text(err, "listening on lo,", proc)
        sh("ping -c 3 -i 0.2 127.0.0.1")

        def counted_all() -> bool:
            """Ask for the counts; whether they show all 6 packets of the pings."""
            before = err.read_text().count("packets written")
            proc.send_signal(signal.SIGUSR1)
            assert eventually(lambda: err.read_text().count("packets written") > before, 30)
            written = [x for x in err.read_text().splitlines() if x.endswith("packets written")]
            return written[-1] == "6 packets written"

        assert eventually(counted_all, timeout=120, step=0.5), err.read_text()
        assert proc.poll() is None  # it goes on
        sh("ping -c 1 127.0.0.1")
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=300) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert "6 packets seen by mgcap" in text and "mgdump: interrupted" in text
    final = text[text.index("mgdump: interrupted") :]
    assert "8 packets written\n8 packets seen by mgcap\n" in final, final
    assert capinfos_count(out) == 8
    assert not capturing("lo")
