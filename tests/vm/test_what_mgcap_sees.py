"""Where in the receive path mgcap sees frames (docs/format.md, "What mgcap sees"): after
the AF_PACKET taps, after tc ingress, after the VLAN sub-interfaces took their frames.

Frames are crafted and sent through a packet socket in the peer's namespace by this
process (no Python start-up: seconds under TCG). They carry a local experimental
EtherType, so nothing in the stack answers them; the only traffic on the veth pair is
the test's own (IPv6 off, static neighbours)."""

import ctypes
import os
import re
import socket
import struct
import time
from pathlib import Path

from pyroute2 import IPRoute

from mgctl.record import Record
from tests.vm.conftest import (
    Module,
    VethPair,
    eventually,
    in_netns,
    read_records,
    run_mgctl,
    sh,
)

N = 50
ETH_P_ALL = 0x0003
ETH_P_EXPERIMENTAL = 0x88B5
SRC_MAC = bytes.fromhex("020000000077")
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
WAIT = 60.0  # seconds; TCG is slow


def frame(dst_mac: bytes, seq: int, vid: int | None = None) -> bytes:
    """dst, SRC_MAC, an 802.1Q tag if vid, the experimental EtherType, a payload
    naming vid and seq, 64 bytes untagged."""
    tag = struct.pack("!HH", 0x8100, vid) if vid is not None else b""
    body = b"mgcap-sees" + struct.pack("!HI", vid or 0, seq)
    body += bytes(i % 256 for i in range(64 - 14 - len(body)))
    return dst_mac + SRC_MAC + tag + struct.pack("!H", ETH_P_EXPERIMENTAL) + body


def untag(f: bytes) -> bytes:
    return f[:12] + f[16:]


def send_frames(veth: VethPair, frames: list[bytes]) -> None:
    """Send from the peer, from CPU 0: veth queues what it receives to the sending
    CPU's backlog, so frames sent by two calls are processed in the order sent, and a
    batch seen whole proves the batches before it were processed."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        with in_netns(veth.ns), socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((veth.peer, 0))
            for f in frames:
                s.send(f)
    finally:
        os.sched_setaffinity(0, cpus)


class Tap:
    """An AF_PACKET socket for all protocols bound to ifname, as tcpdump -i ifname
    opens: it collects the frames from SRC_MAC with the VLAN ID the kernel reports
    in PACKET_AUXDATA (None: no tag)."""

    def __init__(self, ifname: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.bind((ifname, ETH_P_ALL))
        self.frames: list[tuple[bytes, int | None]] = []

    def _recv_one(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        data, anc, _, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(AUXDATA.size))
        if addr[2] == PACKET_OUTGOING or data[6:12] != SRC_MAC:
            return
        vid = None
        for level, kind, cdata in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, tci, _ = AUXDATA.unpack(cdata[: AUXDATA.size])
                if status & TP_STATUS_VLAN_VALID:
                    vid = tci & 0xFFF
        self.frames.append((data, vid))

    def collect(self, want: int, idle: float = 0.5) -> list[tuple[bytes, int | None]]:
        """Wait (at most WAIT s) for `want` more frames, then for `idle` s more, so
        that a frame too many shows; returns the new frames."""
        start = len(self.frames)
        end = time.monotonic() + WAIT
        while len(self.frames) - start < want and time.monotonic() < end:
            try:
                self._recv_one(max(end - time.monotonic(), 0.01))
            except TimeoutError:
                break
        while True:
            try:
                self._recv_one(idle)
            except TimeoutError:
                break
        return self.frames[start:]

    def close(self) -> None:
        self.sock.close()


def add_vlan(parent: str, vid: int) -> str:
    """A VLAN sub-interface of parent, IPv6 off before it is up (it sends nothing)."""
    name = f"{parent}.{vid}"
    sh(f"ip link add link {parent} name {name} type vlan id {vid}")
    Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
    sh(f"ip link set {name} up")
    return name


def rx_packets(ifname: str) -> int:
    return int(Path(f"/sys/class/net/{ifname}/statistics/rx_packets").read_text())


def ours(recs: list[Record]) -> list[bytes]:
    return [r.frame for r in recs if r.frame[6:12] == SRC_MAC]


def test_vlan_parent_sees_only_vlans_without_a_subinterface(mgcap: Module, veth: VethPair) -> None:
    """VLAN 100 has a sub-interface on the capturing side, VLAN 200 has none. A
    capture on the parent gets exactly the VLAN 200 frames, the tag back in place;
    the VLAN 100 frames went to the sub-interface before mgcap's rx_handler, even in
    drop mode. A packet socket on the parent (tcpdump -i vcap) gets both."""
    vlan = add_vlan(veth.dev, 100)
    mgcap.load(ifname=veth.dev, mode="drop", snaplen=128)
    mac = bytes.fromhex(veth.mac(veth.dev).replace(":", ""))
    f100 = [frame(mac, i, vid=100) for i in range(N)]
    f200 = [frame(mac, i, vid=200) for i in range(N)]
    tap = Tap(veth.dev)
    try:
        send_frames(veth, [f for pair in zip(f100, f200, strict=True) for f in pair])
        assert eventually(lambda: mgcap.stat(veth.dev, "seen_packets") >= N, timeout=WAIT)
        assert eventually(lambda: rx_packets(vlan) >= N, timeout=WAIT)
        tapped = tap.collect(2 * N)
    finally:
        tap.close()

    # mgcap on the parent: the VLAN 200 frames, byte for byte as sent (tag included)
    assert sorted(ours(read_records(veth.dev))) == sorted(f200)
    stats = mgcap.stats(veth.dev)
    assert (stats["seen_packets"], stats["captured_packets"]) == (N, N)
    assert stats["consumed_packets"] == N
    # the VLAN 100 frames reached the sub-interface: drop mode on the parent did not
    # keep them from the stack
    assert rx_packets(vlan) == N
    # the packet socket: every frame, the tag in metadata as for tcpdump
    assert sorted(tapped) == sorted(
        [(untag(f), 100) for f in f100] + [(untag(f), 200) for f in f200]
    )


def test_capture_on_the_vlan_device_itself(mgcap: Module, veth: VethPair) -> None:
    """mgctl start dev vcap.100: the sub-interface's own rx_handler round sees exactly
    the VLAN 100 frames, without the tag (as tcpdump -i vcap.100 shows them); with
    reorder_hdr off the VLAN device keeps the tag in the frame, and so does the
    record."""
    vlan = add_vlan(veth.dev, 100)
    mgcap.load()
    res = run_mgctl(f"start dev {vlan} snaplen 128")
    assert res.returncode == 0, res.stderr
    mac = bytes.fromhex(veth.mac(veth.dev).replace(":", ""))
    f100 = [frame(mac, i, vid=100) for i in range(N)]
    f200 = [frame(mac, i, vid=200) for i in range(N)]
    send_frames(veth, [f for pair in zip(f100, f200, strict=True) for f in pair])
    assert eventually(lambda: mgcap.stat(vlan, "seen_packets") >= N, timeout=WAIT)
    assert sorted(ours(read_records(vlan))) == sorted(untag(f) for f in f100)
    assert mgcap.stat(vlan, "captured_packets") == N

    sh(f"ip link set {vlan} type vlan reorder_hdr off")
    more = [frame(mac, N + i, vid=100) for i in range(N)]
    send_frames(veth, more + [frame(mac, N + i, vid=200) for i in range(N)])
    assert eventually(lambda: mgcap.stat(vlan, "seen_packets") >= 2 * N, timeout=WAIT)
    assert sorted(ours(read_records(vlan))) == sorted(more)
    assert mgcap.stat(vlan, "seen_packets") == 2 * N
    res = run_mgctl(f"stop dev {vlan}")
    assert res.returncode == 0, res.stderr


def test_tc_ingress_drop_hides_frames_from_mgcap_not_from_af_packet(
    mgcap: Module, veth: VethPair
) -> None:
    """A tc ingress filter that drops everything: an AF_PACKET socket (a tap, before tc)
    gets every frame, mgcap (after tc) none. With the filter gone the next batch reaches
    mgcap, all of it and nothing of the first: the first batch was processed and not
    seen."""
    mgcap.load(ifname=veth.dev, snaplen=128)
    mac = bytes.fromhex(veth.mac(veth.dev).replace(":", ""))
    first = [frame(mac, i) for i in range(N)]
    second = [frame(mac, N + i) for i in range(N)]
    sh(f"tc qdisc add dev {veth.dev} clsact")
    sh(f"tc filter add dev {veth.dev} ingress matchall action drop")
    tap = Tap(veth.dev)
    try:
        send_frames(veth, first)
        tapped_first = tap.collect(N)
        assert mgcap.stat(veth.dev, "seen_packets") == 0
        out = sh(f"tc -s filter show dev {veth.dev} ingress").stdout
        # the drop action counted them (bytes as tc counts them: without the MAC header)
        assert re.search(rf"Sent \d+ bytes {N} pkt \(dropped {N},", out), out

        sh(f"tc filter del dev {veth.dev} ingress")
        send_frames(veth, second)
        tapped_second = tap.collect(N)
        assert eventually(lambda: mgcap.stat(veth.dev, "seen_packets") >= N, timeout=WAIT)
    finally:
        tap.close()
        sh(f"tc qdisc del dev {veth.dev} clsact", check=False)

    assert sorted(tapped_first) == sorted((f, None) for f in first)
    assert sorted(tapped_second) == sorted((f, None) for f in second)
    assert sorted(ours(read_records(veth.dev))) == sorted(second)
    stats = mgcap.stats(veth.dev)
    assert (stats["seen_packets"], stats["captured_packets"]) == (N, N)


BPF_PROG_LOAD = 5
BPF_PROG_TYPE_XDP = 6
SYS_BPF = 321  # x86_64
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_DROP = 1


def xdp_drop_program() -> int:
    """An XDP program that drops every frame (r0 = XDP_DROP; exit), loaded with the
    bpf() system call; returns its file descriptor."""
    insns = struct.pack("<BBhi", 0xB7, 0, 0, XDP_DROP) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    insns_buf = ctypes.create_string_buffer(insns, len(insns))
    license_buf = ctypes.create_string_buffer(b"GPL")
    log_buf = ctypes.create_string_buffer(4096)
    attr = struct.pack(
        "=IIQQIIQ",
        BPF_PROG_TYPE_XDP,
        len(insns) // 8,
        ctypes.addressof(insns_buf),
        ctypes.addressof(license_buf),
        1,
        len(log_buf),
        ctypes.addressof(log_buf),
    ).ljust(128, b"\0")
    attr_buf = ctypes.create_string_buffer(attr, len(attr))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = int(
        libc.syscall(
            ctypes.c_long(SYS_BPF),
            ctypes.c_int(BPF_PROG_LOAD),
            attr_buf,
            ctypes.c_uint(len(attr)),
        )
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"BPF_PROG_LOAD: {os.strerror(err)}: {log_buf.value.decode()}")
    return fd


def xdp_generic(ifname: str, fd: int) -> None:
    """Attach the program fd to ifname in generic (skb) mode; fd -1 detaches."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link(
            "set",
            index=idx,
            xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", XDP_FLAGS_SKB_MODE)]},
        )


def test_generic_xdp_drop_hides_frames_from_mgcap_and_af_packet(
    mgcap: Module, veth: VethPair
) -> None:
    """Generic XDP runs first in the receive path: what it drops reaches neither the
    taps nor mgcap. The next batch, sent after the program is detached, reaches both,
    all of it and nothing of the first."""
    mgcap.load(ifname=veth.dev, snaplen=128)
    mac = bytes.fromhex(veth.mac(veth.dev).replace(":", ""))
    first = [frame(mac, i) for i in range(N)]
    second = [frame(mac, N + i) for i in range(N)]
    fd = xdp_drop_program()
    tap = Tap(veth.dev)
    try:
        xdp_generic(veth.dev, fd)
        assert "xdpgeneric" in sh(f"ip link show dev {veth.dev}").stdout
        before = rx_packets(veth.dev)
        send_frames(veth, first)
        # veth counts a frame it handed to the receive path of vcap
        assert rx_packets(veth.dev) == before + N
        xdp_generic(veth.dev, -1)
        assert "xdpgeneric" not in sh(f"ip link show dev {veth.dev}").stdout
        send_frames(veth, second)
        tapped = tap.collect(N)
        assert eventually(lambda: mgcap.stat(veth.dev, "seen_packets") >= N, timeout=WAIT)
    finally:
        tap.close()
        os.close(fd)
        sh(f"ip link set dev {veth.dev} xdpgeneric off", check=False)

    assert sorted(tapped) == sorted((f, None) for f in second)
    assert sorted(ours(read_records(veth.dev))) == sorted(second)
    stats = mgcap.stats(veth.dev)
    assert (stats["seen_packets"], stats["captured_packets"]) == (N, N)


def test_ports_and_mgcap_exclude_each_other_vlans_do_not(mgcap: Module, veth: VethPair) -> None:
    """The lower device of a macvlan has the macvlan's rx_handler: mgctl start refuses
    it. While vcap captures, it cannot become a macvlan's lower device or a bridge
    port, but a VLAN sub-interface can be added to it."""
    mgcap.load()
    sh(f"ip link add link {veth.dev} name mgmv0 type macvlan")
    p = run_mgctl(f"start dev {veth.dev}")
    assert (p.returncode, p.stderr) == (
        1,
        "Error: mgcap: device has another rx_handler "
        "(bridge, bond, team, macvlan or similar port).\n",
    )
    sh("ip link del mgmv0")
    p = run_mgctl(f"start dev {veth.dev}")
    assert p.returncode == 0, p.stderr

    mv = sh(f"ip link add link {veth.dev} name mgmv0 type macvlan", check=False)
    assert mv.returncode != 0
    assert "in use" in mv.stderr or "busy" in mv.stderr, mv.stderr
    sh("ip link add mgbr1 type bridge")
    try:
        br = sh(f"ip link set {veth.dev} master mgbr1", check=False)
        assert br.returncode != 0
        assert "busy" in br.stderr, br.stderr
    finally:
        sh("ip link del mgbr1", check=False)
    add_vlan(veth.dev, 100)
    assert Path(f"/sys/class/mgcap/{veth.dev}").exists()
    assert not Path("/sys/class/net/mgmv0").exists()
