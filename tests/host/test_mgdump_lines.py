"""mgdump without -w: the one-line summaries against tcpdump -nn -S reading the same
frames, VLAN tags, truncated headers, raw IP, and a closed pipe."""

import errno
import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from mgctl import pcapng
from mgctl.dump import decode, lines
from mgctl.record import Record, build_record

MAC_DST, MAC_SRC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")


def eth(etype: int, payload: bytes, vlans: tuple[tuple[int, int], ...] = ()) -> bytes:
    tags = b"".join(struct.pack("!HH", 0x8100, (prio << 13) | vid) for vid, prio in vlans)
    return MAC_DST + MAC_SRC + tags + struct.pack("!H", etype) + payload


def ip4(proto: int, payload: bytes, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    return head + payload


def ip6(nxt: int, payload: bytes) -> bytes:
    addrs = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    addrs += socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    return struct.pack("!IHBB", 0x60000000, len(payload), nxt, 64) + addrs + payload


def udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 512, 0, 0) + data


def icmp(kind: int, ident: int, seq: int, data: bytes) -> bytes:
    return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data


def arp(op: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + socket.inet_aton(spa)
    return body + tha + socket.inet_aton(tpa) + bytes(18)  # padded to 60 bytes


# frames tcpdump prints on one line with nothing beyond what mgdump decodes
LIKE_TCPDUMP = [
    eth(0x0800, ip4(1, icmp(8, 5, 1, bytes(56)))),
    eth(0x0800, ip4(1, icmp(0, 5, 1, bytes(56)))),
    eth(0x0800, ip4(17, udp(5000, 9999, bytes(100)))),
    eth(0x0800, ip4(6, tcp(40000, 7000, 1000, 0, 0x02))),
    eth(0x0800, ip4(6, tcp(7000, 40000, 5000, 1001, 0x12))),
    eth(0x0800, ip4(6, tcp(40000, 7000, 1001, 5001, 0x18, b"hello world"))),
    eth(0x0800, ip4(6, tcp(40000, 7000, 1012, 5001, 0x11))),
    eth(0x0800, ip4(6, tcp(40000, 7000, 1012, 0, 0x04))),
    eth(0x0806, arp(1, MAC_SRC, "10.0.0.1", bytes(6), "10.0.0.2")),
    eth(0x0806, arp(2, MAC_DST, "10.0.0.2", MAC_SRC, "10.0.0.1")),
    eth(0x86DD, ip6(17, udp(5000, 5001, bytes(20)))),
    eth(0x86DD, ip6(58, icmp(128, 7, 3, bytes(16)))),
    eth(0x86DD, ip6(6, tcp(1, 2, 3, 4, 0x10))),
]
TS = 1_700_000_000_123_456_789


@pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump not installed")
def test_lines_are_tcpdumps(tmp_path: Path) -> None:
    path = tmp_path / "f.pcapng"
    recs = [Record(0, TS + i * 1000, len(f), f) for i, f in enumerate(LIKE_TCPDUMP)]
    pcapng.write_file(str(path), [pcapng.Interface("lo")], b"".join(map(build_record, recs)))
    theirs = subprocess.run(
        ["tcpdump", "-nn", "-S", "-r", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.splitlines()  # fmt: skip
    ours = [
        lines.line("lo", pcapng.LINKTYPE_ETHERNET, r.timestamp_ns, r.origlen, r.frame) for r in recs
    ]
    assert len(theirs) == len(ours)
    for t, o, frame in zip(theirs, ours, LIKE_TCPDUMP, strict=True):
        clock, summary = t.split(" ", 1)
        assert o == f"{clock} lo In length {len(frame)}: {summary}\n"


def test_vlan_tags_as_tcpdump_e_names_them() -> None:
    frame = eth(0x0800, ip4(17, udp(1, 2, bytes(10))), vlans=((100, 3), (200, 0)))
    assert decode.summary(frame) == (
        "vlan 100, p 3, ethertype 802.1Q (0x8100), vlan 200, p 0, ethertype IPv4 (0x0800), "
        "IP 10.0.0.1.1 > 10.0.0.2.2: UDP, length 10"
    )


def test_other_frames_and_truncation() -> None:
    assert decode.summary(eth(0x88B5, bytes(46))) == (
        "02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype Unknown (0x88b5), length 60"
    )
    assert decode.summary(eth(0x0800, ip4(253, bytes(20)))) == (
        "IP 10.0.0.1 > 10.0.0.2: ip-proto-253 20"
    )
    full = eth(0x0800, ip4(6, tcp(1, 2, 3, 4, 0x10)))
    assert decode.summary(full[:40], origlen=len(full)) == "IP 10.0.0.1.1 > 10.0.0.2.2: [|tcp]"
    assert decode.summary(full[:20], origlen=len(full)) == "[|ip]"
    assert decode.summary(b"\x02") == "[|ether]"
    raw = ip4(17, udp(53, 1053, bytes(4)))
    assert (
        decode.summary(raw, pcapng.LINKTYPE_RAW) == "IP 10.0.0.1.53 > 10.0.0.2.1053: UDP, length 4"
    )
    assert decode.summary(b"\x01\x02", 147) == "link-type 147, length 2"


def test_line_time_device_length() -> None:
    frame = LIKE_TCPDUMP[0]
    got = lines.line("eth1", pcapng.LINKTYPE_ETHERNET, TS, 1514, frame[:64])
    clock = time.strftime("%H:%M:%S", time.localtime(TS // 10**9))
    assert got.startswith(f"{clock}.123456 eth1 In length 1514: IP 10.0.0.1 > 10.0.0.2: ")


def test_a_closed_pipe_is_the_end_not_an_error() -> None:
    ifaces = [pcapng.Interface("lo"), pcapng.Interface("tun0", link_type=pcapng.LINKTYPE_RAW)]
    r, w = os.pipe()
    out = lines.LineOutput(ifaces, lambda: [], fd=w)
    raw = ip4(1, icmp(8, 1, 1, b""))
    out.write_records(build_record(Record(1, TS, len(raw), raw)), 1)
    assert (
        os.read(r, 4096)
        .decode()
        .endswith(
            "tun0 In length 28: IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 8\n"
        )
    )
    os.close(r)
    with pytest.raises(lines.OutputClosed) as e:
        out.write_records(build_record(Record(0, TS, 60, bytes(60))), 1)
    assert e.value.code == errno.EPIPE
    out.close()
    os.close(w)
