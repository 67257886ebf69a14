"""Capture on lo: ping counted exactly, frames byte for byte against AF_PACKET."""

import socket
import subprocess
from pathlib import Path

from mgctl import uapi
from mgctl.record import build_record, iter_records
from tests.vm.conftest import (
    Module,
    capinfos_count,
    read_raw,
    sh,
    tshark_fields,
    write_pcapng,
)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def test_ping_lo_exact_count_and_bytes(mgcap: Module, tmp_path: Path) -> None:
    mgcap.load(ifname="lo")
    tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    tap.bind(("lo", 0))
    tap.settimeout(0.5)
    sh("ping -c 5 -i 0.2 -s 200 127.0.0.1")

    seen = []
    while True:
        try:
            frame, addr = tap.recvfrom(65535)
        except TimeoutError:
            break
        if addr[2] != PACKET_OUTGOING:
            seen.append(frame)
    tap.close()

    # an unbound read goes ring by ring: put the records in arrival order
    records = sorted(iter_records(read_raw("lo")), key=lambda r: r.timestamp_ns)
    # 5 echo requests and 5 replies, each received once on lo
    assert len(records) == 10
    assert len(seen) == 10
    for rec, frame in zip(records, seen, strict=True):
        assert rec.origlen == len(frame) == 14 + 20 + 8 + 200
        assert rec.caplen == uapi.SNAPLEN_DEFAULT
        assert rec.frame == frame[: uapi.SNAPLEN_DEFAULT]
        assert rec.interface_id == 0

    stats = mgcap.stats("lo")
    assert stats["seen_packets"] == stats["captured_packets"] == 10
    assert stats["seen_bytes"] == stats["captured_bytes"] == 10 * 242
    assert stats["ring_full_drops"] == stats["consumed_packets"] == stats["copy_errors"] == 0

    pcap = write_pcapng(tmp_path / "lo.pcapng", "lo", b"".join(build_record(r) for r in records))
    assert capinfos_count(pcap) == 10
    rows = tshark_fields(pcap, "icmp.type", "icmp.seq", "ip.src", "frame.len", "frame.cap_len")
    assert [r[0] for r in rows] == ["8", "0"] * 5
    assert [int(r[1]) for r in rows] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert {r[2] for r in rows} == {"127.0.0.1"}
    assert {(r[3], r[4]) for r in rows} == {("242", "96")}


def test_records_are_written_verbatim_into_pcapng(mgcap: Module, tmp_path: Path) -> None:
    """The bytes read from the device are the EPBs: a file is header + read() output."""
    mgcap.load(ifname="lo", snaplen=1500)
    sh("ping -c 3 -i 0.2 127.0.0.1")
    raw = read_raw("lo")
    pcap = write_pcapng(tmp_path / "raw.pcapng", "lo", raw, snaplen=1500)
    assert capinfos_count(pcap) == 6
    rows = tshark_fields(pcap, "frame.len", "frame.cap_len", "frame.time_epoch")
    assert all(r[0] == r[1] == "98" for r in rows)
    # (records of different rings are not in time order in an unbound read)
    times = sorted(float(r[2]) for r in rows)
    date = subprocess.run(["date", "+%s"], capture_output=True, text=True, check=True)
    assert abs(times[-1] - int(date.stdout)) < 60
