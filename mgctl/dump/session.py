"""A capture session: set the devices up, run readers and writer, tear down, account.

Devices that are not capturing are started (mirror mode unless told otherwise,
with the capture filter if one is given) and stopped again at the end; a device
that already captures is left as found, and its capture filter is never replaced.
When mgdump owns the capture, stopping it first freezes the kernel's counters and
lets the readers take every record still in the rings, so the final numbers add
up exactly: seen = written + rejected by the filter + kernel ring drops + mgdump
drops.
"""

import contextlib
import errno
import os
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgctl import pcapng
from mgctl.api import DevState, HwTstamp, Mgcap, MgcapError
from mgctl.chardev import CaptureDevice
from mgctl.dump.buffer import BlockPool
from mgctl.dump.lines import LineOutput
from mgctl.dump.mapped import MappedReader
from mgctl.dump.mapped import usable as mapping_usable
from mgctl.dump.naming import Naming, per_ring_name
from mgctl.dump.output import Output, OutputError
from mgctl.dump.reader import ReadReader, RingReader
from mgctl.dump.writer import Writer
from mgctl.filter import FilterError


class SetupError(Exception):
    """The capture could not begin: one line for the user."""


@dataclass
class Options:
    interfaces: list[str]
    write: str  # path, strftime template with -G, "-", or "": lines on standard output
    count: int | None = None
    snaplen: int | None = None
    mode: str | None = None
    ring_size: int | None = None
    buffer_bytes: int = 64 << 20
    rotate_bytes: int | None = None
    rotate_seconds: float | None = None
    max_files: int | None = None
    per_ring: bool = False
    pin: bool = True
    mapped: bool = True  # hand the writer records in the mapped rings (else read() them)
    hwts: str | None = None  # receive filter to switch on for the capture
    filter: str | None = None  # capture filter (tcpdump expression) for the capture


@dataclass
class Device:
    interface_id: int
    ifname: str
    state: DevState
    owned: bool  # mgdump started this capture and stops it
    control: CaptureDevice  # unbound file: statistics and the interface id
    baseline: dict[str, int]
    readers: list[RingReader] = field(default_factory=list)
    final: dict[str, int] | None = None
    hwts_before: HwTstamp | None = None  # put back on exit
    hwts_applied: HwTstamp | None = None

    @property
    def hardware_stamps(self) -> bool:
        return self.hwts_applied is not None and self.hwts_applied.rx != "none"

    @property
    def has_filter(self) -> bool:
        return self.state.filter_program is not None

    @property
    def filter_found(self) -> bool:
        """The capture filter was installed by someone else (mgdump uses it as is)."""
        return self.has_filter and not self.owned


@dataclass
class DeviceTotals:
    ifname: str
    seen: int
    written: int
    kernel_drops: int
    mgdump_drops: int
    not_written: int  # read but not written: after -c, or after a write error
    hw_stamped: int  # captured with the NIC's timestamp
    filtered: int = 0  # rejected by the capture filter
    filter: str | None = None  # the capture filter's expression, None: no filter
    filter_found: bool = False  # installed before mgdump, not by it


def _hardware(ifname: str) -> str | None:
    driver = Path("/sys/class/net", ifname, "device", "driver")
    if driver.exists():
        return f"driver {driver.resolve().name}"
    return None


def describe_filter(state: DevState) -> str:
    """The installed capture filter in words: its expression, quoted."""
    if state.filter:
        return f'"{state.filter}"'
    return f"of {state.filter_insns} instructions (installed without an expression)"


class Session:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.devices: list[Device] = []
        self.buffer = BlockPool(opts.buffer_bytes)
        self.readers: list[RingReader] = []
        self.outputs: list[Output] = []
        self.writer: Writer | None = None
        self.stop_event = threading.Event()
        self.reason = ""
        self.start_ns = time.time_ns()
        self._api: Mgcap | None = None

    # -- set up ---------------------------------------------------------

    def open(self) -> None:
        try:
            self._api = Mgcap()
            for name in self.opts.interfaces:
                try:
                    self._open_device(len(self.devices), name)
                except MgcapError as e:
                    if name in e.message:
                        raise
                    raise MgcapError(f"{name}: {e.message}", e.code) from e
            for dev in self.devices:
                self._open_readers(dev)
            self._open_outputs()
        except MgcapError as e:
            self.abort()
            raise SetupError(e.message) from e
        except FilterError as e:
            self.abort()
            raise SetupError(f'filter "{e.expr}": {e.message}') from e
        except OSError as e:
            self.abort()
            raise SetupError(f"{e.filename or 'mgcap'}: {e.strerror}") from e
        except (SetupError, OutputError):
            self.abort()
            raise

    def _open_device(self, interface_id: int, name: str) -> Device:
        assert self._api is not None
        o = self.opts
        state = self._api.show(name)
        owned = not state.capturing
        if owned:
            state = self._api.start(
                name,
                mode=o.mode or "mirror",
                snaplen=o.snaplen,
                ring_size=o.ring_size,
                filter=o.filter or None,
                # stops with mgdump's netlink socket, even if mgdump is killed
                owned=True,
            ).state
        else:
            for what, want, have in (
                ("mode", o.mode, state.mode),
                ("snaplen", o.snaplen, state.snaplen),
                ("ring size", o.ring_size, state.ring_size),
            ):
                if want is not None and want != have:
                    raise SetupError(
                        f"{name} already captures with {what} {have}; "
                        f"change it with mgctl or leave out the option"
                    )
            self._check_filter(state)
        try:
            assert state.chardev is not None
            control = CaptureDevice(state.chardev, nonblock=True)
        except BaseException:
            if owned:
                self._api.stop(name)
            raise
        dev = Device(interface_id, name, state, owned, control, {})
        # registered before anything else can fail, so that abort() undoes it all
        self.devices.append(dev)
        control.set_interface_id(interface_id)
        if o.hwts is not None:
            dev.hwts_before = self._api.hwtstamp_get(name)
            dev.hwts_applied = self._api.hwtstamp_set(name, rx=o.hwts)
        return dev

    def _check_filter(self, state: DevState) -> None:
        """A capture mgdump did not start: its filter must be the one asked for (same
        program), or mgdump must have been given none. It is never replaced."""
        assert self._api is not None
        want = self.opts.filter
        if not want:
            return
        name = state.ifname
        have = state.filter_program
        if have is not None and self._api.compile(name, want, state.snaplen).pack() == have:
            return
        change = f"mgctl set dev {name} filter {shlex.quote(want)}"
        if have is None:
            raise SetupError(
                f"{name} already captures without a capture filter; to install it: "
                f"{change} (or leave out the expression)"
            )
        raise SetupError(
            f"{name} already captures with the capture filter {describe_filter(state)}; "
            f"to change it: {change} (or leave out the expression to use it)"
        )

    def _open_readers(self, dev: Device) -> None:
        assert dev.state.nr_rings is not None and dev.state.snaplen is not None
        assert dev.state.chardev is not None
        for ring in range(dev.state.nr_rings):
            args = (
                len(self.readers),
                dev.state.chardev,
                ring,
                dev.interface_id,
                dev.state.snaplen,
                self.buffer,
                self.opts.pin,
            )
            try:
                r = self._reader(*args)
            except OSError as e:
                if e.errno == errno.EBUSY:
                    raise SetupError(f"{dev.ifname}: ring {ring} is read by another process") from e
                raise
            dev.readers.append(r)
            self.readers.append(r)
        if not dev.owned:
            dev.baseline = self._baseline(dev)

    def _reader(self, *args: Any) -> RingReader:
        """A mapped reader, or one that read()s if told to or if the ring cannot be
        mapped (a file opened read-only)."""
        if self.opts.mapped and mapping_usable():
            try:
                return MappedReader(*args)
            except PermissionError:
                pass
        return ReadReader(*args)

    @staticmethod
    def _baseline(dev: Device) -> dict[str, int]:
        """Counters of a capture mgdump did not start, as of the records it will find
        waiting in the rings: those count as seen and captured from now on."""
        waiting = sum(r.waiting() for r in dev.readers)
        base = dev.control.stats()
        base["seen_packets"] -= waiting
        base["captured_packets"] -= waiting
        return base

    def interfaces(self) -> list[pcapng.Interface]:
        out = []
        for d in self.devices:
            s = d.state
            assert s.link_type is not None and s.snaplen is not None
            out.append(
                pcapng.Interface(
                    name=d.ifname,
                    link_type=pcapng.link_type_of(s.link_type),
                    snaplen=s.snaplen,
                    description=(
                        f"mgcap {s.mode} capture of {d.ifname}: {s.nr_rings} rings of "
                        f"{(s.ring_size or 0) >> 10} KiB"
                    ),
                    hardware=_hardware(d.ifname),
                    comment=self.clock_comment(d),
                    filter=s.filter or None,
                )
            )
        return out

    def listening(self) -> list[str]:
        """tcpdump's "listening on" line, one per device, once the capture runs."""
        lines = []
        for d, iface in zip(self.devices, self.interfaces(), strict=True):
            s = d.state
            line = (
                f"listening on {d.ifname}, link-type {pcapng.link_type_name(iface.link_type)}, "
                f"snapshot length {s.snaplen} bytes; mgcap {s.mode} capture, {s.nr_rings} rings"
            )
            if d.has_filter:
                line += f", capture filter {describe_filter(s)}"
                if d.filter_found:
                    line += " (installed before mgdump)"
            lines.append(line)
        return lines

    def clock_comment(self, dev: Device) -> str:
        if dev.hardware_stamps:
            assert dev.hwts_applied is not None
            return (
                f"timestamps: hardware (the NIC's clock, receive filter "
                f"{dev.hwts_applied.rx}) for frames the NIC stamped, software (kernel "
                f"real-time clock) for the others; the statistics block counts the "
                f"hardware-stamped packets"
            )
        return "timestamps: software (kernel real-time clock when mgcap saw the frame)"

    def _open_outputs(self) -> None:
        o = self.opts
        ifaces = self.interfaces()
        n_outputs = max(len(d.readers) for d in self.devices) if o.per_ring else 1
        for i in range(n_outputs):
            if not o.write:  # no -w: one line per packet on standard output
                self.outputs.append(LineOutput(ifaces, self.statistics))
                continue
            naming = None
            if o.write != "-":
                template = per_ring_name(o.write, i) if o.per_ring else o.write
                naming = Naming(
                    template,
                    size_rotation=o.rotate_bytes is not None,
                    time_rotation=o.rotate_seconds is not None,
                    max_files=o.max_files,
                )
            self.outputs.append(
                Output(naming, ifaces, self.statistics, o.rotate_bytes, o.rotate_seconds)
            )
        # open the first files now: a bad path fails before any packet is read
        for out in self.outputs:
            out.write_records(b"", 0)

    # -- run ------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.reason = reason
            self.stop_event.set()

    def run(self, tick: float, on_tick: Callable[["Session"], None] | None = None) -> None:
        readers = self.readers
        device_of = [next(d for d in self.devices if r in d.readers) for r in readers]
        self.writer = Writer(
            self.buffer,
            self.outputs,
            route=(lambda s: readers[s].ring) if self.opts.per_ring else (lambda s: 0),
            interface_of=lambda s: device_of[s].interface_id,
            n_interfaces=len(self.devices),
            count=self.opts.count,
            on_stop=self.request_stop,
        )
        self.writer.start()
        for r in self.readers:
            r.start()
        while not self.stop_event.wait(tick):
            if on_tick:
                on_tick(self)
            if all(not r.is_alive() for r in self.readers):
                errs = [r.error for r in self.readers if r.error]
                self.request_stop("read-error" if errs else "ended")
        self.finish()

    def finish(self) -> None:
        """Stop what we started, drain, finalize the files."""
        assert self._api is not None and self.writer is not None
        drain = self.reason not in ("count", "error", "files")
        for dev in self.devices:
            if dev.owned:
                # a device that went away: its capture already ended
                with contextlib.suppress(MgcapError):
                    self._api.stop(dev.ifname)
        for r in self.readers:
            r.drain_on_stop = drain
            r.stop_requested.set()
        for r in self.readers:
            r.join()
        for dev in self.devices:
            dev.final = dev.control.stats()
        self._restore_hwts()
        self.buffer.close()
        self.writer.join()
        self.buffer.drop_pending()  # after -c, a write error or -W: the ring views go
        self.writer.close_outputs()
        self.close()

    def _restore_hwts(self) -> None:
        """The timestamp configuration as mgdump found it (the kernel also restores it
        when a capture stops; this covers captures mgdump did not start)."""
        for dev in self.devices:
            b = dev.hwts_before
            if b is not None and self._api is not None:
                with contextlib.suppress(MgcapError):  # the device may be gone
                    self._api.hwtstamp_set(dev.ifname, rx=b.rx, tx=b.tx)

    def abort(self) -> None:
        """Undo a half-done set-up: nothing started stays started."""
        for dev in self.devices:
            if dev.owned and self._api is not None:
                with contextlib.suppress(MgcapError):
                    self._api.stop(dev.ifname)
        self._restore_hwts()
        for out in self.outputs:
            for path in out.files:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.close()

    def close(self) -> None:
        for r in self.readers:
            r.close()
        for dev in self.devices:
            dev.control.close()
        if self._api is not None:
            self._api.close()
            self._api = None

    # -- accounting -----------------------------------------------------

    def kernel_counters(self, dev: Device) -> dict[str, int]:
        now = dev.final if dev.final is not None else dev.control.stats()
        return {k: v - dev.baseline.get(k, 0) for k, v in now.items()}

    def _totals(self, dev: Device, written: int) -> DeviceTotals:
        k = self.kernel_counters(dev)
        dropped = sum(r.dropped for r in dev.readers)
        return DeviceTotals(
            ifname=dev.ifname,
            seen=k["seen_packets"],
            written=written,
            kernel_drops=k["ring_full_drops"] + k["copy_errors"],
            mgdump_drops=dropped,
            not_written=max(k["captured_packets"] - written - dropped, 0),
            hw_stamped=k.get("hw_stamped_packets", 0),
            filtered=k.get("filtered_packets", 0),
            filter=dev.state.filter if dev.has_filter else None,
            filter_found=dev.filter_found,
        )

    def totals(self) -> list[DeviceTotals]:
        assert self.writer is not None
        return [
            self._totals(dev, self.writer.written_per_interface[dev.interface_id])
            for dev in self.devices
        ]

    def statistics(self) -> list[pcapng.InterfaceStatistics]:
        """The ISBs that end each file: counters since the capture started."""
        now = time.time_ns()
        stats = []
        written = self.writer.written_per_interface if self.writer else [0] * len(self.devices)
        for dev in self.devices:
            if dev.control.fd < 0:
                continue
            t = self._totals(dev, written[dev.interface_id])
            hw = ""
            if dev.hardware_stamps:
                hw = f", {t.hw_stamped} captured with the NIC's timestamp"
            rejected = ""
            if dev.has_filter or t.filtered:
                rejected = f", {t.filtered} rejected by the capture filter"
            stats.append(
                pcapng.InterfaceStatistics(
                    interface_id=dev.interface_id,
                    timestamp_ns=now,
                    start_ns=self.start_ns,
                    end_ns=now,
                    ifrecv=t.seen,
                    ifdrop=t.kernel_drops,
                    osdrop=t.mgdump_drops,
                    usrdeliv=t.written,
                    filteraccept=t.seen - t.filtered,
                    comment=(
                        f"mgcap: {t.seen} seen{rejected}, {t.written} written, "
                        f"{t.kernel_drops} dropped by the kernel ring, "
                        f"{t.mgdump_drops} dropped by mgdump{hw}"
                    ),
                )
            )
        return stats
