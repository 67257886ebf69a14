"""A one-line summary of a frame, in tcpdump's words (`tcpdump -nn -S`).

Ethernet with VLAN tags, ARP, IPv4, IPv6, TCP, UDP, ICMP and ICMPv6 echo are
decoded, as tcpdump prints them; anything else is named by its EtherType or IP
protocol number. A header the snapshot cut short ends the line with tcpdump's
"[|proto]". Frames of devices without a link header (raw IP) start at the IP
header. Nothing here trusts the frame: every read is bounds-checked.
"""

import ipaddress
import struct

from mgctl import pcapng

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
VLAN_TPIDS = {0x8100: "802.1Q", 0x88A8: "802.1Q-QinQ", 0x9100: "802.1Q-9100"}
ETHERTYPE_NAMES = {ETH_P_IP: "IPv4", ETH_P_ARP: "ARP", ETH_P_IPV6: "IPv6", **VLAN_TPIDS}

TCP_FLAGS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x20, "U"), (0x40, "E"),
             (0x80, "W"))  # fmt: skip
ICMP_ECHO = {0: "echo reply", 8: "echo request"}
ICMP6_ECHO = {128: "echo request", 129: "echo reply"}
ICMP_NAMES = {3: "unreachable", 11: "time exceeded", 5: "redirect"}


class Truncated(Exception):
    """The snapshot ends inside a header: what=tcpdump's name for it."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _need(frame: bytes, end: int, what: str) -> None:
    if len(frame) < end:
        raise Truncated(what)


def summary(
    frame: bytes, link_type: int = pcapng.LINKTYPE_ETHERNET, origlen: int | None = None
) -> str:
    """The frame (its first bytes; origlen: its length on the wire) in one line, as
    tcpdump -nn -S prints it after the timestamp, VLAN tags as tcpdump -e shows them."""
    parts: list[str] = []
    wire = len(frame) if origlen is None else origlen
    try:
        if link_type == pcapng.LINKTYPE_RAW:
            _raw_ip(frame, 0, parts)
        elif link_type == pcapng.LINKTYPE_ETHERNET:
            _ethernet(frame, wire, parts)
        else:
            parts.append(f"link-type {pcapng.link_type_name(link_type)}, length {wire}")
    except Truncated as t:
        parts.append(f"[|{t.what}]")
    return "".join(parts)


def _ethernet(frame: bytes, wire: int, parts: list[str]) -> None:
    _need(frame, 14, "ether")
    off = 12
    (etype,) = struct.unpack_from("!H", frame, off)
    while etype in VLAN_TPIDS:
        _need(frame, off + 6, "vlan")
        tci, etype = struct.unpack_from("!HH", frame, off + 2)
        parts.append(
            f"vlan {tci & 0xFFF}, p {tci >> 13}, "
            + ("DEI, " if tci & 0x1000 else "")
            + f"ethertype {_ethertype(etype)}, "
        )
        off += 4
    off += 2
    if etype == ETH_P_IP:
        _ipv4(frame, off, parts)
    elif etype == ETH_P_IPV6:
        _ipv6(frame, off, parts)
    elif etype == ETH_P_ARP:
        _arp(frame, off, wire - off, parts)
    else:
        src, dst = frame[6:12].hex(":"), frame[0:6].hex(":")
        what = f"802.3, length {etype}" if etype < 0x0600 else f"ethertype {_ethertype(etype)}"
        parts.append(f"{src} > {dst}, {what}, length {wire}")


def _ethertype(etype: int) -> str:
    name = ETHERTYPE_NAMES.get(etype, "Unknown")
    return f"{name} (0x{etype:04x})"


def _raw_ip(frame: bytes, off: int, parts: list[str]) -> None:
    _need(frame, off + 1, "ip")
    version = frame[off] >> 4
    if version == 4:
        _ipv4(frame, off, parts)
    elif version == 6:
        _ipv6(frame, off, parts)
    else:
        parts.append(f"IP{version}")


def _arp(frame: bytes, off: int, length: int, parts: list[str]) -> None:
    _need(frame, off + 8, "arp")
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, off)
    body = 8 + 2 * hlen + 2 * plen
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        parts.append(f"ARP, hardware type {htype}, opcode {op}, length {length}")
        return
    _need(frame, off + body, "arp")
    sha = frame[off + 8 : off + 14]
    spa = ipaddress.IPv4Address(frame[off + 14 : off + 18])
    tpa = ipaddress.IPv4Address(frame[off + 24 : off + 28])
    if op == 1:
        parts.append(f"ARP, Request who-has {tpa} tell {spa}, length {length}")
    elif op == 2:
        parts.append(f"ARP, Reply {spa} is-at {sha.hex(':')}, length {length}")
    else:
        parts.append(f"ARP, opcode {op}, length {length}")


def _ipv4(frame: bytes, off: int, parts: list[str]) -> None:
    _need(frame, off + 20, "ip")
    vihl, total, frag, proto = struct.unpack_from("!BxHxxHxB", frame, off)
    ihl = (vihl & 0xF) * 4
    src = ipaddress.IPv4Address(frame[off + 12 : off + 16])
    dst = ipaddress.IPv4Address(frame[off + 16 : off + 20])
    payload = total - ihl
    if frag & 0x1FFF:  # not the first fragment: no transport header here
        parts.append(f"IP {src} > {dst}: ip-proto-{proto}")
        return
    _transport(frame, off + ihl, proto, payload, "IP", str(src), str(dst), parts)


def _ipv6(frame: bytes, off: int, parts: list[str]) -> None:
    _need(frame, off + 40, "ip6")
    plen, nxt = struct.unpack_from("!HB", frame, off + 4)
    src = ipaddress.IPv6Address(frame[off + 8 : off + 24])
    dst = ipaddress.IPv6Address(frame[off + 24 : off + 40])
    _transport(frame, off + 40, nxt, plen, "IP6", str(src), str(dst), parts)


def _transport(
    frame: bytes, off: int, proto: int, length: int, ip: str, src: str, dst: str, parts: list[str]
) -> None:
    if proto == 6:
        _tcp(frame, off, length, ip, src, dst, parts)
    elif proto == 17:
        _need(frame, off + 8, "udp")
        sport, dport, ulen = struct.unpack_from("!HHH", frame, off)
        parts.append(f"{ip} {src}.{sport} > {dst}.{dport}: UDP, length {ulen - 8}")
    elif proto == 1 and ip == "IP":
        _icmp(frame, off, length, src, dst, parts)
    elif proto == 58 and ip == "IP6":
        _icmp6(frame, off, length, src, dst, parts)
    else:
        parts.append(f"{ip} {src} > {dst}: ip-proto-{proto} {length}")


def _tcp(
    frame: bytes, off: int, length: int, ip: str, src: str, dst: str, parts: list[str]
) -> None:
    parts.append(f"{ip} {src}")
    _need(frame, off + 4, "tcp")
    sport, dport = struct.unpack_from("!HH", frame, off)
    parts[-1] = f"{ip} {src}.{sport} > {dst}.{dport}: "
    _need(frame, off + 20, "tcp")
    seq, ack, doff, flags, win, _, urg = struct.unpack_from("!IIBBHHH", frame, off + 4)
    hlen = (doff >> 4) * 4
    data = length - hlen
    names = "".join(n for bit, n in TCP_FLAGS if flags & bit)
    if flags & 0x10:
        names += "."
    line = f"Flags [{names or 'none'}]"
    if data > 0 or flags & 0x07:
        line += f", seq {seq}" + (f":{seq + data}" if data > 0 else "")
    if flags & 0x10:
        line += f", ack {ack}"
    line += f", win {win}"
    if flags & 0x20:
        line += f", urg {urg}"
    if hlen > 20:
        line += ", options [...]"
    parts.append(f"{line}, length {data}")


def _icmp(frame: bytes, off: int, length: int, src: str, dst: str, parts: list[str]) -> None:
    parts.append(f"IP {src} > {dst}: ")
    _need(frame, off + 8, "icmp")
    kind, _code, _, ident, seq = struct.unpack_from("!BBHHH", frame, off)
    if kind in ICMP_ECHO:
        what = f"ICMP {ICMP_ECHO[kind]}, id {ident}, seq {seq}"
    else:
        what = f"ICMP {ICMP_NAMES.get(kind, f'type-#{kind}')}"
    parts.append(f"{what}, length {length}")


def _icmp6(frame: bytes, off: int, length: int, src: str, dst: str, parts: list[str]) -> None:
    parts.append(f"IP6 {src} > {dst}: ")
    _need(frame, off + 8, "icmp6")
    kind, _code, _, ident, seq = struct.unpack_from("!BBHHH", frame, off)
    if kind in ICMP6_ECHO:
        parts.append(f"ICMP6, {ICMP6_ECHO[kind]}, id {ident}, seq {seq}, length {length}")
    else:
        parts.append(f"ICMP6, type {kind}, length {length}")
