"""mgdump's capture filter as tcpdump takes it: trailing words or -F FILE, and -d.

The expression is compiled by libpcap (mgctl.filter) exactly as mgctl and the
Python API compile it, so mgdump can tell whether a capture that already runs has
the same program installed.
"""

from pathlib import Path

from mgctl import filter as bpf
from mgctl.api import Mgcap, MgcapError, default_snaplen, link_type_of


def from_file(path: str) -> str:
    """The expression in FILE, as tcpdump -F reads it: '#' starts a comment that runs
    to the end of its line; everything else is the expression."""
    text = Path(path).read_text()
    return "\n".join(line.partition("#")[0] for line in text.splitlines())


def normalize(expr: str) -> str:
    """One line, words separated by single spaces (the same filter to libpcap)."""
    return " ".join(expr.split())


def expression(words: list[str] | None, file_text: str | None) -> str | None:
    """The capture filter from trailing words (joined with spaces, as tcpdump joins
    them) or from -F's file; None when there is none (an empty one is none, too)."""
    text = file_text if file_text is not None else " ".join(words or [])
    return normalize(text) or None


def check(expr: str, devices: list[str], snaplen: int | None) -> None:
    """Compile expr for every device's link type: bpf.FilterError if libpcap refuses."""
    for dev in devices:
        bpf.compile_filter(expr, snaplen or default_snaplen(), link_type_of(dev), device=dev)


def program(dev: str, expr: str | None, snaplen: int | None) -> bpf.Program:
    """What mgdump would install on dev for expr (None or "": the accept-all program
    libpcap compiles for an empty expression). The snaplen is -s, else that of a
    capture already running on dev, else the module's default."""
    try:
        api = Mgcap()
    except MgcapError:  # module not loaded: what it would be compiled for at start
        return bpf.compile_filter(
            expr or "", snaplen or default_snaplen(), link_type_of(dev), device=dev
        )
    with api:
        if snaplen is None:
            try:
                state = api.show(dev)
            except MgcapError:  # an unknown device: its link type is Ethernet
                state = None
            if state is not None and state.capturing:
                snaplen = state.snaplen
        return api.compile(dev, expr or "", snaplen)
