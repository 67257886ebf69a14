"""The Python API of mgcap's control plane; mgctl is a thin layer over it.

    from mgctl.api import Mgcap
    with Mgcap() as m:
        m.start("eth1", mode="drop")
        print(m.show("eth1").stats["captured_packets"])
        m.stop("eth1")

Errors from the kernel raise MgcapError carrying the kernel's extack message.

Capture filters (docs/filters.md) are tcpdump expressions, compiled by libpcap
here and run by the kernel before the copy; what they reject is counted in
stats["filtered_packets"]:

    with Mgcap() as m:
        m.start("eth1", filter="udp port 53")
        m.set("eth1", filter="tcp port 443")      # live
        m.set("eth1", clear_filter=True)

Hardware timestamping (docs/hwtstamp.md), e.g. for the length of a capture:

    with Mgcap() as m:
        before = m.hwtstamp_get("eth1")          # HwTstamp(rx="none", tx="off", ...)
        applied = m.hwtstamp_set("eth1", rx="all")
        ...
        m.hwtstamp_set("eth1", rx=before.rx, tx=before.tx)

A driver the module does not call (one with only the timestamp ioctl: every driver
before Linux 6.6) is configured here with SIOCGHWTSTAMP/SIOCSHWTSTAMP, and the
module is told what was applied; stop() puts its saved configuration back.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyroute2.netlink.exceptions import NetlinkError

from mgctl import linktypes, spec, uapi
from mgctl.netlink import FamilyMissing, MgcapNetlink, Overrun
from mgctl.spec import RX_ALIASES as RX_ALIASES  # where it was, for callers

if TYPE_CHECKING:
    from mgctl import filter as bpf
    from mgctl import hwtsioctl

# filters (libpcap through ctypes, construct) and the timestamp ioctl (ctypes) are
# imported where used: `mgctl show` and the other commands that never touch them
# start without them (a Python start-up takes seconds in the emulated test VM)

# the counters, named as in the data path's uapi (and in JSON output)
STAT_KEYS = uapi.STAT_FIELDS


class MgcapError(Exception):
    """A refused request: message is what to tell the user (one line)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class DevState:
    """What the kernel says about one device."""

    ifindex: int
    ifname: str
    capturing: bool
    mode: str | None = None
    snaplen: int | None = None
    ring_size: int | None = None
    nr_rings: int | None = None
    link_type: int | None = None
    chardev: str | None = None
    stats: dict[str, int] = field(default_factory=dict)
    cpu_stats: list[dict[str, int]] = field(default_factory=list)
    # the device's timestamp setting while capturing (None: it cannot stamp)
    hwtstamp_rx: str | None = None
    hwtstamp_tx: str | None = None
    # the capture filter: its expression ("" if it came without one) and program
    filter: str | None = None
    filter_program: bytes | None = None
    # the netlink port id of the socket the capture is tied to (None: not tied)
    owner_portid: int | None = None

    def settings(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "snaplen": self.snaplen,
            "ring_size": self.ring_size,
            "filter": self.filter,
            "filter_program": self.filter_program,
        }

    @property
    def filter_insns(self) -> int:
        """Instructions of the capture filter (0: none)."""
        from mgctl import filter as bpf  # only with a filter (see the imports)

        return len(self.filter_program or b"") // int(bpf.INSN_LEN)

    def to_json(self, stats: int = 0) -> dict[str, Any]:
        """The documented JSON object (docs/mgctl.md); stats: 0 none, 1 totals, 2 per CPU."""
        out: dict[str, Any] = {
            "ifindex": self.ifindex,
            "ifname": self.ifname,
            "capturing": self.capturing,
        }
        if self.capturing:
            out.update(
                mode=self.mode,
                snaplen=self.snaplen,
                ring_size=self.ring_size,
                nr_rings=self.nr_rings,
                link_type=self.link_type,
                chardev=self.chardev,
            )
            if self.owner_portid is not None:
                out["owner_portid"] = self.owner_portid
            if self.hwtstamp_rx is not None:
                out["hwtstamp"] = {"rx": self.hwtstamp_rx, "tx": self.hwtstamp_tx}
            out["filter"] = (
                {"expr": self.filter, "insns": self.filter_insns}
                if self.filter_program is not None
                else None
            )
        if stats >= 1 and self.stats:
            out["stats"] = dict(self.stats)
        if stats >= 2 and self.cpu_stats:
            out["cpu_stats"] = [dict(c) for c in self.cpu_stats]
        return out


@dataclass(frozen=True)
class HwTstamp:
    """A device's hardware timestamping, as its driver applied it.

    rx: a hwtstamp-rx name of the spec ("none", "all", "ptp-v2-event", ...);
    tx: a hwtstamp-tx name ("off", "on", ...). A value the spec does not know
    is given as its number, in decimal."""

    ifindex: int
    ifname: str
    rx: str
    tx: str

    def to_json(self) -> dict[str, Any]:
        return {"ifindex": self.ifindex, "ifname": self.ifname, "rx": self.rx, "tx": self.tx}


@dataclass(frozen=True)
class Result:
    """Outcome of a change: whether anything changed, and the state after it."""

    changed: bool
    state: DevState


@dataclass(frozen=True)
class Event:
    """A notification of the monitor group."""

    kind: str  # start, stop, change
    state: DevState


@dataclass(frozen=True)
class Lost:
    """Notifications lost before monitor() read them: the socket's receive buffer was
    full (ENOBUFS). count: how many the kernel dropped since the last report."""

    count: int


def _stats(d: dict[str, Any]) -> dict[str, int]:
    return {k: int(d.get(k.replace("_", "-"), 0)) for k in STAT_KEYS}


def _enum_name(fam: spec.Family, enum: str, value: Any) -> str | None:
    if value is None:
        return None
    names = {v: n for n, v in fam.enums[enum].items()}
    return names.get(int(value), str(value))


def to_state(fam: spec.Family, d: dict[str, Any]) -> DevState:
    capturing = bool(d.get("capturing"))
    mode = d.get("mode")
    chardev = d.get("chardev")
    return DevState(
        ifindex=int(d["ifindex"]),
        ifname=str(d["ifname"]),
        capturing=capturing,
        mode=fam.enum_name("mode", mode) if mode is not None else None,
        snaplen=d.get("snaplen"),
        ring_size=d.get("ring-size"),
        nr_rings=d.get("nr-rings"),
        link_type=d.get("link-type"),
        chardev=f"/dev/{chardev}" if chardev else None,
        stats=_stats(d["stats"]) if "stats" in d else {},
        cpu_stats=[{"cpu": int(c.get("cpu", 0)), **_stats(c)} for c in d.get("cpu-stats", [])],
        hwtstamp_rx=_enum_name(fam, "hwtstamp-rx", d.get("hwtstamp-rx")),
        hwtstamp_tx=_enum_name(fam, "hwtstamp-tx", d.get("hwtstamp-tx")),
        filter=str(d.get("filter-expr", "")) if "filter" in d else None,
        filter_program=bytes(d["filter"]) if "filter" in d else None,
        owner_portid=d.get("owner-portid"),
    )


def to_hwtstamp(fam: spec.Family, d: dict[str, Any]) -> HwTstamp:
    return HwTstamp(
        ifindex=int(d["ifindex"]),
        ifname=str(d["ifname"]),
        rx=_enum_name(fam, "hwtstamp-rx", d.get("hwtstamp-rx", 0)) or "none",
        tx=_enum_name(fam, "hwtstamp-tx", d.get("hwtstamp-tx", 0)) or "off",
    )


def _explain(e: NetlinkError) -> MgcapError:
    """The kernel's extack message, else the errno's text with a hint."""
    msg = e.args[1] if len(e.args) > 1 and e.args[1] else ""
    if not msg or msg == os.strerror(e.code):
        msg = os.strerror(e.code)
        if e.code == errno.EPERM:
            msg += " (changes need CAP_NET_ADMIN: run as root)"
    return MgcapError(msg, e.code)


# where modprobe looks, a directory per kernel release (kmod's default)
MODULES_ROOT = Path("/lib/modules")
# mgcap.ko, maybe compressed, as a line of modules.dep names it (its path, a colon)
_MODULES_DEP_LINE = re.compile(rb"^(?:[^:\n]*/)?mgcap\.ko(?:\.\w+)?:", re.MULTILINE)


def module_installed(modules_dir: Path) -> bool | None:
    """Whether modprobe can load mgcap from modules_dir (one kernel's /lib/modules/X):
    whether depmod put it in modules.dep there.  False too if the directory does not
    exist; None when it cannot be told (no index, or no reading it: under systemd's
    ProtectKernelModules= the directory is inaccessible)."""
    try:
        dep = (modules_dir / "modules.dep").read_bytes()
        return b"mgcap.ko" in dep and _MODULES_DEP_LINE.search(dep) is not None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        modules_dir.stat()
    except FileNotFoundError:
        return False
    except OSError:
        pass
    return None


def module_missing(release: str | None = None) -> str:
    """What to say when the mgcap family is missing (one line): the modprobe hint when
    the module is installed for the running kernel, else where to get it."""
    release = release or os.uname().release
    if module_installed(MODULES_ROOT / release) is False:
        return (
            f"mgcap module not loaded, and not installed for kernel {release} "
            "(install it with DKMS as docs/install.md says, or insmod kernel/mgcap.ko "
            "from a build)"
        )
    return "mgcap module not loaded (modprobe mgcap)"


class Mgcap:
    """A connection to the mgcap family of the caller's network namespace."""

    def __init__(self) -> None:
        try:
            self.nl = MgcapNetlink()
        except FamilyMissing as e:
            raise MgcapError(module_missing(), e.errno or 0) from e
        self.family = self.nl.family

    def close(self) -> None:
        self.nl.close()

    def __enter__(self) -> Mgcap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, op: str, **attrs: Any) -> dict[str, Any] | None:
        """One request; kernel refusals become MgcapError with the extack message."""
        try:
            return self.nl.do(op, **attrs)
        except NetlinkError as e:
            err = _explain(e)
            if e.code == errno.ENODEV and attrs.get("ifname"):
                # which device, as `ip` says (the kernel's message has no name)
                err = MgcapError(f"{attrs['ifname']}: {err.message}", e.code)
            raise err from e

    def _do(self, op: str, **attrs: Any) -> DevState | None:
        reply = self._request(op, **attrs)
        return to_state(self.family, reply) if reply else None

    def _mode(self, mode: str | None) -> int | None:
        if mode is None:
            return None
        try:
            return self.family.enums["mode"][mode]
        except KeyError:
            raise MgcapError(f'mode "{mode}" is not mirror or drop', errno.EINVAL) from None

    def show(self, dev: str) -> DevState:
        state = self._do("dev-get", ifname=dev)
        assert state is not None
        return state

    def captures(self) -> list[DevState]:
        """Every capturing device of this network namespace."""
        try:
            return [to_state(self.family, d) for d in self.nl.dump("dev-get")]
        except NetlinkError as e:
            raise _explain(e) from e

    def compile(self, dev: str, expr: str, snaplen: int | None = None) -> bpf.Program:
        """expr compiled for dev's link type and snaplen (None: the module's default),
        as `tcpdump -ddd -i dev -s snaplen expr` would. Raises bpf.FilterError."""
        from mgctl import filter as bpf  # only for a filter (see the imports)

        return bpf.compile_filter(expr, snaplen or default_snaplen(), link_type_of(dev), device=dev)

    def start(
        self,
        dev: str,
        mode: str | None = None,
        snaplen: int | None = None,
        ring_size: int | None = None,
        idempotent: bool = False,
        filter: str | None = None,
        owned: bool = False,
    ) -> Result:
        """Start capture. idempotent: a device that already captures exactly what this
        start would create (the given settings, the module's defaults for the others,
        the same filter program) is no error: Result(changed=False). A device that
        captures with other settings is an error either way (EEXIST).
        filter: a tcpdump expression (bpf.FilterError if libpcap refuses it; nothing
        is sent to the kernel then). owned: the capture is tied to this object's netlink
        socket and stops when it is closed (close(), or the process ends, even by
        SIGKILL); otherwise it runs until stop()."""
        prog = self.compile(dev, filter, snaplen) if filter else None
        if idempotent:
            cur = self.show(dev)
            if cur.capturing:
                self._same_capture(cur, mode, snaplen, ring_size, filter, prog)
                return Result(False, cur)
        state = self._do(
            "dev-start",
            ifname=dev,
            mode=self._mode(mode),
            snaplen=snaplen,
            ring_size=ring_size,
            filter=prog.pack() if prog else None,
            filter_expr=prog.expr if prog else None,
            socket_owner=True if owned else None,
        )
        assert state is not None
        return Result(True, state)

    def _same_capture(
        self,
        cur: DevState,
        mode: str | None,
        snaplen: int | None,
        ring_size: int | None,
        expr: str | None,
        prog: bpf.Program | None,
    ) -> None:
        """MgcapError (EEXIST) naming each setting of the running capture that is not
        what a start with these arguments would set."""
        params = module_parameters()
        want_filter = f'filter "{expr}"' if expr else "no filter"
        have_filter = (
            "no filter"
            if cur.filter_program is None
            else f'filter "{cur.filter}"'
            if cur.filter
            else f"a filter of {cur.filter_insns} insns"
        )
        wrong = [
            f"{what} {have}, not {want}"
            for what, want, have in (
                ("mode", mode or params.get("mode", "mirror"), cur.mode),
                ("snaplen", snaplen or default_snaplen(), cur.snaplen),
                ("ring-size", ring_size or params.get("ring_size"), cur.ring_size),
            )
            if want is not None and str(want) != str(have)
        ]
        if (prog.pack() if prog else None) != cur.filter_program:
            wrong.append(f"{have_filter}, not {want_filter}")
        if wrong:
            # the ring size cannot change while capturing; the rest can
            ring = any(w.startswith("ring-size") for w in wrong)
            how = "stop it first" if ring else "change it with mgctl set or stop it first"
            raise MgcapError(
                f"{cur.ifname} already captures with {'; '.join(wrong)}; {how}", errno.EEXIST
            )

    def stop(self, dev: str, idempotent: bool = False) -> Result:
        """Stop capture. For a device the module cannot configure itself, the stop
        reply carries the timestamp configuration saved before mgcap's first change,
        which is put back here (MgcapError if that fails: the capture stopped)."""
        if idempotent:
            cur = self.show(dev)
            if not cur.capturing:
                return Result(False, cur)
        reply = self._request("dev-stop", ifname=dev)
        if reply and "hwtstamp-saved-rx" in reply:
            self._put_back(dev, reply)
        return Result(True, self.show(dev))

    def _put_back(self, dev: str, reply: dict[str, Any]) -> None:
        from mgctl import hwtsioctl  # only for a driver with the ioctl (see the imports)

        saved = hwtsioctl.HwConfig(
            rx=int(reply["hwtstamp-saved-rx"]), tx=int(reply.get("hwtstamp-saved-tx", 0))
        )
        try:
            hwtsioctl.apply(dev, saved)
        except hwtsioctl.HwtsIoctlError as e:
            names = self._hw_names(saved)
            raise MgcapError(
                f"{dev}: capture stopped, but its timestamp setting (rx {names[0]} tx "
                f"{names[1]}) was not put back: {e.strerror}",
                e.errno or 0,
            ) from None

    def set(
        self,
        dev: str,
        mode: str | None = None,
        snaplen: int | None = None,
        allow_noop: bool = False,
        filter: str | None = None,
        clear_filter: bool = False,
    ) -> Result:
        """Change a capture live. filter: a new tcpdump expression; clear_filter: no
        filter. A new snaplen recompiles the installed filter's expression for it (the
        program's return value bounds every record)."""
        if filter is not None and clear_filter:
            raise MgcapError("filter and clear_filter exclude each other", errno.EINVAL)
        before = self.show(dev)
        if mode is None and snaplen is None and filter is None and not clear_filter:
            if allow_noop and before.capturing:
                return Result(False, before)
            raise MgcapError("nothing to set: give mode, snaplen or filter", errno.EINVAL)
        expr = filter
        if expr is None and snaplen is not None and not clear_filter and before.filter:
            expr = before.filter
        prog = self.compile(dev, expr, snaplen or before.snaplen) if expr else None
        if (
            allow_noop
            and before.capturing
            and (mode is None or mode == before.mode)
            and (snaplen is None or snaplen == before.snaplen)
            and (filter is None or (prog and prog.pack() == before.filter_program))
            and (not clear_filter or before.filter_program is None)
        ):
            return Result(False, before)
        after = self._do(
            "dev-set",
            ifname=dev,
            mode=self._mode(mode),
            snaplen=snaplen,
            filter=prog.pack() if prog else None,
            filter_expr=prog.expr if prog else None,
            filter_clear=True if clear_filter else None,
        )
        assert after is not None
        return Result(after.settings() != before.settings(), after)

    def _hwts_request(self, dev: str, op: str, **attrs: Any) -> dict[str, Any]:
        try:
            reply = self._request(op, ifname=dev, **attrs)
        except MgcapError as e:
            # "eth1: hardware timestamping not supported"
            msg = e.message.removeprefix("mgcap: ")
            raise MgcapError(msg if msg.startswith(f"{dev}: ") else f"{dev}: {msg}", e.code) from e
        assert reply is not None
        return reply

    def _hw_names(self, cfg: hwtsioctl.HwConfig) -> tuple[str, str]:
        return (
            _enum_name(self.family, "hwtstamp-rx", cfg.rx) or "none",
            _enum_name(self.family, "hwtstamp-tx", cfg.tx) or "off",
        )

    def _hw_ioctl(self, dev: str, cfg: hwtsioctl.HwConfig | None = None) -> hwtsioctl.HwConfig:
        """SIOCGHWTSTAMP (cfg None) or SIOCSHWTSTAMP from here, errors as MgcapError."""
        from mgctl import hwtsioctl  # only for a driver with the ioctl (see the imports)

        try:
            return hwtsioctl.read(dev) if cfg is None else hwtsioctl.apply(dev, cfg)
        except hwtsioctl.HwtsIoctlError as e:
            raise MgcapError(f"{dev}: {e.strerror}", e.errno or 0) from None

    def _hw_state(self, reply: dict[str, Any], cfg: hwtsioctl.HwConfig) -> HwTstamp:
        rx, tx = self._hw_names(cfg)
        return HwTstamp(ifindex=int(reply["ifindex"]), ifname=str(reply["ifname"]), rx=rx, tx=tx)

    def hwtstamp_get(self, dev: str) -> HwTstamp:
        """The device's hardware timestamping as its driver reports it. Needs
        CAP_NET_ADMIN. MgcapError (code EOPNOTSUPP) if the device cannot stamp."""
        reply = self._hwts_request(dev, "hwtstamp-get")
        if reply.get("hwtstamp-user"):
            return self._hw_state(reply, self._hw_ioctl(dev))
        return to_hwtstamp(self.family, reply)

    def hwtstamp_set(self, dev: str, rx: str | None = None, tx: str | None = None) -> HwTstamp:
        """Configure hardware timestamping (None keeps the current value); returns what
        the driver applied, which may be a wider receive filter than rx. rx: a
        hwtstamp-rx name or "ptp" (ptp-v2-event); tx: "off", "on", ... Needs
        CAP_NET_ADMIN. The kernel saves the device's configuration before the first
        change and puts it back when capture on the device stops and at module
        unload (docs/hwtstamp.md); a caller that wants the previous setting back
        earlier sets it again itself (hwtstamp_get before, hwtstamp_set after)."""
        if rx is None and tx is None:
            raise MgcapError("nothing to set: give rx and/or tx", errno.EINVAL)
        enums = self.family.enums
        try:
            rx_v = None if rx is None else enums["hwtstamp-rx"][RX_ALIASES.get(rx, rx)]
            tx_v = None if tx is None else enums["hwtstamp-tx"][tx]
        except KeyError as e:
            raise MgcapError(f"unknown timestamp setting {e.args[0]}", errno.EINVAL) from None
        if self._hwts_request(dev, "hwtstamp-get").get("hwtstamp-user"):
            return self._hwtstamp_set_user(dev, rx_v, tx_v)
        reply = self._hwts_request(dev, "hwtstamp-set", hwtstamp_rx=rx_v, hwtstamp_tx=tx_v)
        return to_hwtstamp(self.family, reply)

    def _hwtstamp_set_user(self, dev: str, rx: int | None, tx: int | None) -> HwTstamp:
        """A driver the module does not call: SIOCSHWTSTAMP from here, then the module
        records what was applied and what was there before (it keeps the first
        saved configuration for the restore). If the module refuses, the device
        gets its configuration back."""
        from mgctl import hwtsioctl  # only for a driver with the ioctl (see the imports)

        before = self._hw_ioctl(dev)
        want = hwtsioctl.HwConfig(
            rx=before.rx if rx is None else rx,
            tx=before.tx if tx is None else tx,
            flags=before.flags,
        )
        applied = self._hw_ioctl(dev, want)
        try:
            reply = self._hwts_request(
                dev,
                "hwtstamp-set",
                hwtstamp_user=True,
                hwtstamp_rx=applied.rx,
                hwtstamp_tx=applied.tx,
                hwtstamp_saved_rx=before.rx,
                hwtstamp_saved_tx=before.tx,
            )
        except MgcapError:
            with contextlib.suppress(MgcapError):
                self._hw_ioctl(dev, before)
            raise
        return self._hw_state(reply, applied)

    def monitor(self, rcvbuf: int | None = None) -> Iterator[Event | Lost]:
        """Every start, change and stop in this network namespace, as it happens; a
        Lost when notifications were dropped because they came faster than they were
        read (then it goes on). rcvbuf: the socket's receive buffer in bytes."""
        kinds = {"dev-start-ntf": "start", "dev-stop-ntf": "stop", "dev-change-ntf": "change"}
        for item in self.nl.monitor(rcvbuf):
            if isinstance(item, Overrun):
                yield Lost(item.dropped)
            else:
                op, d = item
                yield Event(kinds.get(op, op), to_state(self.family, d))


def module_parameters() -> dict[str, str | int]:
    """The loaded module's defaults: mode, snaplen and ring_size (those it can read)."""
    out: dict[str, str | int] = {}
    for name in ("mode", "snaplen", "ring_size"):
        try:
            text = Path(f"/sys/module/mgcap/parameters/{name}").read_text().strip()
        except OSError:
            continue
        if name != "mode":
            out[name] = int(text)
        elif text in ("mirror", "drop"):  # "(null)" when not given at load
            out[name] = text
    return out


def default_snaplen() -> int:
    """The module's default snaplen (its snaplen= parameter)."""
    try:
        return int(Path("/sys/module/mgcap/parameters/snaplen").read_text())
    except (OSError, ValueError):
        return uapi.SNAPLEN_DEFAULT


def link_type_of(dev: str) -> int:
    """The LINKTYPE_* of dev's frames, from its ARPHRD_* type in sysfs, for compiling
    a filter before a start. Ethernet for a device that is not there, and for a type
    mgcap cannot describe: the kernel refuses to start such a capture, with its
    message, so a program compiled for it is never installed."""
    try:
        arphrd = int(Path(f"/sys/class/net/{dev}/type").read_text())
        return linktypes.link_type_of(arphrd)
    except (OSError, ValueError):
        return linktypes.LINKTYPE_ETHERNET
