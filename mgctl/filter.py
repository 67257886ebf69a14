"""Capture filters: tcpdump expressions compiled to classic BPF by the system's libpcap.

Nothing of BPF is compiled here: pcap_compile() of libpcap (through ctypes, so the
program is exactly the one tcpdump would install) turns the expression into
`struct sock_filter` instructions, which the kernel module verifies, JIT-compiles
and runs in its receive hook.

An Ethernet device is compiled as libpcap compiles it for a live capture on Linux:
on a handle activated on the device (or on lo when the device is down or not in this
network namespace), so that `vlan` also matches a tag the NIC or the stack moved into
packet metadata, as it does for tcpdump. When no live handle can be had (no
CAP_NET_RAW, say), the program is compiled for the link type alone
(`tcpdump -y EN10MB`), where `vlan` matches only tags still in the frame; the
program says which (`Program.live`). For every expression without `vlan` both are
the same program.
"""

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass

from construct import Array, Int8un, Int16un, Int32un, Struct

# struct sock_filter (linux/filter.h) == struct bpf_insn (pcap/bpf.h), host order
SockFilter = Struct("code" / Int16un, "jt" / Int8un, "jf" / Int8un, "k" / Int32un)
INSN_LEN: int = SockFilter.sizeof()
BPF_MAXINSNS = 4096  # the kernel's limit for a classic program
DLT_EN10MB = 1
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
# libpcap returns this to accept a frame whole when compiled with snaplen 0
MAX_SNAPLEN = 262144


class FilterError(ValueError):
    """An expression libpcap cannot compile; message is libpcap's own."""

    def __init__(self, expr: str, message: str) -> None:
        super().__init__(message)
        self.expr = expr
        self.message = message


@dataclass(frozen=True)
class Program:
    """A compiled filter: instructions as (code, jt, jf, k)."""

    expr: str
    insns: tuple[tuple[int, int, int, int], ...]
    linktype: int
    snaplen: int
    live: bool  # compiled for a live Linux capture (vlan in metadata seen)

    def pack(self) -> bytes:
        """The struct sock_filter array the kernel takes."""
        return pack(self.insns)

    def dump(self, level: int) -> str:
        """The program as `tcpdump -d` (1), `-dd` (2) or `-ddd` (3 or more) prints it."""
        if level >= 3:
            lines = [str(len(self.insns))]
            lines += [f"{c} {jt} {jf} {k}" for c, jt, jf, k in self.insns]
        elif level == 2:
            lines = [f"{{ 0x{c:x}, {jt}, {jf}, 0x{k:08x} }}," for c, jt, jf, k in self.insns]
        else:
            lines = [_image(self.insns, i) for i in range(len(self.insns))]
        return "\n".join(lines) + "\n"


def pack(insns: tuple[tuple[int, int, int, int], ...] | list[tuple[int, int, int, int]]) -> bytes:
    data: bytes = Array(len(insns), SockFilter).build(
        [{"code": c, "jt": jt, "jf": jf, "k": k} for c, jt, jf, k in insns]
    )
    return data


def unpack(data: bytes) -> tuple[tuple[int, int, int, int], ...]:
    """struct sock_filter array -> instructions (a trailing partial one is ignored)."""
    n = len(data) // INSN_LEN
    return tuple(
        (i.code, i.jt, i.jf, i.k) for i in Array(n, SockFilter).parse(data[: n * INSN_LEN])
    )


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


@functools.cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise FilterError("", f"capture filters need libpcap ({e}); apt install libpcap0.8") from e
    p = ctypes.c_void_p
    lib.pcap_open_dead.restype = p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_create.restype = p
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    for fn in ("pcap_set_snaplen", "pcap_set_buffer_size", "pcap_set_immediate_mode"):
        getattr(lib, fn).argtypes = [p, ctypes.c_int]
    lib.pcap_activate.argtypes = [p]
    lib.pcap_datalink.argtypes = [p]
    lib.pcap_close.argtypes = [p]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [p]
    lib.pcap_compile.argtypes = [
        p,
        ctypes.POINTER(_Program),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.bpf_image.restype = ctypes.c_char_p
    lib.bpf_image.argtypes = [ctypes.POINTER(_Insn), ctypes.c_int]
    return lib


def _image(insns: tuple[tuple[int, int, int, int], ...], n: int) -> str:
    insn = _Insn(*insns[n])
    out: bytes = _lib().bpf_image(ctypes.byref(insn), n)
    return out.decode()


def _live_handle(device: str, snaplen: int) -> int | None:
    """A handle activated on device, as tcpdump -i device has; None if none can be had."""
    lib = _lib()
    errbuf = ctypes.create_string_buffer(256)
    h = lib.pcap_create(device.encode(), errbuf)
    if not h:
        return None
    lib.pcap_set_snaplen(h, snaplen)
    lib.pcap_set_buffer_size(h, 1 << 16)  # it is closed again before any frame is read
    lib.pcap_set_immediate_mode(h, 1)
    if lib.pcap_activate(h) < 0 or lib.pcap_datalink(h) != DLT_EN10MB:
        lib.pcap_close(h)
        return None
    return int(h)


def compile_filter(
    expr: str, snaplen: int, linktype: int = DLT_EN10MB, device: str | None = None
) -> Program:
    """Compile expr for frames of linktype cut at snaplen (0: the whole frame).

    device: an Ethernet device to compile for as a live capture on it would (see the
    module's doc); None compiles for the link type alone, as `tcpdump -y`. Raises
    FilterError with libpcap's message, or if the program is longer than the kernel
    takes."""
    lib = _lib()
    snap = snaplen or MAX_SNAPLEN
    handle: int | None = None
    if linktype == DLT_EN10MB and device:
        for name in (device, "lo"):
            if handle is None:
                handle = _live_handle(name, snap)
    live = handle is not None
    if handle is None:
        handle = lib.pcap_open_dead(linktype, snap)
        if not handle:
            raise FilterError(expr, "libpcap cannot open a handle for the link type")
    prog = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1, PCAP_NETMASK_UNKNOWN):
            err = lib.pcap_geterr(handle) or b"cannot compile"
            raise FilterError(expr, err.decode(errors="replace"))
        insns = tuple(
            (i.code, i.jt, i.jf, i.k) for i in (prog.bf_insns[n] for n in range(prog.bf_len))
        )
        lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)
    if len(insns) > BPF_MAXINSNS:
        raise FilterError(
            expr, f"program of {len(insns)} instructions; the kernel takes {BPF_MAXINSNS}"
        )
    return Program(expr=expr, insns=insns, linktype=linktype, snaplen=snap, live=live)
