"""The ARPHRD -> LINKTYPE mapping of mgctl/pcapng.py: libpcap's values, and the same
device types as the kernel's list of what it captures (kernel/capture.c)."""

import re
from pathlib import Path

import pytest

from mgctl import pcapng

ROOT = Path(__file__).resolve().parents[2]
IF_ARP = Path("/usr/include/linux/if_arp.h")


def arphrd_numbers() -> dict[str, int]:
    if not IF_ARP.exists():
        pytest.skip(f"{IF_ARP} missing (linux-libc-dev)")
    found = re.findall(r"#define\s+(ARPHRD_\w+)\s+(0x[0-9a-fA-F]+|\d+)", IF_ARP.read_text())
    return {name: int(value, 0) for name, value in found}


def kernel_types() -> set[str]:
    src = (ROOT / "kernel" / "capture.c").read_text()
    body = re.search(r"static bool mgcap_link_type_ok\(.*?\n}\n", src, re.S)
    assert body, "mgcap_link_type_ok() not found"
    return set(re.findall(r"case (ARPHRD_\w+):", body.group(0)))


def test_python_and_kernel_accept_the_same_types() -> None:
    numbers = arphrd_numbers()
    accepted = {numbers[name] for name in kernel_types()}
    assert accepted == set(pcapng._ARPHRD_TO_LINKTYPE)


@pytest.mark.parametrize(
    ("arphrd", "linktype"),
    [
        ("ARPHRD_ETHER", pcapng.LINKTYPE_ETHERNET),
        ("ARPHRD_LOOPBACK", pcapng.LINKTYPE_ETHERNET),
        ("ARPHRD_NONE", pcapng.LINKTYPE_RAW),
        ("ARPHRD_TUNNEL", pcapng.LINKTYPE_RAW),
        ("ARPHRD_SIT", pcapng.LINKTYPE_RAW),
        ("ARPHRD_IPGRE", pcapng.LINKTYPE_RAW),
        ("ARPHRD_PPP", pcapng.LINKTYPE_RAW),
        ("ARPHRD_RAWIP", pcapng.LINKTYPE_RAW),
    ],
)
def test_mapping(arphrd: str, linktype: int) -> None:
    assert pcapng.link_type_of(arphrd_numbers()[arphrd]) == linktype


@pytest.mark.parametrize("arphrd", ["ARPHRD_CAN", "ARPHRD_INFINIBAND", "ARPHRD_NETLINK"])
def test_types_mgcap_cannot_describe(arphrd: str) -> None:
    number = arphrd_numbers()[arphrd]
    with pytest.raises(pcapng.UnknownLinkType, match=f"ARPHRD {number} is not supported"):
        pcapng.link_type_of(number)
