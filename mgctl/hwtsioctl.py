"""SIOCGHWTSTAMP / SIOCSHWTSTAMP from user space, for devices whose driver the mgcap
module does not call (hwtstamp-user in the netlink spec: drivers with only
ndo_eth_ioctl). This is the kernel's own ioctl path, with its own permission checks
(SIOCSHWTSTAMP needs CAP_NET_ADMIN), on a socket of the caller's network namespace,
the one mgcap looks devices up in."""

import ctypes
import errno
import fcntl
import os
import socket
import struct
from dataclasses import dataclass

SIOCSHWTSTAMP = 0x89B0
SIOCGHWTSTAMP = 0x89B1
_IFREQ_SIZE = 40  # struct ifreq on 64-bit: 16 bytes of name, a 24-byte union
_CONFIG = "=iii"  # struct hwtstamp_config: flags, tx_type, rx_filter


@dataclass(frozen=True)
class HwConfig:
    """struct hwtstamp_config: numbers of enum hwtstamp_rx_filters / hwtstamp_tx_types."""

    rx: int
    tx: int
    flags: int = 0


class HwtsIoctlError(OSError):
    """The ioctl failed; str() is a one-line reason."""


def _reason(code: int) -> str:
    if code == errno.EOPNOTSUPP:
        return "hardware timestamping not supported"
    if code == errno.ERANGE:
        return "the device cannot stamp with this setting"
    if code == errno.EPERM:
        return f"{os.strerror(code)} (changes need CAP_NET_ADMIN: run as root)"
    return f"the driver refused the timestamp request ({os.strerror(code)})"


def _ioctl(ifname: str, cmd: int, cfg: HwConfig) -> HwConfig:
    buf = ctypes.create_string_buffer(struct.pack(_CONFIG, cfg.flags, cfg.tx, cfg.rx))
    ifr = struct.pack("=16sQ", ifname.encode(), ctypes.addressof(buf)).ljust(_IFREQ_SIZE, b"\0")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), cmd, ifr)
    except OSError as e:
        code = e.errno or errno.EIO
        raise HwtsIoctlError(code, _reason(code)) from None
    flags, tx, rx = struct.unpack(_CONFIG, buf.raw[: struct.calcsize(_CONFIG)])
    return HwConfig(rx=rx, tx=tx, flags=flags)


def read(ifname: str) -> HwConfig:
    """The device's configuration as its driver reports it."""
    return _ioctl(ifname, SIOCGHWTSTAMP, HwConfig(0, 0))


def apply(ifname: str, cfg: HwConfig) -> HwConfig:
    """Apply cfg; returns what the driver applied (it may widen rx)."""
    return _ioctl(ifname, SIOCSHWTSTAMP, cfg)
