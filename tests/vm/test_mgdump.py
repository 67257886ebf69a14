"""mgdump end to end in the VM: files checked by tshark/capinfos with exact counts,
multi-device interface ids, statistics blocks equal to the kernel's counters,
rotation, standard output into tshark, SIGTERM under a flood, disk full, the
capture ending under it, and clear errors."""

import contextlib
import io
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pcapng as independent  # python-pcapng: an independent reader of the statistics
import pytest

from mgctl import api
from tests.vm.conftest import (
    Module,
    Pktgen,
    VethPair,
    capinfos_count,
    eventually,
    run_mgctl,
    sh,
    traffic,
    tshark_fields,
)
from tests.vm.test_hwtstamp import (
    BASE_NS,
    DEV,
    RX_NONE,
    STEP_NS,
    TX_OFF,
    Mgts,
    epoch_ns,
    hwts,
    send_frames,
)
from tests.vm.test_hwtstamp import mgts as mgts_fixture

mgts = mgts_fixture  # the test NIC's fixture, under its own name
pytestmark = pytest.mark.once(
    slot=0,
    why="mgdump's logic (files, rotation, counts, errors): the kernel paths it uses "
    "have their own tests in every boot",
)

MGDUMP = Path(sys.executable).with_name("mgdump")


@dataclass
class DumpResult:
    code: int
    stderr: str
    stats: dict[str, Any]


DEADLINE = 300.0  # seconds any one mgdump run may take before it is interrupted


def run_mgdump(
    args: list[str], tmp: Path, during: Callable[[Callable[[], str]], None] | None = None
) -> DumpResult:
    """mgdump's main() in this process (signals need the main thread); `during` runs in
    a daemon thread and gets mgdump's stderr so far (without -q: its "listening on"
    line says the capture runs and its readers are bound). A failing `during`, or
    DEADLINE passing, interrupts mgdump (SIGINT) so that no test hangs; the failure is
    raised after."""
    from mgctl.dump import cli

    stats = tmp / "stats.json"
    stats.unlink(missing_ok=True)
    err = io.StringIO()
    failure: list[BaseException] = []
    done = threading.Event()

    def interrupt() -> None:
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    def helper() -> None:
        assert during is not None
        try:
            during(err.getvalue)
        except BaseException as e:  # raised again in the test's thread
            failure.append(e)
            interrupt()

    argv = sys.argv
    sys.argv = ["mgdump", "--stats-json", str(stats), *args]
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    watchdog = threading.Timer(DEADLINE, interrupt)
    watchdog.daemon = True
    watchdog.start()
    thread = None
    if during is not None:
        thread = threading.Thread(target=helper, daemon=True)
        thread.start()
    code = 0
    try:
        with contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        done.set()
        watchdog.cancel()
        sys.argv = argv
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    if thread is not None:
        thread.join(timeout=DEADLINE)
        assert not thread.is_alive(), "the helper thread outlived mgdump by DEADLINE"
    if failure:
        raise failure[0]
    data = json.loads(stats.read_text()) if stats.exists() else {}
    return DumpResult(code, err.getvalue(), data)


def wait_listening(stderr: Callable[[], str], *ifnames: str) -> None:
    """mgdump's start-up lines: the capture of each device runs and its readers are
    bound (mgdump prints them once its set-up is done)."""
    want = [f"listening on {i}," for i in ifnames]
    assert eventually(lambda: all(w in stderr() for w in want), timeout=120), stderr()


def when_capturing(ifname: str, then: Callable[[], object]) -> Callable[[Callable[[], str]], None]:
    def action(stderr: Callable[[], str]) -> None:
        wait_listening(stderr, ifname)
        then()

    return action


def read_until(proc: "subprocess.Popen[bytes]", text: bytes, timeout: float = 120) -> bytes:
    """What proc wrote to its stderr (a pipe) until text appeared in it, read at the
    file descriptor (communicate() reads there too, after this); fails if proc ends
    first or timeout passes."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    end = time.monotonic() + timeout
    while text not in seen:
        left = end - time.monotonic()
        assert left > 0, f"no {text!r} within {timeout} s: {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"stderr closed before {text!r}: {seen!r}"
            seen += chunk
    return seen


ISB_KEYS = ("isb_ifrecv", "isb_ifdrop", "isb_osdrop", "isb_usrdeliv")


def idb_tsresol(path: Path) -> list[int]:
    """Each interface's if_tsresol option (python-pcapng: a reader independent of ours)."""
    with open(path, "rb") as f:
        blocks = list(independent.FileScanner(f))
    return [b.options["if_tsresol"][0] for b in blocks
            if isinstance(b, independent.blocks.InterfaceDescription)]  # fmt: skip


def isb_counters(path: Path) -> list[dict[str, int]]:
    with open(path, "rb") as f:
        blocks = list(independent.FileScanner(f))
    out = []
    for b in blocks:
        if isinstance(b, independent.blocks.InterfaceStatistics):
            o = b.options
            out.append(
                {k: int(o[k]) for k in ("isb_ifrecv", "isb_ifdrop", "isb_osdrop", "isb_usrdeliv")}
            )
    return out


def flood_then_sigterm(args: list[str], dev: str, count: int) -> tuple[int, bytes, str]:
    """mgdump with args in its own process, a pktgen flood of count 128-byte frames
    into dev once it captures (nobody reads its standard output meanwhile), then
    SIGTERM: (frames sent, its standard output, its standard error); it exited 0."""
    proc = subprocess.Popen([MGDUMP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # its "listening on" line: the capture runs and its ring readers are bound
        head = read_until(proc, f"listening on {dev},".encode())
        sent = Pktgen(dev).run(count=count, pkt_size=128)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return sent, out, (head + err).decode()


@pytest.fixture
def loaded(mgcap: Module) -> Iterator[Module]:
    mgcap.load()
    yield mgcap


def test_lo_count_and_file_properties(loaded: Module, tmp_path: Path) -> None:
    out = tmp_path / "lo.pcapng"
    ping = when_capturing("lo", lambda: sh("ping -c 6 -i 0.2 -W 1 127.0.0.1"))
    r = run_mgdump(["-i", "lo", "-w", str(out), "-c", "10"], tmp_path, ping)
    assert r.code == 0, r.stderr
    assert "10 packets written" in r.stderr and "packet count reached" in r.stderr
    assert capinfos_count(out) == 10
    rows = tshark_fields(out, "frame.interface_name", "icmp.type")
    assert [row[0] for row in rows] == ["lo"] * 10
    # nanosecond stamps: if_tsresol 9 as capinfos and python-pcapng read it, and the
    # stamps use it (ten microsecond stamps padded with zeros would all be ...000)
    info = sh(f"capinfos -M {out}").stdout
    assert "Time resolution = 0x09" in info and "Time precision = nanoseconds (9)" in info, info
    assert idb_tsresol(out) == [9]
    stamps = [epoch_ns(row[0]) for row in tshark_fields(out, "frame.time_epoch")]
    assert len(stamps) == 10 and any(t % 1000 for t in stamps), stamps
    # mgdump started the capture, so it stopped it
    state = json.loads(run_mgctl("-j show dev lo").stdout)
    assert state[0]["capturing"] is False


def test_flood_sigterm_accounting_and_isb(tmp_path: Path, loaded: Module, dummy: str) -> None:
    """A pktgen flood into a small ring, SIGTERM afterwards: the file is valid and its
    packets plus every reported drop equal what pktgen sent; ISBs equal the kernel."""
    out = tmp_path / "flood.pcapng"
    stats = tmp_path / "flood.json"
    sent, _, err = flood_then_sigterm(
        ["-i", dummy, "-w", str(out), "--ring-size", "65536", "--mode", "drop",
         "--stats-json", str(stats)], dummy, 20_000,
    )  # fmt: skip
    assert "interrupted" in err
    s = json.loads(stats.read_text())
    n = capinfos_count(out)
    assert n == s["written"]
    assert s["seen"] == sent == 20_000
    assert n + s["kernel_drops"] + s["mgdump_drops"] == sent, s
    assert s["not_written"] == 0
    isb = isb_counters(out)
    assert isb == [
        {"isb_ifrecv": sent, "isb_ifdrop": s["kernel_drops"], "isb_osdrop": s["mgdump_drops"],
         "isb_usrdeliv": n}
    ]  # fmt: skip


def test_two_devices_one_file(tmp_path: Path, loaded: Module, veth: VethPair) -> None:
    out = tmp_path / "two.pcapng"

    def both(stderr: Callable[[], str]) -> None:
        wait_listening(stderr, "lo", veth.dev)
        sh("ping -c 3 -i 0.2 127.0.0.1")
        traffic(f"udp --dst {veth.addr} --count 50 --size 100", ns=veth.ns)

    r = run_mgdump(["-i", "lo", "-i", veth.dev, "-w", str(out), "-c", "56"], tmp_path, both)
    assert r.code == 0, r.stderr
    rows = tshark_fields(out, "frame.interface_name", "ip.proto")
    assert len(rows) == 56
    assert sorted({(a, b) for a, b in rows}) == [("lo", "1"), (veth.dev, "17")]
    assert sum(1 for a, _ in rows if a == veth.dev) == 50
    assert [i["ifname"] for i in r.stats["interfaces"]] == ["lo", veth.dev]
    assert len(isb_counters(out)) == 2


def test_stdout_into_tshark(loaded: Module, tmp_path: Path) -> None:
    pipe = subprocess.Popen(
        f"exec {MGDUMP} -i lo -w - -c 4 | tshark -n -r - -T fields -e ip.dst",
        shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        head = read_until(pipe, b"listening on lo,")
        sh("ping -c 2 -i 0.2 127.0.0.1")
        out, err = pipe.communicate(timeout=300)
    finally:
        if pipe.poll() is None:
            pipe.kill()
            pipe.wait()
    assert pipe.returncode == 0, head + err
    assert out.decode().split() == ["127.0.0.1"] * 4


def test_size_rotation_and_per_ring(tmp_path: Path, loaded: Module, dummy: str) -> None:
    out = tmp_path / "rot.pcapng"
    flood = when_capturing(dummy, lambda: Pktgen(dummy).run(count=2_000, threads=2))
    r = run_mgdump(
        ["-i", dummy, "-w", str(out), "-C", "0.1", "-c", "4000", "--per-ring"], tmp_path, flood
    )
    assert r.code == 0, r.stderr
    files = r.stats["files"]
    assert isinstance(files, list)
    per_ring: dict[str, int] = {}
    for f in files:
        n = capinfos_count(Path(f))
        assert Path(f).stat().st_size <= 100_000 + 200  # -C plus the statistics blocks
        key = "ring0" if ".ring0." in f else "ring1"
        per_ring[key] = per_ring.get(key, 0) + n
    # pktgen thread t runs on CPU t: ring t holds its 2000 frames
    assert per_ring == {"ring0": 2000, "ring1": 2000}
    assert len(files) == 2 * -(-2000 * 128 // 100_000)


def test_time_rotation_stops_after_W_files(loaded: Module, tmp_path: Path) -> None:
    """-G 1 -W 2 under a ping every 0.1 s: two files, each holding packets (a second of
    pings: rotation goes by the clock, as tcpdump's), all accounted for, then mgdump
    ends."""
    template = str(tmp_path / "g-%H%M%S.pcapng")
    t0 = time.monotonic()
    ping = subprocess.Popen(
        ["ping", "-q", "-i", "0.1", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        r = run_mgdump(["-i", "lo", "-w", template, "-G", "1", "-W", "2"], tmp_path)
    finally:
        ping.terminate()
        ping.wait(timeout=60)
    assert r.code == 0, r.stderr
    assert "file count reached" in r.stderr
    files = r.stats["files"]
    assert isinstance(files, list) and len(files) == 2
    counts = [capinfos_count(Path(f)) for f in files]
    assert all(c > 0 for c in counts) and sum(counts) == r.stats["written"], (counts, r.stats)
    # the pings, nothing else; every frame seen is in a file or counted
    assert {row[0] for f in files for row in tshark_fields(Path(f), "ip.proto")} == {"1"}
    s = r.stats
    assert s["written"] + s["kernel_drops"] + s["mgdump_drops"] + s["not_written"] == s["seen"]
    assert time.monotonic() - t0 < 60


def test_disk_full(tmp_path: Path, loaded: Module, dummy: str) -> None:
    small = tmp_path / "small"
    small.mkdir()
    sh(f"mount -t tmpfs -o size=256k tmpfs {small}")
    try:
        flood = when_capturing(dummy, lambda: Pktgen(dummy).run(count=10_000))
        r = run_mgdump(["-i", dummy, "-w", str(small / "f.pcapng")], tmp_path, flood)
        assert r.code == 4, r.stderr
        assert "No space left on device" in r.stderr
        n = capinfos_count(small / "f.pcapng")
        assert n == r.stats["written"]
        # a failed write is cut back to the end of the last whole block written
        assert 0 < n < 10_000
        s = r.stats
        total = s["written"] + s["kernel_drops"] + s["mgdump_drops"] + s["not_written"]
        assert total == s["seen"]
    finally:
        sh(f"umount {small}", check=False)


def test_device_removed_ends_capture(tmp_path: Path, loaded: Module, dummy: str) -> None:
    def remove() -> None:
        Pktgen(dummy).run(count=500)
        sh(f"ip link del {dummy}")

    out = tmp_path / "gone.pcapng"
    r = run_mgdump(["-i", dummy, "-w", str(out)], tmp_path, when_capturing(dummy, remove))
    assert r.code == 3, r.stderr
    assert "capture ended" in r.stderr
    assert capinfos_count(out) == 500 == r.stats["written"]


def test_existing_capture_is_left_as_found(loaded: Module, tmp_path: Path) -> None:
    assert run_mgctl("start dev lo mode drop snaplen 128").returncode == 0
    r = run_mgdump(["-i", "lo", "-w", str(tmp_path / "x"), "-s", "64"], tmp_path)
    assert r.code == 1 and "lo already captures with snaplen 128" in r.stderr
    ping = when_capturing("lo", lambda: sh("ping -c 2 -i 0.2 127.0.0.1", check=False))
    r = run_mgdump(["-i", "lo", "-w", str(tmp_path / "y"), "-c", "2"], tmp_path, ping)
    assert r.code == 0, r.stderr
    state = json.loads(run_mgctl("-j show dev lo").stdout)[0]
    assert state["capturing"] and state["mode"] == "drop" and state["snaplen"] == 128
    assert run_mgctl("stop dev lo").returncode == 0


def test_clear_errors(mgcap: Module, tmp_path: Path) -> None:
    r = run_mgdump(["-i", "lo", "-w", str(tmp_path / "x")], tmp_path)
    assert r.code == 1 and r.stderr.strip() == f"mgdump: {api.module_missing()}"
    mgcap.load()
    r = run_mgdump(["-i", "nosuch0", "-w", str(tmp_path / "x")], tmp_path)
    assert r.code == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "nosuch0" in r.stderr
    r = run_mgdump(["-i", "lo", "-w", str(tmp_path / "no" / "dir.pcapng")], tmp_path)
    assert r.code == 1 and "No such file or directory" in r.stderr
    # nothing left behind: the capture mgdump started for the bad path is stopped
    assert json.loads(run_mgctl("-j show dev lo").stdout)[0]["capturing"] is False
    r = run_mgdump(["-i", "lo", "-w", "x", "-c", "0"], tmp_path)
    assert r.code == 2 and "-c must be at least 1" in r.stderr
    with contextlib.suppress(FileNotFoundError):
        os.unlink("x")
    # without CAP_NET_ADMIN: one line, no file, nothing started
    out = tmp_path / "unpriv.pcapng"
    drop = "setpriv --bounding-set -net_admin --inh-caps -net_admin"
    p = sh(f"exec {drop} {MGDUMP} -q -i lo -w {out}", check=False, timeout=900)
    assert p.returncode == 1
    assert p.stderr == (
        "mgdump: lo: Operation not permitted (changes need CAP_NET_ADMIN: run as root)\n"
    )
    assert not out.exists()
    assert json.loads(run_mgctl("-j show dev lo").stdout)[0]["capturing"] is False


def test_hwts_stamps_in_the_file_and_restore(loaded: Module, mgts: Mgts, tmp_path: Path) -> None:
    """--hwts all on the test NIC: every packet in the file carries the NIC's stamp
    (exactly, in tshark), the IDB says so, the ISB counts them, and the device's
    previous configuration (off) is back afterwards."""
    mgts.load()
    assert hwts(DEV) == (RX_NONE, TX_OFF)
    out = tmp_path / "hw.pcapng"
    n = 20

    def send() -> None:
        mgts.sequence()
        send_frames(DEV, n)

    r = run_mgdump(
        ["-i", DEV, "-w", str(out), "--hwts", "all", "-c", str(n)],
        tmp_path,
        when_capturing(DEV, send),
    )
    assert r.code == 0, r.stderr
    rows = tshark_fields(out, "frame.time_epoch")
    assert sorted(epoch_ns(row[0]) for row in rows) == [BASE_NS + i * STEP_NS for i in range(n)]
    assert r.stats["hw_stamped"] == n and f"{n} packets stamped by the NIC" in r.stderr
    with open(out, "rb") as f:
        blocks = list(independent.FileScanner(f))
    idb = next(b for b in blocks if isinstance(b, independent.blocks.InterfaceDescription))
    assert "timestamps: hardware" in idb.options["opt_comment"]
    isb = next(b for b in blocks if isinstance(b, independent.blocks.InterfaceStatistics))
    assert f"{n} captured with the NIC's timestamp" in isb.options["opt_comment"]
    assert hwts(DEV) == (RX_NONE, TX_OFF)


def test_hwts_on_a_device_that_cannot_stamp(loaded: Module, tmp_path: Path) -> None:
    r = run_mgdump(["-i", "lo", "-w", str(tmp_path / "x"), "--hwts", "all"], tmp_path)
    assert r.code == 1
    assert r.stderr.strip().endswith("lo: hardware timestamping not supported"), r.stderr
    # nothing left behind: neither the capture nor the file
    assert json.loads(run_mgctl("-j show dev lo").stdout)[0]["capturing"] is False
    assert not (tmp_path / "x").exists()


def test_slow_output_goes_through_the_buffer(tmp_path: Path, loaded: Module, dummy: str) -> None:
    """The file is written from the mapped ring; when the output stalls (a pipe nobody
    reads during the flood) the reader copies into the buffer instead of letting the
    ring fill, and what does not fit in a small buffer is counted, exactly."""
    stats = tmp_path / "slow.json"
    out = tmp_path / "slow.pcapng"
    # 50,000 records of 128 bytes: 6.4 MB against a 64 KiB pipe, a 1 MiB ring and
    # 2 MiB of buffer, none of them drained before the flood ends
    sent, data, _ = flood_then_sigterm(
        ["-i", dummy, "-w", "-", "--ring-size", str(1 << 20), "--mode", "drop",
         "-B", "2048", "--stats-json", str(stats)], dummy, 50_000,
    )  # fmt: skip
    out.write_bytes(data)
    s = json.loads(stats.read_text())
    assert s["ring_access"] == "mmap"
    assert capinfos_count(out) == s["written"]
    assert s["seen"] == sent == 50_000
    assert s["written"] + s["kernel_drops"] + s["mgdump_drops"] == sent, s
    assert s["not_written"] == 0
    assert s["buffered"] > 0, s  # the Gulp path ran
    assert s["mgdump_drops"] > 0, s  # and was full: its drops are counted, not lost
    assert isb_counters(out)[-1]["isb_osdrop"] == s["mgdump_drops"]


@pytest.mark.parametrize("how", ["mmap", "read"])
def test_ring_access_writes_every_record(
    tmp_path: Path, loaded: Module, dummy: str, how: str
) -> None:
    """Both ways of reading the rings write the same records: every frame of a flood,
    none twice, in order per ring (pktgen numbers its frames)."""
    out = tmp_path / f"{how}.pcapng"
    extra = ["--read"] if how == "read" else []
    flood = when_capturing(dummy, lambda: Pktgen(dummy).run(count=20_000, pkt_size=128))
    r = run_mgdump(["-i", dummy, "-w", str(out), "-c", "20000", *extra], tmp_path, flood)
    assert r.code == 0, r.stderr
    assert r.stats["ring_access"] == how
    assert r.stats["written"] == 20_000 == capinfos_count(out)
    if how == "mmap":
        assert r.stats["buffered"] == 0, r.stats  # written straight from the ring
    # pktgen's header after Ethernet, IPv4 and UDP: magic, then the frame's sequence
    # number, big endian (python-pcapng reads the frames)
    with open(out, "rb") as f:
        frames = [b.packet_data for b in independent.FileScanner(f)
                  if isinstance(b, independent.blocks.EnhancedPacket)]  # fmt: skip
    heads = [struct.unpack_from(">II", frame, 42) for frame in frames]
    assert {magic for magic, _ in heads} == {0xBE9BE955}
    seq = sorted(n for _, n in heads)
    assert seq == list(range(seq[0], seq[0] + 20_000))
