"""Count the packets of a capture file written during a benchmark run, fast.

Every frame of a run has the same length, so every packet record has the same size:
the count is arithmetic on the file size once the header and the trailer (PCAP-NG
blocks after the last packet, e.g. dumpcap's statistics) are known.  No walk over
hundreds of thousands of records, which would take long under TCG.
"""

import os
import struct
from typing import BinaryIO

PCAP_MAGICS = {0xA1B2C3D4, 0xA1B23C4D}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_PACKET_BLOCKS = {3, 6}  # simple and enhanced packet blocks
PCAP_HEADER_LEN = 24
PCAP_RECORD_HEADER_LEN = 16


class BadCapture(Exception):
    pass


def count_packets(path: str) -> int:
    """Packets in a pcap or PCAP-NG file whose packet records all have one size."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4:
            raise BadCapture(f"{path}: truncated")
        magic = struct.unpack("<I", head)[0]
        if magic in PCAP_MAGICS or struct.unpack(">I", head)[0] in PCAP_MAGICS:
            return _count_pcap(f, path, size, "<" if magic in PCAP_MAGICS else ">")
        if magic == PCAPNG_SHB:
            return _count_pcapng(f, path, size)
        # a raw run of EPB records (a reader that writes no file header)
        if magic == 6:
            return _count_blocks(f, path, 0, size, "<")
    raise BadCapture(f"{path}: not a pcap or PCAP-NG file")


def _count_pcap(f: BinaryIO, path: str, size: int, order: str) -> int:
    if size == PCAP_HEADER_LEN:
        return 0
    f.seek(PCAP_HEADER_LEN + 8)
    caplen: int = struct.unpack(order + "I", f.read(4))[0]
    rec = PCAP_RECORD_HEADER_LEN + caplen
    n, rest = divmod(size - PCAP_HEADER_LEN, rec)
    if rest:
        raise BadCapture(f"{path}: records of different sizes or a truncated record")
    return n


def _count_pcapng(f: BinaryIO, path: str, size: int) -> int:
    f.seek(8)
    bom = f.read(4)
    order = "<" if struct.unpack("<I", bom)[0] == 0x1A2B3C4D else ">"
    # walk the blocks before the first packet
    pos = 0
    while pos < size:
        btype, blen = _block_at(f, pos, order)
        if btype in PCAPNG_PACKET_BLOCKS:
            break
        pos += blen
    return _count_blocks(f, path, pos, size, order)


def _count_blocks(f: BinaryIO, path: str, start: int, size: int, order: str) -> int:
    if start >= size:
        return 0
    _btype, rec = _block_at(f, start, order)
    # walk back over the blocks after the last packet (each block ends with its length)
    end = size
    while end > start:
        f.seek(end - 4)
        blen = struct.unpack(order + "I", f.read(4))[0]
        btype, _ = _block_at(f, end - blen, order)
        if btype in PCAPNG_PACKET_BLOCKS:
            break
        end -= blen
    n, rest = divmod(end - start, rec)
    if rest:
        raise BadCapture(f"{path}: packet blocks of different sizes")
    return n


def _block_at(f: BinaryIO, pos: int, order: str) -> tuple[int, int]:
    f.seek(pos)
    data = f.read(8)
    if len(data) < 8:
        raise BadCapture(f"truncated block at {pos}")
    btype, blen = struct.unpack(order + "II", data)
    if blen < 12 or blen % 4:
        raise BadCapture(f"bad block length {blen} at {pos}")
    return btype, blen
