"""File names of a capture, like tcpdump's -w with -C, -G and -W.

- plain:            out.pcapng
- -C:               out.pcapng, out.pcapng1, out.pcapng2, ...
- -C with -W N:     out.pcapng0 .. out.pcapng<N-1>, zero padded, then overwritten in turn
- -G:               strftime(out) at each rotation (e.g. -w 'cap-%H%M%S.pcapng')
- -G with -C:       strftime(out) followed by the -C count within that period
- --per-ring:       '.ring<N>' goes before the extension: out.ring0.pcapng
"""

import time
from dataclasses import dataclass


def per_ring_name(path: str, ring: int) -> str:
    for ext in (".pcapng", ".pcap"):
        if path.endswith(ext):
            return f"{path[: -len(ext)]}.ring{ring}{ext}"
    return f"{path}.ring{ring}"


@dataclass
class Naming:
    template: str
    size_rotation: bool = False  # -C given
    time_rotation: bool = False  # -G given
    max_files: int | None = None  # -W

    def name(self, period_start: float, count: int) -> str:
        """count: files already started within this -G period (or overall without -G)."""
        base = (
            time.strftime(self.template, time.localtime(period_start))
            if self.time_rotation
            else self.template
        )
        if not self.size_rotation:
            return base
        if self.max_files is not None and not self.time_rotation:
            width = len(str(self.max_files - 1))
            return f"{base}{count % self.max_files:0{width}d}"
        return base if count == 0 else f"{base}{count}"
