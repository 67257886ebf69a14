"""mgcap-extcap with the real tshark and the real module: tshark lists the mgcap
interfaces and their options once `mgcap-extcap --install` put the extcap in the
personal folder of a scratch HOME; `tshark -i mgcap:lo -c 20` captures exactly the 10
echo requests and 10 replies of a ping and the capture the extcap started is gone
afterwards; a capture
filter given to tshark runs in the kernel; a capture started before with mgctl is
left running as it was; Wireshark's way of stopping (SIGTERM) finishes the stream
with its statistics block.

tshark runs the extcap several times (interfaces, config per interface, dlts,
capture), each a Python start that costs seconds under TCG: timeouts are generous
and every wait is for a state, never a fixed time.
"""

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pcapng as independent  # python-pcapng: an independent reader of the stream
import pytest

from tests.vm.conftest import (
    ROOT,
    Module,
    capinfos_count,
    eventually,
    run_mgctl,
    sh,
    tshark_fields,
)

TSHARK_TIMEOUT = 900  # tshark and four Python starts under TCG, on a shared host
pytestmark = pytest.mark.once(
    slot=1,
    why="the extcap's logic over mgdump's session, not the kernel's (tshark costs minutes)",
)
OUT = Path(os.environ.get("MGCAP_OUT", "/tmp")) / "extcap"
SYSFS_LO = Path("/sys/class/mgcap/lo")


def extcap(*args: str) -> tuple[int, str, str]:
    """mgcap-extcap's main() in this process: status, stdout, stderr."""
    from mgctl.extcap import cli

    out, err = io.StringIO(), io.StringIO()
    code = 0
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:  # --capture installs its own
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tshark_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a user whose personal extcap folder (Wireshark 4.0:
    ~/.config/wireshark/extcap) has mgcap-extcap, put there by `mgcap-extcap --install
    --dir`. (That plain --install finds this folder with `tshark -G folders` is
    tested on the host, with the same tshark: here it would cost a tshark start.)"""
    home = tmp_path_factory.mktemp("home")
    folder = home / ".config" / "wireshark" / "extcap"
    code, out, err = extcap("--install", "--dir", str(folder))
    assert (code, err) == (0, ""), err
    assert out == f"mgcap-extcap: installed {folder / 'mgcap-extcap'}, running {sys.executable}\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    env.setdefault("PYTHONPATH", str(ROOT))  # the wrapper's Python imports this checkout
    OUT.mkdir(parents=True, exist_ok=True)
    yield env


def tshark(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tshark", *args], capture_output=True, text=True, env=env, timeout=TSHARK_TIMEOUT
    )


@contextlib.contextmanager
def pinging() -> Iterator[None]:
    """ping 127.0.0.1 every 0.2 s for the body (an echo request and a reply on lo each)."""
    proc = subprocess.Popen(
        ["ping", "-i", "0.2", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextlib.contextmanager
def udp_noise() -> Iterator[None]:
    """UDP datagrams to 127.0.0.1:7001 every 0.05 s for the body: what an icmp filter
    must keep out."""
    stop = threading.Event()
    # a bound receiver: no ICMP port unreachable (which an icmp filter would keep)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 7001))

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.wait(0.05):
                s.sendto(b"noise", ("127.0.0.1", 7001))

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=10)
        sink.close()


def tshark_while_pinging(
    args: list[str], env: dict[str, str], pings: int
) -> subprocess.CompletedProcess[str]:
    """tshark with args in the background and, once the extcap it runs captures lo,
    `ping -c pings`: an echo request and its reply on lo each, all of them after the
    capture started. tshark's outcome; it is killed if the test fails before it ends."""
    proc = subprocess.Popen(
        ["tshark", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        started = eventually(
            lambda: (SYSFS_LO / "statistics").exists() or proc.poll() is not None,
            timeout=TSHARK_TIMEOUT,
            step=0.2,
        )
        assert started and proc.poll() is None, "tshark ended (or hung) before capturing"
        sh(f"ping -c {pings} -i 0.2 -W 1 127.0.0.1")
        out, err = proc.communicate(timeout=TSHARK_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def echo_seqs(path: Path) -> tuple[list[int], list[int]]:
    """The ICMP sequence numbers of the echo requests and of the echo replies in a file
    (tshark's fields), each sorted; a frame that is neither fails."""
    requests: list[int] = []
    replies: list[int] = []
    for icmp_type, seq in tshark_fields(path, "icmp.type", "icmp.seq"):
        assert icmp_type in ("8", "0"), (icmp_type, seq)
        (requests if icmp_type == "8" else replies).append(int(seq))
    return sorted(requests), sorted(replies)


def extcap_captures() -> list[int]:
    """Processes running `mgctl.extcap ... --capture`."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mgctl.extcap" in argv and b"--capture" in argv:
            pids.append(int(d.name))
    return pids


def show_lo() -> dict[str, Any]:
    proc = run_mgctl("-j show dev lo")
    assert proc.returncode == 0, proc.stderr
    state: dict[str, Any] = json.loads(proc.stdout)[0]
    return state


def wait_capture_gone() -> None:
    """The extcap has exited (tshark sends SIGTERM after the last packet) and with it
    the capture it started."""
    assert eventually(lambda: not extcap_captures(), timeout=300), extcap_captures()
    assert show_lo()["capturing"] is False


def test_tshark_lists_mgcap_interfaces_and_options(
    mgcap: Module, tshark_env: dict[str, str]
) -> None:
    mgcap.load()
    assert run_mgctl("start dev lo snaplen 128").returncode == 0
    try:
        listing = tshark(["-D"], tshark_env)
    finally:
        assert run_mgctl("stop dev lo").returncode == 0
    assert listing.returncode == 0, listing.stderr
    names = [name for _, name in socket.if_nameindex()]
    for name in names:
        assert re.search(rf"^\d+\. mgcap:{re.escape(name)} \(mgcap: ", listing.stdout, re.M)
    assert re.search(
        r"^\d+\. mgcap:lo \(mgcap: lo, capturing already \(mirror, snaplen 128\)\)$",
        listing.stdout,
        re.M,
    ), listing.stdout

    # tshark has no --extcap-config: it shows an extcap's options as its preferences
    prefs = tshark(["-G", "defaultprefs"], tshark_env)
    assert prefs.returncode == 0, prefs.stderr
    for pref, display in (
        ("mode", "Mode"),
        ("snaplen", "Snapshot length"),
        ("ringsize", "Ring size (bytes per CPU)"),
        ("hwts", "Hardware timestamps"),
    ):
        assert re.search(
            rf"^# {re.escape(display)}\n(#.*\n)*#extcap\.mgcap_lo\.{pref}:", prefs.stdout, re.M
        )
    code, config, _ = extcap("--extcap-interface", "mgcap:lo", "--extcap-config")
    assert code == 0
    calls = re.findall(r"^arg \{number=\d+\}\{call=([^}]*)\}", config, re.M)
    assert calls == ["--mode", "--snaplen", "--ring-size", "--hwts"]


def test_tshark_captures_exactly_the_10_echoes_of_a_ping(
    mgcap: Module, tshark_env: dict[str, str]
) -> None:
    """`ping -c 10` once the capture runs: the file holds exactly its 10 echo requests
    and their 10 replies (sequence numbers 1..10 each), nothing else."""
    mgcap.load()
    out = OUT / "ping20.pcapng"
    out.unlink(missing_ok=True)
    proc = tshark_while_pinging(["-i", "mgcap:lo", "-c", "20", "-w", str(out)], tshark_env, 10)
    assert proc.returncode == 0, proc.stderr
    assert "Error by extcap pipe" not in proc.stderr, proc.stderr
    assert capinfos_count(out) == 20
    assert echo_seqs(out) == (list(range(1, 11)), list(range(1, 11)))
    rows = tshark_fields(out, "ip.src", "ip.dst")
    assert rows == [["127.0.0.1", "127.0.0.1"]] * 20
    wait_capture_gone()


def test_tshark_capture_filter_runs_in_the_kernel(
    mgcap: Module, tshark_env: dict[str, str]
) -> None:
    mgcap.load()
    out = OUT / "icmp.pcapng"
    out.unlink(missing_ok=True)
    installed: list[str] = []

    def watch() -> None:
        path = SYSFS_LO / "filter"
        if eventually(lambda: path.exists(), timeout=TSHARK_TIMEOUT, step=0.2):
            with contextlib.suppress(OSError):
                installed.append(path.read_text().strip())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    args = ["-i", "mgcap:lo", "-f", "icmp", "-c", "10", "-w", str(out)]
    with udp_noise():
        proc = tshark_while_pinging(args, tshark_env, 5)
    watcher.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert installed == ["icmp"]
    assert capinfos_count(out) == 10
    rows = tshark_fields(out, "frame.protocols")
    assert rows == [["eth:ethertype:ip:icmp:data"]] * 10
    # exactly the ping's 5 requests and 5 replies (the UDP noise kept out)
    assert echo_seqs(out) == (list(range(1, 6)), list(range(1, 6)))
    wait_capture_gone()


def test_running_capture_is_left_as_found(mgcap: Module, tshark_env: dict[str, str]) -> None:
    mgcap.load()
    assert run_mgctl("start dev lo snaplen 200").returncode == 0
    before = show_lo()
    out = OUT / "found.pcapng"
    out.unlink(missing_ok=True)
    try:
        with pinging():
            proc = tshark(["-i", "mgcap:lo", "-c", "6", "-w", str(out)], tshark_env)
            assert proc.returncode == 0, proc.stderr
            assert capinfos_count(out) == 6
            assert eventually(lambda: not extcap_captures(), timeout=300)
            after = show_lo()
            assert after["capturing"] is True
            for key in ("mode", "snaplen", "ring_size", "filter", "chardev"):
                assert after[key] == before[key], key

        # a mode chosen that differs from the running capture: refused with one line
        # (tshark shows the extcap's stderr as "Error by extcap pipe: ..."), the fifo
        # never opened, nothing changed
        code, _, err = extcap(
            "--capture",
            "--extcap-interface",
            "mgcap:lo",
            "--fifo",
            str(OUT / "no"),
            "--mode",
            "drop",
        )
        assert code == 1
        assert err == (
            "mgcap-extcap: lo already captures with mode mirror; change it with mgctl or "
            "leave out the option\n"
        )
        assert not (OUT / "no").exists()
        assert show_lo() == before
    finally:
        assert run_mgctl("stop dev lo").returncode == 0


def test_sigterm_finishes_the_stream_and_stops_the_capture(mgcap: Module, tmp_path: Path) -> None:
    """What Wireshark does to stop: SIGTERM. The capture the extcap started is stopped,
    the rings drained, and the stream ends with the statistics block."""
    mgcap.load()
    fifo = tmp_path / "fifo"  # the guest's own /tmp: the shared MGCAP_OUT takes no fifo
    os.mkfifo(fifo)
    data = io.BytesIO()

    def read_fifo() -> None:
        with open(fifo, "rb") as f:
            data.write(f.read())

    def ping_then_stop() -> None:
        try:
            assert eventually(lambda: (SYSFS_LO / "statistics").exists(), timeout=300)
            sh("ping -c 5 -i 0.2 127.0.0.1")
            captured = SYSFS_LO / "statistics" / "captured_packets"
            assert eventually(lambda: int(captured.read_text()) >= 10, timeout=60)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    reader = threading.Thread(target=read_fifo, daemon=True)
    helper = threading.Thread(target=ping_then_stop, daemon=True)
    reader.start()
    helper.start()
    code, out, err = extcap(
        "--capture", "--extcap-interface", "mgcap:lo", "--fifo", str(fifo), "--snaplen", "0"
    )
    helper.join(timeout=60)
    reader.join(timeout=60)
    assert (code, out, err) == (0, "", "")
    assert not SYSFS_LO.exists()  # stopped before the extcap returned
    blocks = list(independent.FileScanner(io.BytesIO(data.getvalue())))
    packets = [b for b in blocks if isinstance(b, independent.blocks.EnhancedPacket)]
    assert len(packets) == 10
    # the ping's 5 echo requests and 5 replies (ICMP type at 14 + 20: Ethernet, IPv4)
    assert sorted(p.packet_data[34] for p in packets) == [0] * 5 + [8] * 5
    assert isinstance(blocks[-1], independent.blocks.InterfaceStatistics)
    assert int(blocks[-1].options["isb_usrdeliv"]) == 10
    assert int(blocks[-1].options["isb_ifrecv"]) == 10
    idb = next(b for b in blocks if isinstance(b, independent.blocks.InterfaceDescription))
    from mgctl import uapi

    assert idb.snaplen == uapi.SNAPLEN_MAX  # --snaplen 0: the whole frame
