"""Capture filters in the kernel: the program mgcap installs is tcpdump's, frame for
frame it selects what tcpdump selects from a full capture of the same traffic, the
counters add up, a live swap under a flood never mixes two programs, bad programs are
refused with a message and change nothing."""

import collections
import contextlib
import errno
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from mgctl import filter as bpf
from mgctl.api import Mgcap, MgcapError
from mgctl.chardev import CaptureDevice, device_path
from mgctl.netlink import MgcapNetlink
from mgctl.record import iter_records
from tests.vm.conftest import (
    Module,
    Pktgen,
    VethPair,
    eventually,
    in_netns,
    kernel_log_mark,
    kernel_problems_since,
    pg_write,
    read_raw,
    run_mgctl,
    sh,
    text_counters,
    write_pcapng,
)

SNAPLEN = 96

# at least 15 expressions over every kind the issue names
EXPRESSIONS = [
    "udp",
    "tcp",
    "icmp",
    "ip6",
    "arp",
    "host 10.77.0.1",
    "net 10.77.0.0/24",
    "dst port 53",
    "portrange 1000-2000",
    "ip proto 17",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "vlan",
    "vlan 100 and udp",
    "not vlan and udp",
    "len > 200",
    "ether[12:2] = 0x0806 or ip[8] = 7",
    "icmp or (tcp and dst port 80)",
    "ip6 and udp dst port 5353",
    "udp and not port 53",
    "ether src 02:00:00:00:00:01",
]


def tcpdump_program(expr: str, dev: str | None = None) -> bytes:
    """`tcpdump -ddd` of expr: for a live capture on dev, or for the link type alone."""
    where = ["-i", dev] if dev else ["-y", "EN10MB"]
    out = subprocess.run(
        ["tcpdump", "-ddd", *where, "-s", str(SNAPLEN), expr],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split("\n")
    n = int(out[0])
    insns = [tuple(int(x) for x in line.split()) for line in out[1 : n + 1]]
    return bpf.pack([(c, jt, jf, k) for c, jt, jf, k in insns])


# ---------------------------------------------------------------- traffic


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int, ttl: int = 64) -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        0,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + payload


def _udp(sport: int, dport: int, body: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body


def _tcp(sport: int, dport: int, flags: int, seq: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 8192, 0, 0)


def _icmp(ident: int, seq: int, body: bytes) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + body
    return msg[:2] + struct.pack("!H", _csum(msg)) + msg[4:]


def mixed_frames(dst_mac: bytes) -> list[bytes]:
    """Deterministic mixed traffic, every frame different: UDP (DNS, mDNS over IPv6,
    a port range), TCP with different flags, ICMP, IPv6, ARP, VLAN-tagged frames,
    two source MACs, small and large frames."""
    frames = []
    macs = [bytes.fromhex("020000000001"), bytes.fromhex("020000000002")]
    a, b, c = "10.77.0.1", "10.77.0.2", "192.0.2.9"
    for i in range(60):
        src = macs[i % 2]
        eth = dst_mac + src
        kind = i % 12
        n = (i * 7) % 300
        if kind >= 9 and 140 <= n <= 160:
            n += 30  # keep tagged frames away from the `len > 200` threshold
        body = i.to_bytes(4, "big") + bytes(j % 256 for j in range(n))
        if kind == 0:
            ip = _ipv4(a, b, 17, _udp(40000 + i, 53, body), i)
        elif kind == 1:
            ip = _ipv4(c, b, 17, _udp(1000 + 37 * i, 9, body), i)
        elif kind == 2:
            ip = _ipv4(a, b, 6, _tcp(50000 + i, 80, 0x02, i), i)  # SYN
        elif kind == 3:
            ip = _ipv4(c, b, 6, _tcp(50000 + i, 443, 0x10, i), i)  # ACK
        elif kind == 4:
            ip = _ipv4(a, b, 6, _tcp(50000 + i, 22, 0x11, i), i)  # FIN ACK
        elif kind == 5:
            ip = _ipv4(a, b, 1, _icmp(7, i, body), i)
        elif kind == 6:
            ip = _ipv4(c, b, 7, body, i)  # ip proto 7
        if kind <= 6:
            frames.append(eth + b"\x08\x00" + ip)
            continue
        if kind == 7:  # IPv6 UDP to mDNS port
            udp = _udp(5353, 5353 if i % 24 == 7 else 5354, body)
            ip6 = struct.pack("!IHBB", 0x60000000 | i, len(udp), 17, 64)
            ip6 += socket.inet_pton(socket.AF_INET6, "fe80::1")
            ip6 += socket.inet_pton(socket.AF_INET6, "ff02::fb")
            frames.append(eth + b"\x86\xdd" + ip6 + udp)
        elif kind == 8:  # ARP request
            arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + socket.inet_aton(a)
            arp += b"\0" * 6 + socket.inet_aton(f"10.77.0.{100 + i}")
            frames.append(eth + b"\x08\x06" + arp + b"\0" * 18)
        else:  # VLAN 100 or 200: UDP, TCP
            vid = 100 if kind != 11 else 200
            if kind == 10:
                ip = _ipv4(a, b, 6, _tcp(60000 + i, 80, 0x02, i), i)
            else:
                ip = _ipv4(a, b, 17, _udp(2000 + i, 53 if kind == 9 else 1500, body), i)
            frames.append(eth + struct.pack("!HH", 0x8100, vid) + b"\x08\x00" + ip)
    # no tagged frame within 4 bytes of the len threshold: `len` does not count a
    # tag the kernel moved to metadata (as for tcpdump on a Linux interface)
    for f in frames:
        assert not (f[12:14] == b"\x81\x00" and 197 <= len(f) <= 204)
    return frames


def send_frames(veth: VethPair, frames: list[bytes]) -> None:
    """Frames sent as they are from the namespace side, through a packet socket made
    in that namespace by this thread (no Python start-up: seconds under TCG)."""
    with in_netns(veth.ns), socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((veth.peer, 0))
        for f in frames:
            s.send(f)


def untagged(frames: list[bytes]) -> list[bytes]:
    return [f for f in frames if f[12:14] != b"\x81\x00"]


def read_pcap(path: Path) -> list[bytes]:
    """The frames of a classic pcap file (little-endian, as tcpdump writes here)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    frames, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<IIII", data, off)[2]
        frames.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


class LiveTcpdump:
    """tcpdump -i DEV EXPR capturing the same frames mgcap sees (its AF_PACKET tap
    runs before mgcap's rx_handler, on the same skb), ready when it says so."""

    def __init__(self, dev: str, expr: str, out: Path) -> None:
        self.out = out
        argv = ["tcpdump", "-i", dev, "-s", str(SNAPLEN), "-U", "--immediate-mode"]
        self.proc = subprocess.Popen(
            [*argv, "-w", str(out), expr], stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "tcpdump: listening on ..."
        assert "listening on" in line, line

    def result(self) -> list[bytes]:
        """Stop it once the file stops growing; its frames."""
        last = -1

        def settled() -> bool:
            nonlocal last
            size = self.out.stat().st_size if self.out.exists() else 0
            done = size == last
            last = size
            return done

        eventually(settled, timeout=20, step=0.5)
        self.proc.send_signal(2)
        self.proc.wait(timeout=60)
        return [f[:SNAPLEN] for f in read_pcap(self.out)]


def frames_of(data: bytes) -> list[bytes]:
    return [bytes(r.frame) for r in iter_records(data)]


def tcpdump_select(full: Path, expr: str, out: Path) -> list[bytes]:
    """The frames tcpdump selects with expr from a full capture, read back from the
    classic pcap file it writes."""
    subprocess.run(
        ["tcpdump", "-r", str(full), "-w", str(out), expr],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return read_pcap(out)


# ---------------------------------------------------------------- tests


def test_installed_program_is_tcpdumps(mgcap: Module, veth: VethPair) -> None:
    """For every expression, the program in the kernel is byte for byte the one
    `tcpdump -ddd -i DEV -s 96` prints, which for all but `vlan` is also the one of
    `tcpdump -ddd -y EN10MB -s 96`; dev-get, sysfs and mgctl show report it."""
    mgcap.load()
    with Mgcap() as m:
        r = m.start(veth.dev, snaplen=SNAPLEN, filter=EXPRESSIONS[0])
        assert r.state.filter == EXPRESSIONS[0]
        for expr in EXPRESSIONS:
            state = m.set(veth.dev, filter=expr).state
            live = tcpdump_program(expr, veth.dev)
            assert state.filter_program == live, expr
            assert state.filter == expr
            if "vlan" not in expr:
                assert live == tcpdump_program(expr), expr
            side = Path(f"/sys/class/mgcap/{veth.dev}/filter").read_text()
            assert side == expr + "\n"
        out = run_mgctl(f"-j show dev {veth.dev}")
        j = json.loads(out.stdout)[0]
        assert j["filter"] == {"expr": EXPRESSIONS[-1], "insns": len(live) // 8}
        assert f'filter "{EXPRESSIONS[-1]}"' in run_mgctl(f"show dev {veth.dev}").stdout
        assert run_mgctl(f"set dev {veth.dev} filter none").returncode == 0
        assert m.show(veth.dev).filter_program is None
        assert Path(f"/sys/class/mgcap/{veth.dev}/filter").read_text() == "\n"
        assert json.loads(run_mgctl(f"-j show dev {veth.dev}").stdout)[0]["filter"] is None
        m.stop(veth.dev)


def assert_counters_add_up(dev: str) -> dict[str, int]:
    with Mgcap() as m:
        state = m.show(dev)
    for c in state.cpu_stats:
        assert c["seen_packets"] == (
            c["captured_packets"] + c["filtered_packets"] + c["ring_full_drops"] + c["copy_errors"]
        ), c
    s = state.stats
    assert s["seen_packets"] == (
        s["captured_packets"] + s["filtered_packets"] + s["ring_full_drops"] + s["copy_errors"]
    ), s
    return s


def test_selects_what_tcpdump_selects(mgcap: Module, veth: VethPair, tmp_path: Path) -> None:
    """Mixed traffic (UDP, TCP flags, ICMP, IPv6, ARP, VLAN tags the kernel holds in
    metadata): an unfiltered capture is the full traffic; with each filter the frames
    mgcap keeps are exactly those tcpdump -i DEV keeps from the same frames, live; of
    the untagged frames, exactly those tcpdump -r selects from the full capture (a
    tag in metadata is not in the frame the program reads, on Linux, for tcpdump as
    for mgcap: docs/filters.md); seen = captured + filtered + drops holds, per CPU
    and in total."""
    mgcap.load()
    dst = bytes.fromhex(veth.mac(veth.dev).replace(":", ""))
    frames = mixed_frames(dst)
    with Mgcap() as m:
        m.start(veth.dev, mode="drop", snaplen=SNAPLEN)
        send_frames(veth, frames)
        assert eventually(lambda: m.show(veth.dev).stats["seen_packets"] == len(frames))
        full_data = read_raw(veth.dev)
        got = frames_of(full_data)
        assert collections.Counter(got) == collections.Counter(f[:SNAPLEN] for f in frames)
        full = write_pcapng(tmp_path / "full.pcapng", veth.dev, full_data)
        for n, expr in enumerate(EXPRESSIONS):
            m.set(veth.dev, filter=expr)
            seen = m.show(veth.dev).stats["seen_packets"] + len(frames)
            before = m.show(veth.dev).stats
            live_tcpdump = LiveTcpdump(veth.dev, expr, tmp_path / f"live{n}.pcap")
            send_frames(veth, frames)

            def all_seen(want: int = seen) -> bool:
                return m.show(veth.dev).stats["seen_packets"] == want

            assert eventually(all_seen)
            kept = frames_of(read_raw(veth.dev))
            live = live_tcpdump.result()
            assert collections.Counter(kept) == collections.Counter(live), expr
            offline = tcpdump_select(full, expr, tmp_path / f"sel{n}.pcap")
            assert collections.Counter(untagged(kept)) == collections.Counter(untagged(offline)), (
                expr
            )
            after = assert_counters_add_up(veth.dev)
            assert after["captured_packets"] - before["captured_packets"] == len(live)
            assert after["filtered_packets"] - before["filtered_packets"] == len(frames) - len(live)
            assert after["ring_full_drops"] == 0
        m.stop(veth.dev)


def test_drop_mode_consumes_rejected_frames(mgcap: Module, veth: VethPair) -> None:
    """Drop mode takes every frame from the stack, rejected or not (a SPAN port's
    traffic stays out of the host); mirror mode passes every frame on."""
    mgcap.load()
    ping = f"ping -c 3 -i 0.2 -W 1 {veth.addr}"
    with Mgcap() as m:
        m.start(veth.dev, mode="mirror", filter="udp")
        # exact: the veth fixture's static neighbours and IPv6 off leave nothing but
        # the 3 echo requests arriving on veth.dev (the replies leave by it: not seen)
        assert veth.ns_run(ping, check=False).returncode == 0
        s = assert_counters_add_up(veth.dev)
        assert (s["filtered_packets"], s["captured_packets"], s["consumed_packets"]) == (3, 0, 0)
        m.set(veth.dev, mode="drop")
        assert veth.ns_run(ping, check=False).returncode != 0
        s = assert_counters_add_up(veth.dev)
        assert (s["filtered_packets"], s["captured_packets"], s["consumed_packets"]) == (6, 0, 3)
        m.stop(veth.dev)


def test_live_swap_under_flood_never_mixes_programs(mgcap: Module, dummy: str) -> None:
    """300 swaps between two programs while pktgen floods both CPUs: program A keeps
    source ports 1000-1499 cut at 96 bytes, B ports 1500-1999 cut at 80; every record
    is one of the two, never A's ports at B's length or the reverse; counters add up."""
    mgcap.load()
    with Mgcap() as m:
        # A from the start: no record may come from an unfiltered moment
        m.start(
            dummy, mode="drop", snaplen=96, ring_size=8 << 20, filter="udp src portrange 1000-1499"
        )
        a = m.compile(dummy, "udp src portrange 1000-1499", 96)
        assert m.show(dummy).filter_program == a.pack()
        b = m.compile(dummy, "udp src portrange 1500-1999", 80)
    pg = Pktgen(dummy)
    sent: list[int] = []
    # paced (5,000 frames/s per CPU, pktgen sleeps between frames) so that the swaps
    # and the reader get CPU time under TCG; runs until pgctrl stop
    flood = threading.Thread(
        daemon=True,
        target=lambda: sent.append(
            pg.run(
                0,
                pkt_size=128,
                threads=2,
                extra=("ratep 5000", "flag UDPSRC_RND", "udp_src_min 1000", "udp_src_max 1999"),
            )
        ),
    )
    # (source port in A's range, caplen) -> records
    records: collections.Counter[tuple[bool, int]] = collections.Counter()
    stop = threading.Event()

    def count(data: bytes) -> None:
        for r in iter_records(data):
            sport = struct.unpack_from("!H", r.frame, 34)[0]
            records[(sport < 1500, r.caplen)] += 1

    def drain() -> None:
        # a chunk at a time: the flood never pauses long enough for read_all()
        with CaptureDevice(device_path(dummy), nonblock=True) as cd:
            while not stop.is_set():
                if cd.wait(0.05):
                    with contextlib.suppress(BlockingIOError):
                        count(os.read(cd.fd, 256 << 10))
            count(cd.read_all(0.3))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    flood.start()
    try:
        with MgcapNetlink() as nl:
            assert eventually(lambda: nl.do("dev-get", ifname=dummy)["stats"]["seen-packets"] > 0)  # type: ignore[index]
            for i in range(300):
                p = a if i % 2 else b
                nl.do("dev-set", ifname=dummy, filter=p.pack(), filter_expr=p.expr)
    finally:
        # a failure above must not leave pktgen flooding and the reader reading
        pg_write("pgctrl", "stop")
        flood.join(timeout=300)
        stop.set()
        reader.join(timeout=300)
    assert not flood.is_alive() and not reader.is_alive()
    assert set(records) <= {(True, 96), (False, 80)}, records
    # inequalities, not counts: the flood runs until stopped, paced by pktgen, with
    # random source ports, so how many frames each program saw is not known; that
    # both programs kept some is what says the swaps took effect
    assert records[(True, 96)] > 0 and records[(False, 80)] > 0, records
    s = assert_counters_add_up(dummy)
    assert s["captured_packets"] == sum(records.values())
    assert s["filtered_packets"] > 0 and s["captured_packets"] > 0
    with Mgcap() as m:
        m.stop(dummy)


def _refused(m: Mgcap, dev: str, **attrs: object) -> str:
    with pytest.raises(NetlinkError) as e:
        m.nl.do("dev-set", ifname=dev, **attrs)
    msg = e.value.args[1] if len(e.value.args) > 1 else ""
    assert msg, attrs
    return str(msg)


def test_bad_programs_refused_with_a_message(mgcap: Module, veth: VethPair) -> None:
    """Empty, too long, a jump past the end, a load at a negative offset, garbage:
    each refused with an extack message naming the fault; nothing changes, no WARN."""
    mgcap.load()
    mark = kernel_log_mark()
    ret = (6, 0, 0, 96)
    cases = {
        "empty": (b"", "empty"),
        "too long": (bpf.pack([ret] * 4097), "longer than 4096"),
        "jump": (bpf.pack([(0x15, 5, 0, 1), ret]), "jump past"),
        "negative ld": (bpf.pack([(0x28, 0, 0, 0xFFFFFFF8), ret]), "negative offset"),
        "no return": (bpf.pack([(0x28, 0, 0, 12)]), "return"),
        "partial": (b"\x06\x00\x00\x00\x60\x00\x00", "8-byte"),
        "garbage": (bytes.fromhex("ffff0000ffffffff") + bpf.pack([ret]), "checker"),
    }
    with Mgcap() as m:
        m.start(veth.dev, filter="udp")
        good = m.show(veth.dev)
        for name, (prog, words) in cases.items():
            msg = _refused(m, veth.dev, filter=prog, filter_expr=name)
            assert words in msg, (name, msg)
            assert m.show(veth.dev).filter_program == good.filter_program, name
        assert "needs the filter program" in _refused(m, veth.dev, filter_expr="udp")
        assert "exclude" in _refused(m, veth.dev, filter=good.filter_program, filter_clear=True)
        m.stop(veth.dev)
        # a refused start starts nothing
        with pytest.raises(NetlinkError):
            m.nl.do("dev-start", ifname=veth.dev, filter=b"")
        assert not m.show(veth.dev).capturing
    # a bad expression is a usage error with libpcap's words; nothing reaches the kernel
    r = run_mgctl(f"start dev {veth.dev} filter 'tcp port nosuchport'")
    assert r.returncode == 2 and "nosuchport" in r.stderr and r.stderr.count("\n") == 1
    with Mgcap() as m:
        assert not m.show(veth.dev).capturing
    assert kernel_problems_since(mark) == []


def test_unprivileged_callers_refused(mgcap: Module, veth: VethPair) -> None:
    """Setting or clearing a filter needs CAP_NET_ADMIN."""
    mgcap.load()
    with Mgcap() as m:
        m.start(veth.dev, filter="udp")
        prog = m.show(veth.dev).filter_program
    pid = os.fork()
    if pid == 0:  # the child: nobody, no capabilities
        code = 0
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with Mgcap() as m:
                for attrs in ({"filter": prog}, {"filter_clear": True}):
                    try:
                        m.nl.do("dev-set", ifname=veth.dev, **attrs)
                        code = 10
                    except NetlinkError as e:
                        if e.code != errno.EPERM:
                            code = 11
        except BaseException:
            code = 12
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with Mgcap() as m:
        assert m.show(veth.dev).filter == "udp"
        m.stop(veth.dev)


@pytest.mark.once(
    slot=0,
    why="the spec's filter attributes through YNL (user space, ~30 s); "
    "the kernel's side of filters runs in every boot",
)
def test_ynl_cli_sets_a_filter(mgcap: Module, veth: VethPair) -> None:
    """The kernel's YNL tool, from the spec alone, installs and clears a filter."""
    from tests.harness import kernel_tools

    cli = kernel_tools.TREE / "tools" / "net" / "ynl" / "cli.py"
    if not cli.exists():
        pytest.skip("YNL tools not extracted (host tests extract them)")
    mgcap.load()
    prog = tcpdump_program("icmp", veth.dev)
    base = f"{sys.executable} {cli} --spec {kernel_tools.SPEC} --no-schema"
    req = json.dumps({"ifname": veth.dev, "filter": prog.hex(), "filter-expr": "icmp"})
    sh(f"{base} --do dev-start --json '{req}'")
    with Mgcap() as m:
        st = m.show(veth.dev)
        assert (st.filter, st.filter_program) == ("icmp", prog)
    sh(f"""{base} --do dev-set --json '{{"ifname": "{veth.dev}", "filter-clear": true}}'""")
    with Mgcap() as m:
        assert m.show(veth.dev).filter_program is None
        m.stop(veth.dev)


def test_mgctl_start_with_filter_and_show(mgcap: Module, veth: VethPair) -> None:
    """mgctl start with a filter that compiles installs it; show -s counts rejects."""
    mgcap.load()
    assert run_mgctl(f"start dev {veth.dev} mode drop filter 'tcp port 443'").returncode == 0
    veth.ns_run(f"ping -c 2 -i 0.2 -W 1 {veth.addr}", check=False)
    out = run_mgctl(f"-s show dev {veth.dev}").stdout
    assert 'filter "tcp port 443"' in out and text_counters(out)["seen filtered"] == 2
    with pytest.raises(MgcapError), Mgcap() as m:
        m.set(veth.dev, filter="udp", clear_filter=True)
    assert run_mgctl(f"stop dev {veth.dev}").returncode == 0
