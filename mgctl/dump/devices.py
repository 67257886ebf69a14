"""mgdump -D: the devices mgdump can be pointed at, numbered as tcpdump -D numbers
them, with their flags and what mgcap is doing on each.

    1.eth0 [Up, Running, Connected] (mgcap: not capturing)
    2.lo [Up, Running, Loopback] (mgcap: capturing, mirror, snaplen 96, 2 rings)

The order is tcpdump's: devices that are up and running first, loopback after the
others, devices that are down last. Without the module the devices are still
listed (as tcpdump lists devices it cannot capture on), without the mgcap part,
and a note says the module is not loaded.
"""

from dataclasses import dataclass

from mgctl.api import DevState, Mgcap, MgcapError

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40


@dataclass(frozen=True)
class Link:
    ifindex: int
    ifname: str
    flags: int
    operstate: str  # "UP", "DOWN", "UNKNOWN", ...

    def words(self) -> list[str]:
        """tcpdump -D's flags: Up, Running, Loopback, and the connection status."""
        out = [w for bit, w in ((IFF_UP, "Up"), (IFF_RUNNING, "Running")) if self.flags & bit]
        if self.flags & IFF_LOOPBACK:
            out.append("Loopback")
        elif self.flags & IFF_UP and self.operstate in ("UP", "DOWN"):
            out.append("Connected" if self.operstate == "UP" else "Disconnected")
        return out

    def merit(self) -> tuple[bool, bool, bool, bool, int]:
        return (
            not self.flags & IFF_UP,
            not self.flags & IFF_RUNNING,
            self.operstate == "DOWN",
            bool(self.flags & IFF_LOOPBACK),
            self.ifindex,
        )


def links() -> list[Link]:
    from pyroute2 import IPRoute  # only for -D: pyroute2's whole package is slow to import

    with IPRoute() as ipr:
        return [
            Link(
                ifindex=int(m["index"]),
                ifname=str(m.get_attr("IFLA_IFNAME")),
                flags=int(m["flags"]),
                operstate=str(m.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
            )
            for m in ipr.get_links()
        ]


def mgcap_state(state: DevState | None) -> str:
    if state is None or not state.capturing:
        return "(mgcap: not capturing)"
    details = [state.mode or "?", f"snaplen {state.snaplen}", f"{state.nr_rings} rings"]
    if state.filter_program is not None:
        details.append(f'filter "{state.filter}"' if state.filter else "filter")
    return f"(mgcap: capturing, {', '.join(details)})"


def listing() -> tuple[list[str], str | None]:
    """The lines of mgdump -D, and a note for stderr (None: nothing to note)."""
    captures: dict[int, DevState] | None
    note = None
    try:
        with Mgcap() as m:
            captures = {s.ifindex: s for s in m.captures()}
    except MgcapError as e:
        captures = None
        note = f"{e.message}: capture state unknown"
    lines = []
    for n, link in enumerate(sorted(links(), key=Link.merit), start=1):
        line = f"{n}.{link.ifname} [{', '.join(link.words()) or 'none'}]"
        if captures is not None:
            line += " " + mgcap_state(captures.get(link.ifindex))
        lines.append(line)
    return lines, note
