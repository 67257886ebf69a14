"""mgctl and the genetlink family against the real module: every command, the JSON,
every error with its message and exit status, permissions, netns, monitor, live mode
changes."""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from mgctl import __version__ as mgctl_version
from mgctl import api
from mgctl.api import Event, Lost, Mgcap
from mgctl.uapi import SNAPLEN_MAX
from tests.vm.conftest import (
    CliResult,
    Module,
    Pktgen,
    VethPair,
    eventually,
    mgctl,
    mgctl_json,
    read_records,
    run_mgctl,
    sh,
    text_counters,
    traffic,
)
from tests.vm.test_veth import UdpSink, settled_delivery


def show(dev: str, ns: str | None = None, stats: str = "") -> dict[str, Any]:
    out = mgctl_json(f"{stats} show dev {dev}", ns=ns)
    assert isinstance(out, list) and len(out) == 1
    result: dict[str, Any] = out[0]
    return result


def test_start_show_stop(mgcap: Module) -> None:
    mgcap.load()
    assert show("lo")["capturing"] is False
    p = run_mgctl("start dev lo")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert Path("/dev/mgcap/lo").exists()
    s = show("lo")
    assert s == {
        "ifindex": 1,
        "ifname": "lo",
        "capturing": True,
        "mode": "mirror",
        "snaplen": 96,
        "ring_size": 4 << 20,
        "nr_rings": s["nr_rings"],
        "link_type": 772,
        "chardev": "/dev/mgcap/lo",
        "filter": None,
    }
    assert s["nr_rings"] >= 2
    sh("ping -c 3 -i 0.2 127.0.0.1")
    s = show("lo", stats="-s")
    assert s["stats"]["captured_packets"] == s["stats"]["seen_packets"] == 6
    s2 = show("lo", stats="-s -s")
    assert sum(c["captured_packets"] for c in s2["cpu_stats"]) == 6
    assert [c["cpu"] for c in s2["cpu_stats"]] == list(range(s2["nr_rings"]))
    listing = mgctl_json("show")
    assert [d["ifname"] for d in listing] == ["lo"]
    text = run_mgctl("-s show").stdout
    assert text.startswith("1: lo: capturing mode mirror snaplen 96")
    counters = text_counters(text)
    assert counters["seen packets"] == counters["captured packets"] == 6
    assert counters["seen bytes"] == counters["captured bytes"] == s["stats"]["seen_bytes"]
    assert counters["seen ring-full-drops"] == counters["seen filtered"] == 0
    text2 = run_mgctl("-s -s show lo").stdout.splitlines()
    cpus = [line.split()[:3] for line in text2 if line.startswith("    cpu ")]
    assert [c[:2] for c in cpus] == [["cpu", str(n)] for n in range(s2["nr_rings"])] * 2
    assert sum(int(c[2]) for c in cpus) == 12  # seen, then captured: 6 each
    assert run_mgctl("sto dev lo").returncode == 0
    assert show("lo")["capturing"] is False
    assert not Path("/dev/mgcap/lo").exists()
    assert mgctl_json("show") == []


def test_start_with_settings_and_set_live(mgcap: Module, dummy: str) -> None:
    mgcap.load()
    out = mgctl_json(f"start dev {dummy} mode drop snaplen 200 ring-size 1048576")
    assert out["changed"] is True
    s = show(dummy)
    assert (s["mode"], s["snaplen"], s["ring_size"]) == ("drop", 200, 1 << 20)
    out = mgctl_json(f"set dev {dummy} mode mirror snaplen 64")
    assert out["changed"] is True
    assert out["dev"]["mode"] == "mirror" and out["dev"]["snaplen"] == 64
    out = mgctl_json(f"set dev {dummy} mode mirror")
    assert out["changed"] is False
    Pktgen(dummy).run(count=5, pkt_size=128)
    assert {r.caplen for r in read_records(dummy)} == {64}
    # sysfs agrees with netlink
    assert Path(f"/sys/class/mgcap/{dummy}/mode").read_text() == "mirror\n"


def test_show_device_without_dev(mgcap: Module) -> None:
    """`mgctl show lo` is `mgctl show dev lo`, as `ip link show lo` is; keywords and
    values by unique prefix."""
    mgcap.load()
    assert run_mgctl("st lo m d s 0") == CliResult(0, "", "")
    for args in ("show lo", "sh d lo", "s lo"):
        assert run_mgctl(f"-j {args}") == run_mgctl("-j show dev lo"), args
        assert run_mgctl(args) == run_mgctl("show dev lo"), args
    s = show("lo")
    assert (s["mode"], s["snaplen"]) == ("drop", SNAPLEN_MAX)  # snaplen 0: the whole frame
    text = run_mgctl("show lo").stdout
    assert text.startswith(f"1: lo: capturing mode drop snaplen {SNAPLEN_MAX} ")
    p = run_mgctl("show lo lo")
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr.startswith('Error: unknown argument "lo"; usage: mgctl')
    assert run_mgctl("sto lo") == CliResult(0, "", "")


def test_version(mgcap: Module) -> None:
    """mgctl's version, then the loaded module's when it tells one (MODULE_VERSION)."""
    p = run_mgctl("--version")
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout == f"mgctl version {mgctl_version}\n"
    mgcap.load()
    sysfs = Path("/sys/module/mgcap/version")
    module = f"mgcap module version {sysfs.read_text().strip()}\n" if sysfs.exists() else ""
    assert run_mgctl("-V") == CliResult(0, f"mgctl version {mgctl_version}\n{module}", "")


def test_start_and_stop_mean_the_same_with_and_without_json(mgcap: Module) -> None:
    """A start of the capture that runs changes nothing, a start of another is an error,
    a stop of a device that does not capture changes nothing: -j changes the form."""
    mgcap.load()
    assert run_mgctl("start dev lo mode drop") == CliResult(0, "", "")
    assert run_mgctl("start dev lo mode drop") == CliResult(0, "", "")
    again = mgctl_json("start dev lo mode drop")
    assert again["changed"] is False and again["dev"]["mode"] == "drop"
    refusals = [
        ("mode mirror", "mode drop, not mirror; change it with mgctl set or stop it first"),
        ("mode drop snaplen 0", f"snaplen 96, not {SNAPLEN_MAX}; change it with mgctl set or stop"),
        ("mode drop filter udp", 'no filter, not filter "udp"; change it with mgctl set or stop'),
        ("mode drop ring-size 65536", "ring-size 4194304, not 65536; stop it first."),
        ("ring-size 65536", "mode drop, not mirror; ring-size 4194304, not 65536; stop it first."),
    ]
    for args, why in refusals:
        for form in ("", "-j "):
            p = run_mgctl(f"{form}start dev lo {args}")
            assert (p.returncode, p.stdout) == (1, ""), (form, args)
            assert p.stderr.startswith(f"Error: lo already captures with {why}"), p.stderr
            assert p.stderr.endswith(".\n") and p.stderr.count("\n") == 1
    assert show("lo")["mode"] == "drop" and show("lo")["filter"] is None
    first = mgctl_json("stop dev lo")
    assert first["changed"] is True and first["dev"]["capturing"] is False
    assert run_mgctl("stop dev lo") == CliResult(0, "", "")
    assert mgctl_json("stop dev lo")["changed"] is False
    # changed is true only when something changed
    assert mgctl_json("start lo mode drop")["changed"] is True
    assert mgctl_json("stop lo")["changed"] is True


def test_identical_start_compares_with_the_module_defaults(mgcap: Module) -> None:
    mgcap.load(mode="drop", snaplen=200, ring_size=1 << 20)
    assert mgctl_json("start lo")["changed"] is True
    s = show("lo")
    assert (s["mode"], s["snaplen"], s["ring_size"]) == ("drop", 200, 1 << 20)
    assert mgctl_json("start lo")["changed"] is False
    assert mgctl_json("start lo mode drop snaplen 200 ring-size 1048576")["changed"] is False
    p = run_mgctl("start lo snaplen 96")
    assert (p.returncode, p.stderr) == (
        1,
        "Error: lo already captures with snaplen 200, not 96; "
        "change it with mgctl set or stop it first.\n",
    )
    assert run_mgctl("stop lo").returncode == 0


ERRORS = [
    ("start dev nosuch0", 1, "Error: nosuch0: no such device."),
    ("set dev lo mode drop", 1, "Error: mgcap: device is not capturing."),
    ("set lo snaplen 0", 1, "Error: mgcap: device is not capturing."),
    ("start dev lo ring-size 100000", 1, "Error: mgcap: ring size must be a power of two."),
    (
        "start dev lo ring-size 65536 snaplen 65535",
        1,
        "Error: mgcap: ring size must hold two records of the snaplen.",
    ),
    (f"start dev lo snaplen {SNAPLEN_MAX + 1}", 2, f"Error: snaplen {SNAPLEN_MAX + 1} out of "
     f"range (1 to {SNAPLEN_MAX}, or 0 for the whole frame)"),
    ("start dev lo mode fast", 2, 'Error: mode "fast" is not one of drop, mirror'),
    ("start", 2, "Error: a device is required; usage: mgctl start [dev] IF [mode drop|mirror] "
     "[snaplen N] [ring-size N] [filter EXPR]"),
    ("start lo lo", 2, 'Error: unknown argument "lo"; usage: mgctl start [dev] IF '
     "[mode drop|mirror] [snaplen N] [ring-size N] [filter EXPR]"),
    ("set dev lo", 2, "Error: nothing to set; usage: mgctl set [dev] IF [mode drop|mirror] "
     "[snaplen N] [filter EXPR|none]"),
    ("hwtstamp show dev lo", 1, "Error: lo: hardware timestamping not supported."),
    ("hwtstamp set dev lo rx all", 1, "Error: lo: hardware timestamping not supported."),
    ("hwtstamp set dev lo", 2, "Error: nothing to set; usage: mgctl hwtstamp set [dev] IF "
     "[rx none|all|ptp|FILTER] [tx off|on]"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "status", "message"), ERRORS)
def test_errors(mgcap: Module, args: str, status: int, message: str) -> None:
    mgcap.load()
    p = run_mgctl(args)
    assert (p.returncode, p.stderr.strip(), p.stdout) == (status, message, "")
    assert show("lo")["capturing"] is False


def test_already_capturing_and_other_rx_handler(mgcap: Module) -> None:
    mgcap.load(ifname="lo")
    assert run_mgctl("start dev lo") == CliResult(0, "", "")  # the capture that runs
    p = run_mgctl("start dev lo mode drop")
    assert (p.returncode, p.stderr) == (
        1,
        "Error: lo already captures with mode mirror, not drop; "
        "change it with mgctl set or stop it first.\n",
    )
    sh("ip link add mgbr0 type bridge && ip link add mgport0 type dummy")
    try:
        sh("ip link set mgport0 master mgbr0")
        p = run_mgctl("start dev mgport0")
        assert p.returncode == 1
        assert p.stderr == (
            "Error: mgcap: device has another rx_handler "
            "(bridge, bond, team, macvlan or similar port).\n"
        )
    finally:
        sh("ip link del mgbr0; ip link del mgport0", check=False)


def test_module_not_loaded(mgcap: Module) -> None:
    p = run_mgctl("show")
    # the hint depends on whether the guest's kernel has mgcap installed (it has not:
    # the harness insmods the build): tests/host/test_module_hint.py
    assert (p.returncode, p.stderr) == (1, f"Error: {api.module_missing()}.\n")


@pytest.mark.once(
    slot=0,
    why="mgctl's message and exit status; the kernel refuses every op "
    "on every kernel in test_security.py",
)
def test_unprivileged_caller_refused_and_nothing_changes(mgcap: Module) -> None:
    mgcap.load()
    drop = "setpriv --bounding-set -net_admin --inh-caps -net_admin "
    p = mgctl("start dev lo", pre=drop)
    assert p.returncode == 1
    assert p.stderr == (
        "Error: Operation not permitted (changes need CAP_NET_ADMIN: run as root).\n"
    )
    assert show("lo")["capturing"] is False
    # reading is open to everyone
    p = mgctl("-j show dev lo", pre=drop)
    assert p.returncode == 0 and json.loads(p.stdout)[0]["capturing"] is False
    assert mgctl("start dev lo").returncode == 0  # the console script, as root
    p = mgctl("stop dev lo", pre=drop)
    assert p.returncode == 1
    assert show("lo")["capturing"] is True


def test_netns_isolation_same_name_in_two_namespaces(mgcap: Module) -> None:
    mgcap.load()
    inums = {}
    try:
        for ns in ("mgN1", "mgN2"):
            sh(f"ip netns add {ns}")
            sh(f"ip -n {ns} link add veth0 type dummy && ip -n {ns} link set veth0 up")
            assert run_mgctl("start dev veth0", ns=ns).returncode == 0
            inums[ns] = os.stat(f"/run/netns/{ns}").st_ino
        for ns, inum in inums.items():
            s = show("veth0", ns=ns)
            assert s["chardev"] == f"/dev/mgcap/netns-{inum}/veth0"
            assert Path(s["chardev"]).exists()
            listing = mgctl_json("show", ns=ns)
            assert [d["chardev"] for d in listing] == [s["chardev"]]
        # the initial namespace sees neither; its own lookup fails
        assert mgctl_json("show") == []
        assert run_mgctl("stop dev veth0").stderr == "Error: veth0: no such device.\n"
        # removing a namespace stops its captures
        sh("ip netns del mgN1")  # the namespace is dismantled asynchronously
        assert eventually(lambda: not Path(f"/dev/mgcap/netns-{inums['mgN1']}/veth0").exists())
        assert Path(f"/dev/mgcap/netns-{inums['mgN2']}/veth0").exists()
    finally:
        sh("ip netns del mgN1; ip netns del mgN2", check=False)


def subscribed(pid: int) -> bool:
    """Whether process pid has a generic netlink socket that joined a multicast group
    (/proc/PID/net/netlink, its namespace's table, lists the first 32 groups of each
    socket)."""
    for line in Path(f"/proc/{pid}/net/netlink").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1]) == 16 and int(f[2]) & 0x3FFFFF == pid and int(f[3], 16):
            return True
    return False


class Lines:
    """The lines a process prints, collected by a thread, taken with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)

    def take(self, timeout: float = 60) -> str:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no event within the timeout") from None


def test_monitor_sees_changes_made_by_another_process(mgcap: Module, dummy: str) -> None:
    mgcap.load()
    exe = Path(sys.executable).with_name("mgctl")
    mon = subprocess.Popen([exe, "-j", "monitor"], stdout=subprocess.PIPE, text=True)
    text_mon = subprocess.Popen([exe, "monitor"], stdout=subprocess.PIPE, text=True)
    try:
        # Python starts slowly under TCG: wait until both have joined the group
        assert eventually(lambda: subscribed(mon.pid) and subscribed(text_mon.pid), timeout=120)
        run_mgctl(f"start dev {dummy} mode drop")
        run_mgctl(f"set dev {dummy} mode mirror snaplen 128")
        Pktgen(dummy).run(count=7)
        run_mgctl(f"stop dev {dummy}")
        assert mon.stdout is not None and text_mon.stdout is not None
        json_lines, text_lines = Lines(mon.stdout), Lines(text_mon.stdout)
        events = [json.loads(json_lines.take()) for _ in range(3)]
        lines = [text_lines.take().strip() for _ in range(3)]
    finally:
        mon.terminate()
        text_mon.terminate()
        mon.wait()
        text_mon.wait()
    assert [e["event"] for e in events] == ["start", "change", "stop"]
    assert events[0]["mode"] == "drop" and events[0]["capturing"] is True
    assert events[1]["mode"] == "mirror" and events[1]["snaplen"] == 128
    assert events[2]["capturing"] is False
    assert events[2]["stats"]["captured_packets"] == 7
    assert lines == [
        f"start dev {dummy} mode drop snaplen 96 ring-size 4194304",
        f"change dev {dummy} mode mirror snaplen 128 ring-size 4194304",
        f"stop dev {dummy} seen 7 captured 7 ring-full-drops 0",
    ]


CHANGES = 60


def test_monitor_counts_lost_events_and_goes_on(mgcap: Module, dummy: str) -> None:
    """A monitor that does not read while 60 changes happen, with the smallest receive
    buffer: the kernel drops what does not fit (ENOBUFS); the monitor reports exactly
    how many were lost, hands over the rest in order, and goes on with the next."""
    mgcap.load()
    items: queue.Queue[Event | Lost] = queue.Queue()
    go = threading.Event()

    def watch() -> None:
        with Mgcap() as m:
            for i, item in enumerate(m.monitor(rcvbuf=1)):
                items.put(item)
                if i == 0:  # then stall, as a reader that falls behind
                    go.wait(timeout=600)

    threading.Thread(target=watch, daemon=True).start()
    assert eventually(lambda: subscribed(os.getpid()), timeout=120)
    with Mgcap() as m:
        m.start(dummy)
        first = items.get(timeout=60)
        assert isinstance(first, Event) and first.kind == "start"
        for i in range(CHANGES):
            m.set(dummy, mode=("drop", "mirror")[i % 2])
        go.set()
        got: list[Event] = []
        lost: list[int] = []
        while len(got) + sum(lost) < CHANGES:
            item = items.get(timeout=60)
            if isinstance(item, Lost):
                lost.append(item.count)
            else:
                got.append(item)
        assert lost and sum(lost) > 0, "the small buffer never overran"
        assert len(got) + sum(lost) == CHANGES
        assert {e.kind for e in got} == {"change"}
        # the monitor goes on: the next event arrives, nothing more is lost
        m.stop(dummy)
        last = items.get(timeout=60)
        assert isinstance(last, Event) and (last.kind, last.state.ifname) == ("stop", dummy)
        assert items.empty()


def test_set_mode_drop_stops_delivery_at_once(mgcap: Module, veth: VethPair) -> None:
    mgcap.load()
    run_mgctl(f"start dev {veth.dev}")
    for k, (mode, expect) in enumerate((("mirror", 100), ("drop", 0), ("mirror", 100)), 1):
        assert run_mgctl(f"set dev {veth.dev} mode {mode}").returncode == 0
        sink = UdpSink(veth.addr, 9999)
        traffic(f"udp --dst {veth.addr} --count 100 --size 16", ns=veth.ns)
        # until mgcap has seen this round's 100 and the sink has what it should get
        assert settled_delivery(sink, mgcap, veth.dev, 100 * k, expect) == expect, mode
    s = show(veth.dev, stats="-s")
    assert s["stats"]["captured_packets"] == 300
    assert s["stats"]["consumed_packets"] == 100


def test_python_api_same_path(mgcap: Module) -> None:
    mgcap.load()
    with Mgcap() as m:
        r = m.start("lo", mode="drop", snaplen=128)
        assert r.changed and r.state.capturing and r.state.snaplen == 128
        assert [s.ifname for s in m.captures()] == ["lo"]
        assert m.set("lo", mode="mirror").changed
        assert not m.stop("lo").state.capturing


@pytest.mark.once(
    slot=0,
    why="the spec against the kernel tree's YNL tool (user space, ~30 s); "
    "the family's policy is test_netlink_policy.py's",
)
def test_ynl_cli_drives_the_family(mgcap: Module) -> None:
    """The kernel's own YNL tool, given only the spec, talks to the module."""
    from tests.harness import kernel_tools

    cli = kernel_tools.TREE / "tools" / "net" / "ynl" / "cli.py"
    if not cli.exists():
        pytest.skip("YNL tools not extracted (host tests extract them)")
    mgcap.load()
    spec = kernel_tools.SPEC
    base = f"{sys.executable} {cli} --spec {spec} --no-schema"
    sh(f"""{base} --do dev-start --json '{{"ifname": "lo", "mode": "drop"}}'""")
    out = sh(f"""{base} --do dev-get --json '{{"ifname": "lo"}}' --output-json""").stdout
    reply = json.loads(out)
    assert reply["capturing"] == 1 and reply["mode"] == "drop"
    assert reply["chardev"] == "mgcap/lo"
    dump = json.loads(sh(f"{base} --dump dev-get --output-json").stdout)
    assert [d["ifname"] for d in dump] == ["lo"]
    sh(f"""{base} --do dev-stop --json '{{"ifname": "lo"}}'""")
