"""Devices without a link-layer header: records are raw IP (LINKTYPE_RAW), from a tun
device (IPv4 and IPv6 written into its fd) and from an ipip tunnel (the outer Ethernet
and IP headers of the decapsulated packet are not part of the record). A device type
no capture file link type describes is refused at start."""

import fcntl
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgctl import pcapng, rawdump
from mgctl.api import Mgcap
from tests.vm.conftest import (
    Module,
    capinfos_count,
    in_netns,
    run_mgctl,
    sh,
    sysctl,
    tshark_fields,
)

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp4(src: str, dst: str, port: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + udp


def udp6(src: str, dst: str, port: int, payload: bytes) -> bytes:
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    length = 8 + len(payload)
    pseudo = s + d + struct.pack("!IxxxB", length, socket.IPPROTO_UDP)
    udp = struct.pack("!HHHH", 40000, port, length, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    return struct.pack("!IHBB", 0x60000000, length, socket.IPPROTO_UDP, 64) + s + d + udp


@pytest.fixture
def tun() -> Iterator[tuple[str, int]]:
    """A tun device in IFF_TUN mode (ARPHRD_NONE), up, and the fd that feeds it."""
    name = "mgtun0"
    sh("modprobe tun")  # its node, /dev/net/tun, appears with the module
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    sh(f"ip addr add 10.79.0.1/24 dev {name}")
    sh(f"ip -6 addr add fd00:79::1/64 dev {name} nodad")
    sh(f"ip link set {name} up")
    yield name, fd
    os.close(fd)


def save(ifname: str, path: Path, count: int) -> Path:
    assert rawdump.save(ifname, str(path), count, timeout=120) == count
    return path


def test_tun_records_are_raw_ip(mgcap: Module, tun: tuple[str, int], tmp_path: Path) -> None:
    name, fd = tun
    mgcap.load()
    with Mgcap() as m:
        state = m.start(name, snaplen=256).state
    assert state.link_type == 0xFFFE  # ARPHRD_NONE
    assert pcapng.link_type_of(state.link_type) == pcapng.LINKTYPE_RAW
    for i in range(7):
        os.write(fd, udp4("10.79.0.2", "10.79.0.1", 6000, b"v4 %d" % i))
    for i in range(5):
        os.write(fd, udp6("fd00:79::2", "fd00:79::1", 6006, b"v6 %d" % i))
    out = save(name, tmp_path / "tun.pcapng", 12)
    assert capinfos_count(out) == 12
    rows = tshark_fields(out, "frame.encap_type", "ip.dst", "ipv6.dst", "udp.dstport")
    # encapsulation 7 is Wireshark's raw IP; the writes ran on whichever CPU the
    # test was on, and one read takes each ring's records in turn, so the file's
    # order is by ring, not by write
    v4, v6 = ["7", "10.79.0.1", "", "6000"], ["7", "", "fd00:79::1", "6006"]
    assert sorted(rows) == sorted([v4] * 7 + [v6] * 5)
    assert run_mgctl(f"stop dev {name}").returncode == 0


@pytest.fixture
def ipip() -> Iterator[str]:
    """ipip0 (ARPHRD_TUNNEL, 10.81.0.2) in the initial netns, its peer in netns mgT,
    over a veth pair (10.80.0.2 - 10.80.0.1) with static neighbours."""
    ns = "mgT"
    sh(f"ip netns del {ns}", check=False)
    sh("ip link del vipip", check=False)
    sh("ip link del ipip0", check=False)
    sh(f"ip netns add {ns}")
    sh(f"ip link add vipip type veth peer name vipip-p netns {ns}")
    sysctl("net.ipv6.conf.vipip.disable_ipv6", "1")
    sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.vipip-p.disable_ipv6=1")
    sh("ip addr add 10.80.0.2/24 dev vipip")
    sh(f"ip -n {ns} addr add 10.80.0.1/24 dev vipip-p")
    sh("ip link set vipip up")
    sh(f"ip -n {ns} link set vipip-p up")
    mac, mac_p = (
        Path("/sys/class/net/vipip/address").read_text().strip(),
        sh(f"ip netns exec {ns} cat /sys/class/net/vipip-p/address").stdout.strip(),
    )
    sh(f"ip neigh replace 10.80.0.1 lladdr {mac_p} dev vipip nud permanent")
    sh(f"ip -n {ns} neigh replace 10.80.0.2 lladdr {mac} dev vipip-p nud permanent")
    sh("ip link add ipip0 type ipip local 10.80.0.2 remote 10.80.0.1")
    sh(f"ip -n {ns} link add ipip1 type ipip local 10.80.0.1 remote 10.80.0.2")
    sh("sysctl -qw net.ipv6.conf.ipip0.disable_ipv6=1", check=False)
    sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.ipip1.disable_ipv6=1", check=False)
    sh("ip addr add 10.81.0.2/24 dev ipip0")
    sh(f"ip -n {ns} addr add 10.81.0.1/24 dev ipip1")
    sh("ip link set ipip0 up")
    sh(f"ip -n {ns} link set ipip1 up")
    yield ns
    sh("ip link del ipip0", check=False)
    sh("ip link del vipip", check=False)
    sh(f"ip netns del {ns}", check=False)


def test_ipip_records_are_the_inner_packet(mgcap: Module, ipip: str, tmp_path: Path) -> None:
    """Encapsulated datagrams from the namespace: the records hold exactly the inner
    IPv4/UDP packets, not the outer Ethernet and IP headers."""
    mgcap.load()
    p = run_mgctl("start dev ipip0 snaplen 256")
    assert (p.returncode, p.stderr) == (0, "")
    with Mgcap() as m:
        assert m.show("ipip0").link_type == 768  # ARPHRD_TUNNEL
    with in_netns(ipip):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(9):
            tx.sendto(b"in %d" % i, ("10.81.0.2", 7001))
    finally:
        tx.close()
    out = save("ipip0", tmp_path / "ipip.pcapng", 9)
    assert capinfos_count(out) == 9
    rows = tshark_fields(out, "frame.encap_type", "ip.src", "ip.dst", "udp.dstport", "eth.type")
    assert rows == [["7", "10.81.0.1", "10.81.0.2", "7001", ""]] * 9
    assert run_mgctl("stop dev ipip0").returncode == 0


def test_device_mgcap_cannot_describe_is_refused(mgcap: Module) -> None:
    """An nlmon device (ARPHRD_NETLINK: netlink messages, no header a file could name)."""
    mgcap.load()
    sh("ip link del mgnl0", check=False)
    sh("ip link add mgnl0 type nlmon")
    try:
        p = run_mgctl("start dev mgnl0")
        assert (p.returncode, p.stdout) == (1, "")
        assert p.stderr == (
            "Error: mgcap: the device's link type is not supported: no capture file "
            "link type describes its frames.\n"
        )
        assert not Path("/dev/mgcap/mgnl0").exists()
    finally:
        sh("ip link del mgnl0", check=False)
