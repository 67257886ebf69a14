"""mgdump with a capture filter in the VM: the trailing expression is installed with
the capture mgdump starts and goes with it, the file holds exactly the matching
packets, the statistics block's isb_filteraccept and the summary account for the
rejected ones, and a capture that already runs with another filter is refused,
never replaced."""

import contextlib
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pcapng as independent  # python-pcapng: an independent reader of the statistics
import pytest

from mgctl import filter as bpf
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
    why="mgdump's filter options; the kernel's filters are tested in every boot (test_filter.py)",
)

EXPR = "udp and dst port 7001"
PINGS, REJECTED_UDP, ACCEPTED_UDP = 5, 40, 30
DEADLINE = 300.0  # seconds any one mgdump run may take before it is interrupted


@dataclass
class DumpResult:
    code: int
    stderr: str
    stats: dict[str, Any]


def run_mgdump(
    args: list[str], tmp: Path, during: Callable[[Callable[[], str]], None] | None = None
) -> DumpResult:
    """mgdump's main() in this process (signals need the main thread); `during` runs in a
    thread and gets mgdump's stderr so far. A failing `during`, or DEADLINE passing,
    interrupts mgdump (SIGINT) so that no test hangs; the failure is raised after."""
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
        except BaseException as e:  # re-raised in the test's thread
            failure.append(e)
            interrupt()

    argv = sys.argv
    # no -q: it would keep the "listening on" line the helpers wait for
    sys.argv = ["mgdump", "--stats-json", str(stats), *args]
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    watchdog = threading.Timer(DEADLINE, interrupt)
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
    if failure:
        raise failure[0]
    data = json.loads(stats.read_text()) if stats.exists() else {}
    return DumpResult(code, err.getvalue(), data)


def wait_listening(stderr: Callable[[], str], ifname: str) -> None:
    """mgdump's start-up line: the capture runs and its readers are bound."""
    assert eventually(lambda: f"listening on {ifname}," in stderr(), timeout=120), stderr()


def seen(ifname: str) -> int:
    path = Path(f"/sys/class/mgcap/{ifname}/statistics/seen_packets")
    try:
        return int(path.read_text())
    except OSError:
        return -1


def mixed_traffic(veth: VethPair, to_7001: bool = True) -> None:
    """From the namespace into veth.dev, one CPU (so in order): pings, UDP to port 7002,
    then (to_7001) UDP to port 7001."""
    veth.ns_run(f"taskset -c 0 ping -c {PINGS} -i 0.2 -W 1 {veth.addr}")
    traffic(f"udp --dst {veth.addr} --port 7002 --count {REJECTED_UDP}", ns=veth.ns, cpu=0)
    if to_7001:
        traffic(f"udp --dst {veth.addr} --port 7001 --count {ACCEPTED_UDP}", ns=veth.ns, cpu=0)


def statistics_blocks(path: Path) -> list[dict[str, int]]:
    keys = ("isb_ifrecv", "isb_filteraccept", "isb_ifdrop", "isb_osdrop", "isb_usrdeliv")
    with open(path, "rb") as f:
        blocks = list(independent.FileScanner(f))
    return [
        {k: int(b.options[k]) for k in keys}
        for b in blocks
        if isinstance(b, independent.blocks.InterfaceStatistics)
    ]


def show(ifname: str) -> dict[str, Any]:
    proc = run_mgctl(f"-j show dev {ifname}")
    assert proc.returncode == 0, proc.stderr
    state: dict[str, Any] = json.loads(proc.stdout)[0]
    return state


@pytest.fixture
def loaded(mgcap: Module) -> Iterator[Module]:
    mgcap.load()
    yield mgcap


def test_trailing_expression_owned_capture(loaded: Module, veth: VethPair, tmp_path: Path) -> None:
    """mgdump -i vcap -w f udp and dst port 7001 (words, as tcpdump takes them): the
    file holds exactly the 30 datagrams to 7001; ISB, summary and JSON count the 45
    rejected frames; the capture and its filter are gone afterwards."""
    out = tmp_path / "f.pcapng"
    total = PINGS + REJECTED_UDP + ACCEPTED_UDP

    def during(stderr: Callable[[], str]) -> None:
        wait_listening(stderr, veth.dev)
        assert f'capture filter "{EXPR}"' in stderr()
        mixed_traffic(veth)
        assert eventually(lambda: seen(veth.dev) == total, timeout=60), seen(veth.dev)
        os.kill(os.getpid(), signal.SIGINT)

    r = run_mgdump(["-i", veth.dev, "-w", str(out), *EXPR.split()], tmp_path, during)
    assert r.code == 0, r.stderr
    rejected = total - ACCEPTED_UDP
    assert capinfos_count(out) == ACCEPTED_UDP
    rows = tshark_fields(out, "ip.dst", "udp.dstport")
    assert rows == [[veth.addr, "7001"]] * ACCEPTED_UDP
    assert f"Filter string = {EXPR}" in sh(f"capinfos -M {out}").stdout
    assert statistics_blocks(out) == [
        {"isb_ifrecv": total, "isb_filteraccept": ACCEPTED_UDP, "isb_ifdrop": 0,
         "isb_osdrop": 0, "isb_usrdeliv": ACCEPTED_UDP}
    ]  # fmt: skip
    s = r.stats
    assert (s["seen"], s["written"], s["filtered"]) == (total, ACCEPTED_UDP, rejected), s
    assert s["seen"] == s["written"] + s["filtered"] + s["kernel_drops"] + s["mgdump_drops"]
    assert s["interfaces"][0]["filter"] == EXPR and not s["interfaces"][0]["filter_found"]
    assert f"{rejected} packets rejected by the capture filter\n" in r.stderr + "\n"
    # mgdump started the capture, so it stopped it: no capture, no filter, no device node
    state = show(veth.dev)
    assert state["capturing"] is False and not state.get("filter")
    assert not Path(f"/dev/mgcap/{veth.dev}").exists()


def test_filter_file_and_a_refused_expression(
    loaded: Module, veth: VethPair, tmp_path: Path
) -> None:
    """-F FILE (with a comment) selects the same; an expression libpcap refuses is a
    usage error with libpcap's message, and nothing is started."""
    f = tmp_path / "filter"
    f.write_text("# DNS-like test traffic only\nudp # datagrams\n  and dst port 7001\n")
    out = tmp_path / "F.pcapng"

    def during(stderr: Callable[[], str]) -> None:
        wait_listening(stderr, veth.dev)
        mixed_traffic(veth)

    r = run_mgdump(
        ["-i", veth.dev, "-w", str(out), "-F", str(f), "-c", str(ACCEPTED_UDP)], tmp_path, during
    )
    assert r.code == 0, r.stderr
    assert tshark_fields(out, "udp.dstport") == [["7001"]] * ACCEPTED_UDP
    assert r.stats["interfaces"][0]["filter"] == EXPR

    bad = tmp_path / "bad.pcapng"
    r = run_mgdump(["-i", veth.dev, "-w", str(bad), "udp", "and", "prt", "7001"], tmp_path)
    assert r.code == 2
    with pytest.raises(bpf.FilterError) as refused:
        bpf.compile_filter("udp and prt 7001", 96, device=veth.dev)
    assert "syntax error" in refused.value.message
    assert r.stderr == f'mgdump: filter "udp and prt 7001": {refused.value.message}\n'
    assert not bad.exists() and show(veth.dev)["capturing"] is False


def test_existing_capture_filter_is_never_replaced(
    loaded: Module, veth: VethPair, tmp_path: Path
) -> None:
    """A capture started by mgctl with another filter: mgdump refuses (exit 1) and names
    it; with the same expression, or none, it uses the capture as is and says so."""
    other = "udp and dst port 7002"
    assert run_mgctl(f"start dev {veth.dev} snaplen 128 filter '{other}'").returncode == 0
    try:
        r = run_mgdump(["-i", veth.dev, "-w", str(tmp_path / "x"), EXPR], tmp_path)
        assert r.code == 1
        assert r.stderr == (
            f'mgdump: {veth.dev} already captures with the capture filter "{other}"; to '
            f"change it: mgctl set dev {veth.dev} filter '{EXPR}' (or leave out the "
            f"expression to use it)\n"
        )
        assert not (tmp_path / "x").exists()
        state = show(veth.dev)
        assert state["capturing"] and state["filter"]["expr"] == other

        # -d prints the program for the running capture's snaplen
        mgdump = Path(sys.executable).with_name("mgdump")
        code = sh(f"{mgdump} -i {veth.dev} -ddd udp", timeout=900)
        assert code.stdout.splitlines()[-2:] == ["6 0 0 128", "6 0 0 0"]

        # the same expression (other words and spacing, the same program): used as is
        same = tmp_path / "same.pcapng"

        def during(stderr: Callable[[], str]) -> None:
            wait_listening(stderr, veth.dev)
            mixed_traffic(veth, to_7001=False)  # the last frame ends the capture at -c

        r = run_mgdump(
            ["-i", veth.dev, "-w", str(same), "-c", str(REJECTED_UDP), "udp  and", "dst",
             "port 7002"],
            tmp_path, during,
        )  # fmt: skip
        assert r.code == 0, r.stderr
        assert tshark_fields(same, "udp.dstport") == [["7002"]] * REJECTED_UDP

        # no expression: the installed filter applies, and mgdump says so
        found = tmp_path / "found.pcapng"
        r = run_mgdump(
            ["-i", veth.dev, "-w", str(found), "-c", str(REJECTED_UDP)], tmp_path, during
        )
        assert r.code == 0, r.stderr
        assert f'capture filter "{other}" (installed before mgdump)' in r.stderr
        assert f"{PINGS} packets rejected by the capture filter (installed before mgdump)" in (
            r.stderr
        )
        assert tshark_fields(found, "udp.dstport") == [["7002"]] * REJECTED_UDP
        assert r.stats["interfaces"][0]["filter_found"] is True
        state = show(veth.dev)
        assert state["capturing"] and state["filter"]["expr"] == other

        # a capture without a filter, mgdump given one: refused as well
        assert run_mgctl(f"set dev {veth.dev} filter none").returncode == 0
        r = run_mgdump(["-i", veth.dev, "-w", str(tmp_path / "y"), EXPR], tmp_path)
        assert r.code == 1
        assert f"{veth.dev} already captures without a capture filter" in r.stderr
        assert len(r.stderr.splitlines()) == 1
        assert show(veth.dev)["filter"] is None
    finally:
        run_mgctl(f"stop dev {veth.dev}")
