"""mgdump --version: its own version, the loaded module's, and libpcap's, as
tcpdump --version names tcpdump's and libpcap's."""

import ctypes
import ctypes.util
from pathlib import Path

from mgctl import __version__

MODULE_VERSION = Path("/sys/module/mgcap/version")


def module_version() -> str:
    """The loaded mgcap.ko's version (MODULE_VERSION), in words when it has none."""
    if not MODULE_VERSION.parent.exists():
        return "mgcap module not loaded"
    try:
        return f"mgcap module version {MODULE_VERSION.read_text().strip()}"
    except OSError:
        return "mgcap module loaded, version unknown (it has no MODULE_VERSION)"


def libpcap_version() -> str:
    name = ctypes.util.find_library("pcap")
    if name is None:
        return "libpcap not found (capture filters need it)"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        return f"libpcap not loadable: {e}"
    lib.pcap_lib_version.restype = ctypes.c_char_p
    return str(lib.pcap_lib_version().decode())


def version_text() -> str:
    return "\n".join((f"mgdump version {__version__}", module_version(), libpcap_version()))
