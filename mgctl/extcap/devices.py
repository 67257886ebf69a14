"""The devices mgcap can capture, as Wireshark lists them: every net device of the
caller's network namespace, its link type, and whether it captures already.

Nothing here talks netlink (pyroute2 costs seconds to import on a slow machine, and
Wireshark asks at every start): the devices come from if_nameindex() (netlink in
libc, so the caller's namespace), the ARPHRD type from SIOCGIFHWADDR, and whether
a device captures from the module's sysfs class, /sys/class/mgcap/<name>, named
<ifname> in the initial namespace and netns-<inode>:<ifname> in another.
"""

import contextlib
import fcntl
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from mgctl import linktypes

PREFIX = "mgcap:"
SIOCGIFHWADDR = 0x8927
IFNAMSIZ = 16
SYSFS_CLASS = Path("/sys/class/mgcap")


# libpcap's names of the link types mgcap writes (DLT name, description)
class UnknownInterface(LookupError):
    """An interface Wireshark named that is not (or no longer) one of ours."""


@dataclass(frozen=True)
class Capture:
    """A capture found running on the device (from sysfs)."""

    mode: str
    snaplen: int
    filter: str  # "" without a filter


@dataclass(frozen=True)
class Device:
    ifname: str
    link_type: int
    capture: Capture | None

    @property
    def value(self) -> str:
        return f"{PREFIX}{self.ifname}"

    @property
    def display(self) -> str:
        if self.capture is None:
            return f"mgcap: {self.ifname}"
        c = self.capture
        more = f", capture filter {c.filter}" if c.filter else ""
        return f"mgcap: {self.ifname}, capturing already ({c.mode}, snaplen {c.snaplen}{more})"


def ifname_of(value: str) -> str:
    """mgcap:IF -> IF (UnknownInterface for anything else)."""
    if not value.startswith(PREFIX) or len(value) == len(PREFIX):
        raise UnknownInterface(f'"{value}" is not an mgcap interface (mgcap:IF)')
    return value[len(PREFIX) :]


def arphrd(ifname: str) -> int:
    """The device's ARPHRD_* type (OSError if there is no such device)."""
    if not 0 < len(ifname.encode()) < IFNAMSIZ:
        raise OSError(19, os.strerror(19), ifname)  # ENODEV
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack(f"{IFNAMSIZ}s16x", ifname.encode())
        reply = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, req)
    family: int = struct.unpack_from("H", reply, IFNAMSIZ)[0]
    return family


def link_type(ifname: str) -> int | None:
    """LINKTYPE_* of the device's frames; None where mgcap's mapping refuses it."""
    try:
        lt = linktypes.link_type_of(arphrd(ifname))
    except (ValueError, LookupError):  # a type that cannot be described
        return None
    return None if lt is None else int(lt)


def link_type_name(lt: int) -> tuple[str, str]:
    """libpcap's DLT name and description of a link type."""
    text = linktypes.link_type_name(lt)  # "EN10MB (Ethernet)", or the bare number
    name, _, rest = text.partition(" (")
    if not rest:
        return f"LINKTYPE_{lt}", f"link type {lt}"
    return name, rest.removesuffix(")")


def _netns_inode(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _sysfs_name(ifname: str) -> str:
    own = _netns_inode("self")
    init = _netns_inode("1")
    if own is None or init is None or own == init:
        return ifname
    return f"netns-{own}:{ifname}"


def running_capture(ifname: str) -> Capture | None:
    """The capture running on ifname in the caller's namespace, None if none."""
    d = SYSFS_CLASS / _sysfs_name(ifname)
    try:
        return Capture(
            mode=(d / "mode").read_text().strip(),
            snaplen=int((d / "snaplen").read_text()),
            filter=(d / "filter").read_text().strip(),
        )
    except (OSError, ValueError):
        return None


def device(ifname: str) -> Device:
    """One device (UnknownInterface if there is none of that name, or mgcap cannot
    describe its frames)."""
    try:
        lt = link_type(ifname)
    except OSError:
        raise UnknownInterface(f"{ifname}: no such device") from None
    if lt is None:
        raise UnknownInterface(f"{ifname}: mgcap cannot describe this device's frames")
    return Device(ifname, lt, running_capture(ifname))


def devices() -> list[Device]:
    """Every device mgcap can capture, in ifindex order."""
    out = []
    for _index, name in sorted(socket.if_nameindex()):
        if "{" in name or "}" in name:
            continue  # the extcap grammar cannot carry the name
        with contextlib.suppress(UnknownInterface):
            out.append(device(name))
    return out
