"""Capture on a veth pair between two namespaces: UDP counted exactly, mirror vs drop,
frames beyond the snaplen, GSO (nonlinear) skbs, VLAN tags put back."""

import socket
import threading
from pathlib import Path

from mgctl import uapi
from mgctl.record import Record, iter_records
from tests.vm.conftest import (
    Module,
    VethPair,
    capinfos_count,
    eventually,
    read_raw,
    read_records,
    traffic,
    tshark_fields,
    write_pcapng,
)
from tests.vm.traffic import pattern

N = 10_000


class UdpSink:
    """Counts datagrams arriving at addr:port in a thread."""

    def __init__(self, addr: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.sock.bind((addr, port))
        self.sock.settimeout(0.2)
        self.count = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                self.sock.recv(65535)
                self.count += 1
            except TimeoutError:
                continue

    def close(self) -> int:
        self.stop = True
        self.thread.join()
        self.sock.close()
        return self.count


def settled_delivery(
    sink: UdpSink, mgcap: Module, dev: str, seen: int, want: int, timeout: float = 60
) -> int:
    """Closes sink once every frame sent has reached it or cannot any more, and returns
    how many it received: mgcap has seen `seen` frames on dev in all (each one then
    was either consumed or passed on to the stack) and sink has `want`. The stack
    delivers after the sender returns (a backlog, then the socket's queue): a deadline,
    not a fixed wait; a frame beyond `want` that comes after this is not counted."""
    try:
        eventually(
            lambda: mgcap.stat(dev, "seen_packets") >= seen and sink.count >= want,
            timeout=timeout,
        )
    finally:
        count = sink.close()
    return count


def _udp_run(mgcap: Module, veth: VethPair, mode: str, tmp_path: Path) -> tuple[int, int]:
    mgcap.load(ifname=veth.dev, mode=mode)
    sink = UdpSink(veth.addr, 9999)
    try:
        traffic(f"udp --dst {veth.addr} --count {N} --size 32", ns=veth.ns)
    except BaseException:
        sink.close()  # its thread ends with the test
        raise
    # mirror passes every frame on to the socket, drop none
    delivered = settled_delivery(sink, mgcap, veth.dev, N, N if mode == "mirror" else 0)
    raw = read_raw(veth.dev)
    pcap = write_pcapng(tmp_path / f"{mode}.pcapng", veth.dev, raw)
    stats = mgcap.stats(veth.dev)
    assert stats["seen_packets"] == N
    assert stats["captured_packets"] == N
    assert stats["ring_full_drops"] == 0
    assert capinfos_count(pcap) == N
    rows = tshark_fields(pcap, "udp.dstport", "data.data", display_filter="udp.dstport == 9999")
    assert len(rows) == N
    # every datagram exactly once: the first 4 payload bytes are its sequence number
    seqs = sorted(int(r[1][:8], 16) for r in rows)
    assert seqs == list(range(N))
    return delivered, stats["consumed_packets"]


def test_udp_10000_mirror_all_captured_and_delivered(
    mgcap: Module, veth: VethPair, tmp_path: Path
) -> None:
    delivered, consumed = _udp_run(mgcap, veth, "mirror", tmp_path)
    assert delivered == N
    assert consumed == 0


def test_udp_10000_drop_all_captured_none_delivered(
    mgcap: Module, veth: VethPair, tmp_path: Path
) -> None:
    delivered, consumed = _udp_run(mgcap, veth, "drop", tmp_path)
    assert delivered == 0
    assert consumed == N


def test_frame_longer_than_snaplen(mgcap: Module, veth: VethPair, tmp_path: Path) -> None:
    mgcap.load(ifname=veth.dev, mode="drop")
    traffic(f"udp --dst {veth.addr} --count 3 --size 1000", ns=veth.ns)
    raw = read_raw(veth.dev)
    recs = list(iter_records(raw))
    assert [(r.caplen, r.origlen) for r in recs] == [(96, 14 + 20 + 8 + 1000)] * 3
    pcap = write_pcapng(tmp_path / "snap.pcapng", veth.dev, raw)
    rows = tshark_fields(pcap, "frame.len", "frame.cap_len", "ip.len")
    assert rows == [["1042", "96", "1028"]] * 3


def _tcp_payloads(recs: list[Record], port: int) -> tuple[int, list[tuple[int, bytes]]]:
    """(ISN, [(seq, payload)]) of the segments towards port, parsed from whole frames."""
    isn = None
    segs = []
    for r in recs:
        f = r.frame
        if int.from_bytes(f[12:14], "big") != 0x0800 or f[23] != 6:
            continue
        ihl = (f[14] & 0xF) * 4
        tcp = f[14 + ihl :]
        if int.from_bytes(tcp[2:4], "big") != port:
            continue
        seq = int.from_bytes(tcp[4:8], "big")
        flags = tcp[13]
        if flags & 0x02:
            isn = seq
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload:
            segs.append((seq, bytes(payload)))
    assert isn is not None
    return isn, segs


def test_gso_nonlinear_skb_copied_exactly(mgcap: Module, veth: VethPair) -> None:
    """TCP over veth arrives as GSO skbs of tens of KiB with paged data: with a full
    snaplen every payload byte must be the sender's byte. The largest snaplen
    (SNAPLEN_MAX, tcpdump's "whole frame") takes every frame whole, GSO ones too."""
    mgcap.load(ifname=veth.dev, snaplen=uapi.SNAPLEN_MAX, ring_size=16 << 20)
    srv = socket.create_server((veth.addr, 9998))
    got = bytearray()

    def serve() -> None:
        conn, _ = srv.accept()
        while chunk := conn.recv(1 << 16):
            got.extend(chunk)
        conn.sendall(b"k")
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    nbytes = 2 << 20
    try:
        traffic(f"tcp --dst {veth.addr} --bytes {nbytes}", ns=veth.ns)
        t.join(timeout=600)
        assert not t.is_alive(), "the TCP receiver did not finish"
    finally:
        if t.is_alive():  # the sender failed: wake the receiver from accept()
            srv.shutdown(socket.SHUT_RDWR)
            t.join(timeout=60)
        srv.close()
    assert len(got) == nbytes

    recs = read_records(veth.dev)
    isn, segs = _tcp_payloads(recs, 9998)
    assert max(len(p) for _, p in segs) > 1500, "no GSO skb seen"
    total = 0
    for seq, payload in segs:
        off = (seq - isn - 1) % (1 << 32)
        assert payload == pattern(len(payload), off)
        total += len(payload)
    assert total >= nbytes
    # How big TCP's GSO skbs grow depends on cwnd and the receiver's window (CI on 6.1 saw
    # 57986 bytes at most): over 32 KiB is many page fragments, which is what matters here.
    assert max(r.origlen for r in recs) > 32_768, "no multi-page GSO skb seen"
    for r in recs:
        assert r.caplen == r.origlen


def test_vlan_tag_put_back(mgcap: Module, veth: VethPair, tmp_path: Path) -> None:
    """The sender's veth offloads the 802.1Q tag into skb metadata; the capture shows it."""
    veth.ns_run(f"ip link add link {veth.peer} name {veth.peer}.100 type vlan id 100")
    veth.ns_run(f"sysctl -qw net.ipv6.conf.{veth.peer}/100.disable_ipv6=1")
    veth.ns_run(f"ip addr add 10.78.0.1/24 dev {veth.peer}.100")
    veth.ns_run(f"ip link set {veth.peer}.100 up")
    mac = veth.mac(veth.dev)
    veth.ns_run(f"ip neigh replace 10.78.0.2 lladdr {mac} dev {veth.peer}.100 nud permanent")
    mgcap.load(ifname=veth.dev, mode="drop")
    traffic("udp --dst 10.78.0.2 --count 5 --size 100", ns=veth.ns)
    raw = read_raw(veth.dev)
    pcap = write_pcapng(tmp_path / "vlan.pcapng", veth.dev, raw)
    rows = tshark_fields(pcap, "vlan.id", "eth.type", "vlan.etype", "ip.dst", "frame.len")
    assert rows == [["100", "0x8100", "0x0800", "10.78.0.2", str(14 + 4 + 20 + 8 + 100)]] * 5
