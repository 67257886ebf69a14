"""Link types: the PCAP-NG LINKTYPE_* of a device's frames, and libpcap's names of them.

Apart from mgctl.pcapng (which re-exports all of it) so that what needs only these
numbers and names (the extcap's interface list, a filter's link type) starts without
construct.
"""

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

# ARPHRD_* of the capturing device -> LINKTYPE_* of its records, as libpcap's
# map_arphrd_to_dlt() has them for a capture without cooked headers. The kernel
# starts capture on these types only (mgcap_link_type_ok() in kernel/capture.c)
# and refuses the others: a record begins at the Ethernet header, or, on a
# device without a link-layer header, at the IPv4/IPv6 header (raw IP).
_ARPHRD_TO_LINKTYPE = {
    1: LINKTYPE_ETHERNET,  # ARPHRD_ETHER
    772: LINKTYPE_ETHERNET,  # ARPHRD_LOOPBACK: lo carries Ethernet headers
    0xFFFE: LINKTYPE_RAW,  # ARPHRD_NONE (tun, wireguard)
    519: LINKTYPE_RAW,  # ARPHRD_RAWIP (rmnet, qmi_wwan)
    512: LINKTYPE_RAW,  # ARPHRD_PPP: the PPP header is gone at receive
    768: LINKTYPE_RAW,  # ARPHRD_TUNNEL (ipip)
    769: LINKTYPE_RAW,  # ARPHRD_TUNNEL6 (ip6tnl)
    776: LINKTYPE_RAW,  # ARPHRD_SIT
    778: LINKTYPE_RAW,  # ARPHRD_IPGRE (with a broadcast address: outer IP + GRE first)
    823: LINKTYPE_RAW,  # ARPHRD_IP6GRE (likewise)
}


class UnknownLinkType(ValueError):
    """A device type whose frames no PCAP-NG link type describes (mgcap refuses it)."""

    def __init__(self, arphrd: int) -> None:
        super().__init__(
            f"link type ARPHRD {arphrd} is not supported: no capture file link type "
            "describes its frames"
        )
        self.arphrd = arphrd


def link_type_of(arphrd: int) -> int:
    """The PCAP-NG link type of frames captured on a device of type arphrd.
    UnknownLinkType for a type the kernel refuses to capture (so never for a
    device that captures)."""
    try:
        return _ARPHRD_TO_LINKTYPE[arphrd]
    except KeyError:
        raise UnknownLinkType(arphrd) from None


# libpcap's name and description of every link type its Linux ARPHRD mapping can
# give (pcap_datalink_val_to_name / _to_description), by LINKTYPE_* number: what
# tcpdump's "listening on IF, link-type NAME (DESCRIPTION)" line shows. Keyed by
# LINKTYPE_*, the number in files: DLT_RAW (12 on Linux) is LINKTYPE_RAW here.
_LINK_TYPE_NAMES = {
    0: ("NULL", "BSD loopback"),
    LINKTYPE_ETHERNET: ("EN10MB", "Ethernet"),
    6: ("IEEE802", "Token ring"),
    8: ("SLIP", "SLIP"),
    9: ("PPP", "PPP"),
    10: ("FDDI", "FDDI"),
    LINKTYPE_RAW: ("RAW", "Raw IP"),
    104: ("C_HDLC", "Cisco HDLC"),
    105: ("IEEE802_11", "802.11"),
    107: ("FRELAY", "Frame Relay"),
    113: ("LINUX_SLL", "Linux cooked v1"),
    114: ("LTALK", "Localtalk"),
    119: ("PRISM_HEADER", "802.11 plus Prism header"),
    122: ("IP_OVER_FC", "RFC 2625 IP-over-Fibre Channel"),
    127: ("IEEE802_11_RADIO", "802.11 plus radiotap header"),
    129: ("ARCNET_LINUX", "Linux ARCNET"),
    143: ("DOCSIS", "DOCSIS"),
    144: ("LINUX_IRDA", "Linux IrDA"),
    163: ("IEEE802_11_RADIO_AVS", "802.11 plus AVS radio information header"),
    177: ("LINUX_LAPD", "Linux vISDN LAPD"),
    202: ("AX25_KISS", "AX.25 with KISS header"),
    224: ("FC_2", "Fibre Channel FC-2"),
    225: ("FC_2_WITH_FRAME_DELIMS", "Fibre Channel FC-2 with frame delimiters"),
    227: ("CAN_SOCKETCAN", "CAN-bus with SocketCAN headers"),
    228: ("IPV4", "Raw IPv4"),
    229: ("IPV6", "Raw IPv6"),
    230: ("IEEE802_15_4_NOFCS", "IEEE 802.15.4 without FCS"),
    253: ("NETLINK", "Linux netlink"),
    271: ("VSOCK", "Linux vsock"),
    276: ("LINUX_SLL2", "Linux cooked v2"),
    281: ("DSA_TAG_BRCM", "Broadcom tag"),
    282: ("DSA_TAG_BRCM_PREPEND", "Broadcom tag (prepended)"),
    284: ("DSA_TAG_DSA", "Marvell DSA"),
    285: ("DSA_TAG_EDSA", "Marvell EDSA"),
}


def link_type_name(linktype: int) -> str:
    """libpcap's name and description of a LINKTYPE_*, as tcpdump prints them:
    "EN10MB (Ethernet)", "RAW (Raw IP)"; a type libpcap has no name for is its
    number, as tcpdump prints it ("link-type 2")."""
    known = _LINK_TYPE_NAMES.get(linktype)
    if known is None:
        return str(linktype)
    return f"{known[0]} ({known[1]})"
