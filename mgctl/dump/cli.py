"""mgdump: capture with mgcap into PCAP-NG files.

\b
    mgdump -i IF [-i IF ...] [-w FILE|-] [-c N] [-s SNAPLEN] [-C MB] [-G SEC] [-W N]
           [-B KIB] [--mode mirror|drop] [--ring-size BYTES] [--per-ring]
           [--hwts FILTER] [-q] [-F FILE | EXPRESSION]
    mgdump -i IF -d[d[d]] [-s SNAPLEN] [-F FILE | EXPRESSION]
    mgdump -D | --version

EXPRESSION is a tcpdump capture filter (several words are joined with spaces),
run in the kernel before the copy; -d prints its program like tcpdump -d.
A device that is not capturing is started (mirror mode unless --mode says
otherwise, with the filter) and stopped on exit; a device that already captures is
left as it was, and must have the same filter, or mgdump must be given none.
Without -w, one line per packet goes to standard output, as tcpdump prints them.
-s 0 keeps whole frames. Runs until Ctrl-C / SIGTERM / SIGHUP, -c packets, -W
files with -G, the capture ending, or an output error; then finishes the files
(valid up to the last whole packet, with statistics blocks) and prints what was
written and dropped (SIGUSR1: the counts so far, and it goes on).

\b
Exit status: 0 stopped by signal, -c or -W, or the reader of its lines gone; 1
could not start (unknown device, no permission, module not loaded, bad output
path, the device captures with another filter); 2 usage error or a filter libpcap
refuses; 3 the capture ended (device removed or capture stopped by someone else);
4 writing the output failed (disk full, broken pipe of -w -); 5 reading the
capture failed.
"""

import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand
from typer.exceptions import TyperException

from mgctl import uapi
from mgctl.dump.buffer import BLOCK_SIZE
from mgctl.typer_speed import plain_values

if TYPE_CHECKING:
    from mgctl.dump.session import Options, Session

# The capture (session: the API with pyroute2, asyncio and ssl; the readers, the
# writer, pcapng and construct), the filter compiler, -D's listing and --version's
# libpcap are imported where they are used: --help, --version and a usage error
# start without them (a Python start-up takes seconds in the emulated test VM;
# tests/host/test_imports.py keeps it so).

EXIT_SETUP = 1
EXIT_USAGE = 2
EXIT_STATUS = {
    "signal": 0,
    "count": 0,
    "files": 0,
    "closed": 0,
    "ended": 3,
    "error": 4,
    "read-error": 5,
}
# what ends mgdump as Ctrl-C does: SIGHUP too, so that a dropped ssh session does not
# leave a capture running (in drop mode: the device deaf) behind
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

app = typer.Typer(add_completion=False, rich_markup_mode=None)


class Usage(Exception):
    """A usage error found after parsing: one line, exit status 2."""


class BadFilter(Exception):
    """A capture filter libpcap refuses: one line, exit status 2."""


def snaplen_option(snaplen: int | None) -> int | None:
    """-s as tcpdump takes it: 0 is the whole frame (the largest snaplen)."""
    if snaplen == 0:
        return uapi.SNAPLEN_MAX
    if snaplen is not None and not uapi.SNAPLEN_MIN <= snaplen <= uapi.SNAPLEN_MAX:
        raise Usage(f"-s must be 0 (whole frames) or {uapi.SNAPLEN_MIN} to {uapi.SNAPLEN_MAX}")
    return snaplen


def check(opts: "Options") -> None:
    if not opts.write and (opts.rotate_bytes or opts.rotate_seconds or opts.per_ring):
        raise Usage("-C, -G and --per-ring need -w FILE")
    if opts.count is not None and opts.count < 1:
        raise Usage("-c must be at least 1")
    if opts.rotate_bytes is not None and opts.rotate_bytes < 1:
        raise Usage("-C must be positive")
    if opts.rotate_seconds is not None and opts.rotate_seconds <= 0:
        raise Usage("-G must be positive")
    if opts.max_files is not None:
        if opts.max_files < 1:
            raise Usage("-W must be at least 1")
        if opts.rotate_bytes is None and opts.rotate_seconds is None:
            raise Usage("-W needs -C or -G")
    if opts.write == "-" and (opts.rotate_bytes or opts.rotate_seconds or opts.per_ring):
        raise Usage("-C, -G and --per-ring need a file name, not -w -")
    if opts.buffer_bytes < 2 * BLOCK_SIZE:
        raise Usage(f"-B must be at least {2 * BLOCK_SIZE // 1024} KiB")
    if opts.mode not in (None, "mirror", "drop"):
        raise Usage(f'--mode "{opts.mode}" is not mirror or drop')
    if len(set(opts.interfaces)) != len(opts.interfaces):
        raise Usage("a device is named twice with -i")


class Command(TyperCommand):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        plain_values(self.get_params(ctx))  # no pydantic: see mgctl.typer_speed
        return list(super().parse_args(ctx, args))


@app.command(cls=Command, help=__doc__, context_settings={"help_option_names": ["-h", "--help"]})
def mgdump(
    interface: Annotated[
        list[str] | None,
        typer.Option(
            "-i", "--interface", metavar="IF", help="Device to capture (repeat for more)."
        ),
    ] = None,
    expression_words: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="EXPRESSION",
            help="Capture filter, as tcpdump takes it (several words are joined).",
            show_default=False,
        ),
    ] = None,
    write: Annotated[
        str | None,
        typer.Option(
            "-w",
            "--write",
            metavar="FILE",
            help="Output file, '-' for PCAP-NG on standard output (none: a line per packet).",
        ),
    ] = None,
    filter_file: Annotated[
        str | None,
        typer.Option(
            "-F",
            metavar="FILE",
            help="Read the capture filter from FILE ('#' starts a comment).",
        ),
    ] = None,
    dump_program: Annotated[
        int,
        typer.Option(
            "-d",
            count=True,
            help="Print the filter's program (-dd as C, -ddd as numbers) and exit.",
            show_default=False,
        ),
    ] = 0,
    count: Annotated[
        int | None,
        typer.Option(
            "-c",
            metavar="N",
            help="Stop after this many packets.",
        ),
    ] = None,
    snaplen: Annotated[
        int | None,
        typer.Option(
            "-s",
            "--snapshot-length",
            metavar="SNAPLEN",
            help="Bytes kept of each frame (0: the whole frame).",
        ),
    ] = None,
    file_size: Annotated[
        float | None,
        typer.Option(
            "-C",
            metavar="MB",
            help="Start a new file after this many MB (10^6).",
        ),
    ] = None,
    rotate_seconds: Annotated[
        float | None,
        typer.Option(
            "-G",
            metavar="SEC",
            help="Start a new file every SEC seconds.",
        ),
    ] = None,
    file_count: Annotated[
        int | None,
        typer.Option(
            "-W",
            metavar="N",
            help="With -C: reuse N files; with -G: stop after N.",
        ),
    ] = None,
    buffer_kib: Annotated[
        int,
        typer.Option(
            "-B",
            "--buffer-size",
            metavar="KIB",
            help="mgdump's buffer in KiB.",
        ),
    ] = 65536,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode", metavar="MODE", help="mirror or drop, if mgdump starts the capture."
        ),
    ] = None,
    ring_size: Annotated[
        int | None,
        typer.Option(
            "--ring-size", metavar="BYTES", help="Bytes per CPU ring, if mgdump starts it."
        ),
    ] = None,
    per_ring: Annotated[
        bool,
        typer.Option(
            "--per-ring",
            help="One file per ring: NAME.ring<N>.pcapng.",
        ),
    ] = False,
    no_pin: Annotated[
        bool,
        typer.Option(
            "--no-pin",
            help="Do not pin ring readers to their CPUs.",
        ),
    ] = False,
    read_rings: Annotated[
        bool,
        typer.Option(
            "--read",
            help="Copy records out of the rings with read() instead of writing them "
            "from the mapped rings (slower; for comparison).",
        ),
    ] = False,
    hwts: Annotated[
        str | None,
        typer.Option(
            "--hwts",
            metavar="FILTER",
            help="Hardware receive timestamps for the capture: all, ptp, ... (put back on exit).",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "-q",
            "--quiet",
            help="No live status line, no 'listening on' line.",
        ),
    ] = False,
    stats_json: Annotated[
        str | None,
        typer.Option(
            "--stats-json",
            metavar="PATH",
            help="Write the final counters as JSON here.",
        ),
    ] = None,
    list_devices: Annotated[
        bool,
        typer.Option(
            "-D",
            "--list-interfaces",
            help="List the devices, with their flags and mgcap's state, and exit.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the versions of mgdump, mgcap.ko and libpcap."),
    ] = False,
) -> None:
    if version:
        from mgctl.dump import about

        print(about.version_text())
        raise SystemExit(0)
    if list_devices:
        from mgctl.dump import devices

        lines, note = devices.listing()
        print("\n".join(lines))
        if note:
            print(f"mgdump: {note}", file=sys.stderr)
        raise SystemExit(0)
    if not interface:
        raise Usage("-i IF is required (mgdump -D lists the devices)")
    snaplen = snaplen_option(snaplen)
    from mgctl.dump import expression
    from mgctl.dump.session import Options
    from mgctl.filter import FilterError

    if filter_file is not None and expression_words:
        raise Usage("-F and a trailing expression exclude each other")
    file_text = None
    if filter_file is not None:
        try:
            file_text = expression.from_file(filter_file)
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not a text file"
            raise Usage(f"-F {filter_file}: {why}") from None
    expr = expression.expression(expression_words, file_text)
    if dump_program:
        try:
            prog = expression.program(interface[0], expr, snaplen)
        except FilterError as e:
            raise BadFilter(f'filter "{e.expr}": {e.message}') from None
        sys.stdout.write(prog.dump(dump_program))
        raise SystemExit(0)
    opts = Options(
        interfaces=interface,
        write=write or "",
        count=count,
        snaplen=snaplen,
        mode=mode,
        ring_size=ring_size,
        buffer_bytes=buffer_kib * 1024,
        rotate_bytes=None if file_size is None else max(int(file_size * 1e6), 1),
        rotate_seconds=rotate_seconds,
        max_files=file_count,
        per_ring=per_ring,
        pin=not no_pin,
        mapped=not read_rings,
        hwts=hwts,
        filter=expr,
    )
    check(opts)
    if expr is not None:
        try:
            expression.check(expr, opts.interfaces, opts.snaplen)
        except FilterError as e:
            raise BadFilter(f'filter "{e.expr}": {e.message}') from None
    raise SystemExit(run(opts, quiet=quiet, stats_json=stats_json))


def run(opts: "Options", quiet: bool = False, stats_json: str | None = None) -> int:
    from mgctl.dump import summary
    from mgctl.dump.lines import OutputClosed, ignore_sigpipe_at_exit
    from mgctl.dump.output import OutputError
    from mgctl.dump.session import Session, SetupError

    session = Session(opts)
    counts_asked = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        session.request_stop("signal")

    def on_usr1(signum: int, _frame: object) -> None:
        counts_asked.set()  # printed by the main loop at its next tick

    def on_tick(s: "Session") -> None:
        if counts_asked.is_set():
            counts_asked.clear()
            print(summary.counts(summary.as_dict(s), running=True), file=sys.stderr, flush=True)

    # before the set-up: a signal during it must not leave a capture started
    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    signal.signal(signal.SIGUSR1, on_usr1)
    try:
        session.open()
    except (SetupError, OutputError) as e:
        print(f"mgdump: {e}", file=sys.stderr)
        return EXIT_SETUP
    if not quiet:
        for line in session.listening():
            print(f"mgdump: {line}", file=sys.stderr, flush=True)
    if not quiet and sys.stderr.isatty():
        from mgctl.dump.status import StatusLine

        with StatusLine() as status:

            def tick(s: "Session") -> None:
                on_tick(s)
                status.update(s)

            session.run(0.5, tick)
    else:
        session.run(0.5, on_tick)
    if session.writer and isinstance(session.writer.error, OutputClosed):
        # mgdump | head: the reader has all it wanted; end as tcpdump does on SIGPIPE
        session.reason = "closed"
        session.writer.error = None
        ignore_sigpipe_at_exit()
    result = summary.as_dict(session)
    print(summary.text(result), file=sys.stderr)
    for r in session.readers:
        if r.error is not None:
            print(f"mgdump: ring {r.ring}: {r.error.strerror}", file=sys.stderr)
    if session.writer and session.writer.error:
        print(f"mgdump: {session.writer.error}", file=sys.stderr)
    if stats_json:
        summary.write_json(stats_json, result)
    return EXIT_STATUS.get(session.reason, 1)


def main() -> None:
    try:
        app(prog_name="mgdump", standalone_mode=False)
    except TyperException as e:  # what typer's parser refuses
        print(f"mgdump: {e.format_message()} (mgdump --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except Usage as e:
        print(f"mgdump: {e} (mgdump --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except BadFilter as e:
        print(f"mgdump: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except typer.Abort:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
