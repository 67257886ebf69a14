"""PCAP-NG section and interface blocks (draft-ietf-opsawg-pcapng), laid out with construct.

mgcap's records are ready Enhanced Packet Blocks, so a file is a Section Header
Block, one Interface Description Block per device, then records as they come.
Everything is written in host byte order, which the SHB's byte-order magic declares.
"""

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from construct import (
    Bytes,
    Const,
    GreedyRange,
    Int16un,
    Int32un,
    Int64sn,
    Int64un,
    Padding,
    Struct,
    this,
)

from mgctl import __version__
from mgctl.linktypes import _ARPHRD_TO_LINKTYPE as _ARPHRD_TO_LINKTYPE
from mgctl.linktypes import _LINK_TYPE_NAMES as _LINK_TYPE_NAMES
from mgctl.linktypes import LINKTYPE_ETHERNET as LINKTYPE_ETHERNET
from mgctl.linktypes import LINKTYPE_RAW as LINKTYPE_RAW
from mgctl.linktypes import UnknownLinkType as UnknownLinkType
from mgctl.linktypes import link_type_name as link_type_name
from mgctl.linktypes import link_type_of as link_type_of

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 1
ISB_TYPE = 5
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
IF_FILTER = 11
IF_OS = 12
IF_HARDWARE = 15
ISB_STARTTIME = 2
ISB_ENDTIME = 3
ISB_IFRECV = 4
ISB_IFDROP = 5
ISB_FILTERACCEPT = 6
ISB_OSDROP = 7
ISB_USRDELIV = 8


# if_filter: the first byte says what follows; 0 is a libpcap filter string
IF_FILTER_LIBPCAP = 0

Option = Struct(
    "code" / Int16un,
    "length" / Int16un,
    "value" / Bytes(this.length),
    Padding(lambda ctx: -ctx.length % 4),
)

Options = GreedyRange(Option)

SectionHeaderBody = Struct(
    "magic" / Const(BYTE_ORDER_MAGIC, Int32un),
    "major" / Const(1, Int16un),
    "minor" / Const(0, Int16un),
    "section_length" / Int64sn,
)

InterfaceDescriptionBody = Struct(
    "link_type" / Int16un,
    "reserved" / Const(0, Int16un),
    "snaplen" / Int32un,
)

InterfaceStatisticsBody = Struct(
    "interface_id" / Int32un,
    "ts_high" / Int32un,
    "ts_low" / Int32un,
)

# isb_starttime / isb_endtime: a timestamp as in EPBs, upper then lower 32 bits
Timestamp = Struct("high" / Int32un, "low" / Int32un)


def encode_options(options: Sequence[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    items = [{"code": c, "length": len(v), "value": v} for c, v in options]
    items.append({"code": OPT_ENDOFOPT, "length": 0, "value": b""})
    return bytes(Options.build(items))


def block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    head = bytes(Int32un.build(block_type)) + bytes(Int32un.build(total))
    return head + body + bytes(Int32un.build(total))


def section_header(application: str | None = None) -> bytes:
    uname = platform.uname()
    opts = [
        (SHB_HARDWARE, uname.machine.encode()),
        (SHB_OS, f"Linux {uname.release}".encode()),
        (SHB_USERAPPL, (application or f"mgcap {__version__}").encode()),
    ]
    body = bytes(SectionHeaderBody.build({"section_length": -1})) + encode_options(opts)
    return block(SHB_TYPE, body)


@dataclass(frozen=True)
class Interface:
    name: str
    link_type: int = LINKTYPE_ETHERNET
    snaplen: int = 0
    description: str | None = None
    hardware: str | None = None  # if_hardware: driver / NIC
    comment: str | None = None  # e.g. which clock stamps the packets
    filter: str | None = None  # if_filter: the capture filter's tcpdump expression


def interface_description(iface: Interface) -> bytes:
    opts = [(IF_NAME, iface.name.encode())]
    if iface.description:
        opts.append((IF_DESCRIPTION, iface.description.encode()))
    opts.append((IF_TSRESOL, bytes([9])))  # nanoseconds, like the records
    opts.append((IF_OS, f"Linux {platform.release()}".encode()))
    if iface.filter:
        opts.append((IF_FILTER, bytes([IF_FILTER_LIBPCAP]) + iface.filter.encode()))
    if iface.hardware:
        opts.append((IF_HARDWARE, iface.hardware.encode()))
    if iface.comment:
        opts.append((OPT_COMMENT, iface.comment.encode()))
    fixed = InterfaceDescriptionBody.build({"link_type": iface.link_type, "snaplen": iface.snaplen})
    body = bytes(fixed) + encode_options(opts)
    return block(IDB_TYPE, body)


@dataclass(frozen=True)
class InterfaceStatistics:
    """An Interface Statistics Block: counters since the capture started.

    mgcap's mapping (docs/mgdump.md): ifrecv = frames that reached mgcap's hook,
    filteraccept = those the capture filter accepted (all without a filter),
    ifdrop = frames the kernel ring had no room for, osdrop = records mgdump's own
    buffer had no room for, usrdeliv = packets written.  At the end of a capture
    filteraccept == usrdeliv + ifdrop + osdrop.  filteraccept None: not written.
    """

    interface_id: int
    timestamp_ns: int
    start_ns: int
    end_ns: int
    ifrecv: int
    ifdrop: int
    osdrop: int
    usrdeliv: int
    comment: str | None = None
    filteraccept: int | None = None


def _u64(v: int) -> bytes:
    return bytes(Int64un.build(v))


def _ts(ns: int) -> bytes:
    return bytes(Timestamp.build({"high": ns >> 32, "low": ns & 0xFFFFFFFF}))


def interface_statistics(st: InterfaceStatistics) -> bytes:
    opts = []
    if st.comment:
        opts.append((OPT_COMMENT, st.comment.encode()))
    opts += [
        (ISB_STARTTIME, _ts(st.start_ns)),
        (ISB_ENDTIME, _ts(st.end_ns)),
        (ISB_IFRECV, _u64(st.ifrecv)),
        (ISB_IFDROP, _u64(st.ifdrop)),
    ]
    if st.filteraccept is not None:
        opts.append((ISB_FILTERACCEPT, _u64(st.filteraccept)))
    opts += [
        (ISB_OSDROP, _u64(st.osdrop)),
        (ISB_USRDELIV, _u64(st.usrdeliv)),
    ]
    fixed = InterfaceStatisticsBody.build(
        {
            "interface_id": st.interface_id,
            "ts_high": st.timestamp_ns >> 32,
            "ts_low": st.timestamp_ns & 0xFFFFFFFF,
        }
    )
    return block(ISB_TYPE, bytes(fixed) + encode_options(opts))


def file_header(interfaces: Sequence[Interface], application: str | None = None) -> bytes:
    """SHB plus one IDB per interface: interface i gets PCAP-NG interface id i."""
    return section_header(application) + b"".join(interface_description(i) for i in interfaces)


def write_file(path: str, interfaces: Sequence[Interface], records: bytes) -> None:
    """Write a whole capture file: header, then the records as the kernel made them."""
    with open(path, "wb") as f:
        f.write(file_header(interfaces))
        f.write(records)
        f.flush()
        os.fsync(f.fileno())
