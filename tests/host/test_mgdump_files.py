"""mgdump's file side on the host: record counting, naming, rotation, statistics
blocks, and the files read back by an independent reader (python-pcapng) and tshark."""

import errno
import mmap
import os
import shutil
import subprocess
from pathlib import Path

import pcapng as independent  # python-pcapng, not mgctl.pcapng
import pytest

from mgctl import pcapng, record, uapi
from mgctl.dump.buffer import BlockPool, Chunk
from mgctl.dump.mapped import Handback
from mgctl.dump.naming import Naming, per_ring_name
from mgctl.dump.output import Output, OutputError
from mgctl.dump.writer import Writer
from mgctl.record import Record, build_record, iter_records

FRAME = bytes.fromhex(
    "ffffffffffff" "020000000001" "0800"
    "45000024000100004011f9c4c0000201c0000202"
    "1f901f900010a1b2" "deadbeefcafef00d"
)  # fmt: skip
TS = 1_700_000_000_000_000_000


def recs(n: int, caplen: int = len(FRAME), ifid: int = 0, start: int = 0) -> bytes:
    return b"".join(
        build_record(Record(ifid, TS + start + i, len(FRAME), FRAME[:caplen])) for i in range(n)
    )


def test_count_uniform_and_mixed() -> None:
    rl = uapi.record_len(len(FRAME))
    assert record.count(recs(100)) == 100
    assert record.uniform_length(recs(100)) == rl
    # uniform, but shorter than the snapshot length (64-byte frames, -s 0): still
    # the stride check, not a walk
    assert record.uniform_length(recs(50, caplen=20)) == uapi.record_len(20)
    assert record.count(recs(50, caplen=20)) == 50
    mixed = recs(3) + recs(2, caplen=20) + recs(4)
    assert record.uniform_length(mixed) is None
    assert record.count(mixed) == 9
    assert record.count(b"") == 0
    # records of 100, 60 and 140 bytes: 300 = 3 x 100, yet not uniform
    odd = b"".join(build_record(Record(0, TS, 200, bytes(c))) for c in (68, 28, 108))
    assert [uapi.record_len(c) for c in (68, 28, 108)] == [100, 60, 140]
    assert record.uniform_length(odd) is None and record.count(odd) == 3
    assert record.head(mixed, 4) == 3 * rl + uapi.record_len(20)
    assert record.head_bytes(mixed, 3 * rl + 5) == (3, 3 * rl)


def test_count_is_not_fooled_by_a_stride_match() -> None:
    # 2 short records take the room of one long one: the stride check must fail over
    rl = uapi.record_len(96)
    short = uapi.record_len((rl // 2) - 32)
    assert short * 2 == rl
    buf = recs(1, caplen=(rl // 2) - 32) * 2 + recs(1, caplen=min(96, len(FRAME)))
    assert record.count(buf) == 3


def test_set_interface_id() -> None:
    buf = bytearray(recs(3) + recs(2, caplen=7))
    record.set_interface_id(buf, 5)
    assert record.first_interface_id(bytes(buf)) == 5
    assert [r.interface_id for r in iter_records(bytes(buf))] == [5] * 5


def test_naming_like_tcpdump() -> None:
    assert Naming("o.pcapng").name(0, 0) == "o.pcapng"
    n = Naming("o.pcapng", size_rotation=True)
    assert [n.name(0, i) for i in range(3)] == ["o.pcapng", "o.pcapng1", "o.pcapng2"]
    w = Naming("o", size_rotation=True, max_files=12)
    assert [w.name(0, i) for i in (0, 1, 11, 12)] == ["o00", "o01", "o11", "o00"]
    t = Naming("c-%Y.pcapng", time_rotation=True)
    assert t.name(0, 0).startswith("c-19")
    assert per_ring_name("x.pcapng", 1) == "x.ring1.pcapng"
    assert per_ring_name("x", 0) == "x.ring0"


IFACES = [pcapng.Interface("lo", snaplen=96, description="loopback", comment="timestamps: sw"),
          pcapng.Interface("eth9", snaplen=65535)]  # fmt: skip


def isb_fn(recv: int = 10) -> list[pcapng.InterfaceStatistics]:
    return [
        pcapng.InterfaceStatistics(i, TS + 99, TS, TS + 99, recv, 2, 1, recv - 3, "c")
        for i in range(len(IFACES))
    ]


def read_back(path: Path) -> tuple[list[object], list[object], list[object]]:
    with open(path, "rb") as f:
        scanner = independent.FileScanner(f)
        blocks = list(scanner)
    idbs = [b for b in blocks if isinstance(b, independent.blocks.InterfaceDescription)]
    epbs = [b for b in blocks if isinstance(b, independent.blocks.EnhancedPacket)]
    isbs = [b for b in blocks if isinstance(b, independent.blocks.InterfaceStatistics)]
    return idbs, epbs, isbs


def test_output_round_trips_through_an_independent_reader(tmp_path: Path) -> None:
    path = tmp_path / "o.pcapng"
    out = Output(Naming(str(path)), IFACES, isb_fn)
    out.write_records(recs(5) + recs(2, ifid=1, start=5), 7)
    out.close()
    idbs, epbs, isbs = read_back(path)
    assert [i.options["if_name"] for i in idbs] == ["lo", "eth9"]  # type: ignore[attr-defined]
    assert idbs[0].options["if_tsresol"] == b"\x09"  # type: ignore[attr-defined]
    assert [e.interface_id for e in epbs] == [0] * 5 + [1] * 2  # type: ignore[attr-defined]
    assert epbs[0].packet_data == FRAME  # type: ignore[attr-defined]
    assert len(isbs) == 2
    o = isbs[0].options  # type: ignore[attr-defined]
    assert (o["isb_ifrecv"], o["isb_ifdrop"], o["isb_osdrop"], o["isb_usrdeliv"]) == (10, 2, 1, 7)


def test_size_rotation_cuts_at_record_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "r.pcapng"
    rl = uapi.record_len(len(FRAME))
    header = len(pcapng.file_header(IFACES))
    limit = header + 10 * rl + rl // 2  # room for 10 records and a half
    out = Output(Naming(str(path), size_rotation=True), IFACES, isb_fn, rotate_bytes=limit)
    out.write_records(recs(25), 25)
    out.close()
    assert out.files == [str(path), f"{path}1", f"{path}2"]
    counts = [len(read_back(Path(f))[1]) for f in out.files]
    assert counts == [10, 10, 5]
    assert all(len(read_back(Path(f))[2]) == 2 for f in out.files)


def test_ring_of_files_with_W(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    rl = uapi.record_len(len(FRAME))
    limit = len(pcapng.file_header(IFACES)) + 2 * rl
    out = Output(
        Naming(str(path), size_rotation=True, max_files=3), IFACES, isb_fn, rotate_bytes=limit
    )
    out.write_records(recs(9), 9)  # 5 files of 2, 2, 2, 2, 1 over 3 names
    out.close()
    names = sorted({Path(f).name for f in out.files})
    assert names == ["w.pcapng0", "w.pcapng1", "w.pcapng2"]
    assert len(read_back(tmp_path / "w.pcapng1")[1]) == 1  # the 5th file reused name 1


def test_write_error_leaves_a_valid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short write then ENOSPC (what a full filesystem does): the file ends at the
    last whole block, and the statistics written afterwards follow it directly."""
    path = tmp_path / "e.pcapng"
    out = Output(Naming(str(path)), IFACES, isb_fn)
    out.write_records(recs(3), 3)
    real_write = os.write
    calls = {"n": 0}

    def full_disk(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])  # a short write
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        out.write_records(recs(4), 4)
    monkeypatch.setattr(os, "write", real_write)
    out.close()
    _, epbs, isbs = read_back(path)
    assert len(epbs) == 3 and len(isbs) == 2


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    out = Output(Naming(str(tmp_path / "nodir" / "x.pcapng")), IFACES, isb_fn)
    with pytest.raises(OutputError, match="No such file or directory"):
        out.write_records(b"", 0)


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
def test_tshark_reads_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    out = Output(Naming(str(path)), IFACES, isb_fn)
    out.write_records(recs(4), 4)
    out.close()
    r = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert r.stdout.split() == ["lo"] * 4


def test_block_pool_hands_blocks_round() -> None:
    pool = BlockPool(3 * 4096, block_size=4096)
    blocks = [pool.take() for _ in range(3)]
    assert all(b is not None for b in blocks) and pool.take() is None  # all in use
    first = blocks[0]
    assert first is not None
    first[:5] = b"hello"
    pool.put(pool.block_chunk(7, first, 5, 1))
    ring_view = memoryview(b"in a ring")
    pool.put(Chunk(8, ring_view, 1, lambda: None, pooled=False))
    assert pool.used == 5  # only bytes in the pool's blocks
    got = pool.get(0.01)
    assert got is not None and got.source == 7 and bytes(got.data) == b"hello"
    got.done()
    assert pool.used == 0  # the ring's chunk waits, but takes nothing of the pool
    got = pool.get(0.01)
    assert got is not None and got.data is ring_view and pool.used == 0
    assert pool.take() is first  # the same memory again: nothing allocated per batch
    assert pool.get(0.01) is None and not pool.drained
    pool.close()
    assert pool.drained and pool.get(0.01) is None


def test_handback_gives_ring_bytes_back_in_order() -> None:
    released: list[int] = []
    hb = Handback(100, released.append)
    hb.hand(100, 200)  # in the writer's queue, unwritten
    hb.hand(200, 300)
    hb.taken(400)  # 300..400 copied into the buffer: 100..300 must stay
    assert released == [] and hb.busy
    hb.written(100, 200)
    assert released == [200]  # up to the next bytes in flight
    hb.hand(400, 500)
    hb.written(200, 300)
    assert released == [200, 400]  # past the copied bytes, not the ones in flight
    hb.written(400, 500)
    assert released == [200, 400, 500] and not hb.busy
    hb.taken(600)  # nothing in flight: given back at once
    assert released[-1] == 600


def test_pool_drop_pending_lets_go_of_unwritten_chunks() -> None:
    pool = BlockPool(2 * 4096, block_size=4096)
    released: list[int] = []
    hb = Handback(0, released.append)
    hb.hand(0, 64)
    pool.put(Chunk(0, memoryview(bytes(64)), 1, lambda: hb.written(0, 64), pooled=False))
    block = pool.take()
    assert block is not None
    pool.put(pool.block_chunk(1, block, 10, 1))
    pool.close()
    pool.drop_pending()
    assert released == [64] and pool.drained and pool.take() is not None


def test_writer_writes_from_a_mapping_and_stops_at_count(tmp_path: Path) -> None:
    """A chunk that is a view of mapped memory (as a ring's records are): written, cut
    at -c, handed back once; the writer never touches the view after handing it back."""
    data = recs(12)
    ring = mmap.mmap(-1, 1 << 16)
    ring[: len(data)] = data
    pool = BlockPool(2 << 20)
    path = tmp_path / "w.pcapng"
    out = Output(Naming(str(path)), IFACES, isb_fn)
    stops: list[str] = []
    done: list[int] = []
    w = Writer(pool, [out], lambda s: 0, lambda s: 0, 2, 10, stops.append)
    w.start()
    pool.put(Chunk(0, memoryview(ring)[: len(data)], 12, lambda: done.append(1), pooled=False))
    w.join(10)
    assert not w.is_alive() and w.error is None
    assert stops == ["count"] and done == [1] and w.written == 10
    assert w.written_bytes == len(data) // 12 * 10
    w.close_outputs()
    assert len(read_back(path)[1]) == 10
    ring.close()  # no view of it is left behind


def test_writer_error_keeps_no_view_of_the_ring() -> None:
    """A failed write (EPIPE: the output's reader went away after the file header)
    ends the writer with the error; nothing it keeps (the error, its traceback) holds
    a view of the ring, so the ring can be unmapped (a mapped ring keeps the module in
    use)."""
    data = recs(4)
    ring = mmap.mmap(-1, 1 << 16)
    ring[: len(data)] = data
    pool = BlockPool(2 << 20)
    r, wfd = os.pipe()
    try:
        out = Output(Naming(f"/proc/self/fd/{wfd}"), IFACES, isb_fn)
        out.write_records(b"", 0)  # the file header, as mgdump opens its outputs
        os.close(r)
        stops: list[str] = []
        w = Writer(pool, [out], lambda s: 0, lambda s: 0, 2, None, stops.append)
        w.start()
        pool.put(Chunk(0, memoryview(ring)[: len(data)], 4, lambda: None, pooled=False))
        w.join(10)
        assert stops == ["error"] and w.error is not None and w.error.code == errno.EPIPE
        ring.close()
    finally:
        os.close(wfd)
