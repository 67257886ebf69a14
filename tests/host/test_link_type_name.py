"""mgctl.pcapng.link_type_name against the system's libpcap: the names and
descriptions tcpdump's "listening on" line would show."""

import ctypes
import ctypes.util

import pytest

from mgctl import pcapng
from mgctl.pcapng import _LINK_TYPE_NAMES

# LINKTYPE_* (in files) -> DLT_* (libpcap's API on Linux), where they differ
DLT_OF = {pcapng.LINKTYPE_RAW: 12}


def libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    if name is None:
        pytest.skip("libpcap not installed")
    lib = ctypes.CDLL(name)
    lib.pcap_datalink_val_to_name.restype = ctypes.c_char_p
    lib.pcap_datalink_val_to_description.restype = ctypes.c_char_p
    return lib


@pytest.mark.parametrize("linktype", sorted(_LINK_TYPE_NAMES))
def test_names_are_libpcaps(linktype: int) -> None:
    lib = libpcap()
    dlt = DLT_OF.get(linktype, linktype)
    name = lib.pcap_datalink_val_to_name(dlt).decode()
    description = lib.pcap_datalink_val_to_description(dlt).decode()
    assert pcapng.link_type_name(linktype) == f"{name} ({description})"


def test_examples_and_unknown() -> None:
    assert pcapng.link_type_name(pcapng.LINKTYPE_ETHERNET) == "EN10MB (Ethernet)"
    assert pcapng.link_type_name(pcapng.LINKTYPE_RAW) == "RAW (Raw IP)"
    assert pcapng.link_type_name(2) == "2"  # tcpdump: "link-type 2"
