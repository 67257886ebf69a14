"""Records and PCAP-NG files on the host: round trips, and files checked by tshark/capinfos."""

import shutil
import subprocess
from pathlib import Path

import pytest

from mgctl import pcapng, uapi
from mgctl.record import Record, RecordError, build_record, iter_records

FRAME = bytes.fromhex(
    "ffffffffffff" "020000000001" "0800"  # Ethernet, broadcast
    "45000024000100004011f9c4c0000201c0000202"  # IPv4 192.0.2.1 -> 192.0.2.2, UDP
    "1f901f900010a1b2" "deadbeefcafef00d"  # UDP 8080 -> 8080, 8 bytes of data
)  # fmt: skip


def test_record_round_trip_and_size() -> None:
    rec = Record(interface_id=0, timestamp_ns=1_700_000_000_123_456_789, origlen=1514,
                 frame=bytes(range(96)))  # fmt: skip
    raw = build_record(rec)
    assert len(raw) == uapi.record_len(96) == 128
    assert list(iter_records(raw + raw)) == [rec, rec]


def test_padding_to_four_bytes() -> None:
    rec = Record(interface_id=3, timestamp_ns=5, origlen=61, frame=bytes(61))
    raw = build_record(rec)
    assert len(raw) == 28 + 64 + 4
    assert list(iter_records(raw)) == [rec]


@pytest.mark.parametrize("cut", [1, 27, 100, 127])
def test_truncated_or_corrupt_input_is_refused(cut: int) -> None:
    raw = build_record(Record(0, 0, 96, bytes(96)))
    with pytest.raises(RecordError, match=r"^(truncated record|bad block length) at offset 0$"):
        list(iter_records(raw[:-cut]))
    bad = bytearray(raw)
    bad[-4] ^= 0xFF
    with pytest.raises(RecordError):
        list(iter_records(bytes(bad)))


def test_options_are_padded() -> None:
    enc = pcapng.encode_options([(2, b"abc")])
    assert enc == b"\x02\x00\x03\x00abc\x00" + b"\x00\x00\x00\x00"


needs_tshark = pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")


@needs_tshark
def test_file_read_by_tshark_and_capinfos(tmp_path: Path) -> None:
    ts = 1_700_000_000_000_000_001
    recs = [Record(0, ts + i, len(FRAME), FRAME) for i in range(3)]
    recs.append(Record(1, ts + 10, len(FRAME), FRAME[:20]))
    path = tmp_path / "t.pcapng"
    ifaces = [pcapng.Interface("lo", snaplen=96, description="loopback"),
              pcapng.Interface("eth9", snaplen=20)]  # fmt: skip
    pcapng.write_file(str(path), ifaces, b"".join(build_record(r) for r in recs))

    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
         "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "udp.dstport"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    rows = [line.split("\t") for line in out]
    assert [r[0] for r in rows] == ["lo", "lo", "lo", "eth9"]
    assert rows[0][1] == "1700000000.000000001"  # nanoseconds kept
    assert rows[3][1] == "1700000000.000000011"
    assert [r[2] for r in rows] == [str(len(FRAME))] * 4
    assert [r[3] for r in rows] == [str(len(FRAME))] * 3 + ["20"]
    assert rows[0][4] == "8080"

    info = subprocess.run(["capinfos", "-M", str(path)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert "Number of packets:   4" in info
    assert "Number of interfaces in file: 2" in info
    assert "Capture application: mgcap" in info
