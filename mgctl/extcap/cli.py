"""mgcap-extcap: mgcap as a Wireshark/tshark capture interface (extcap).

\b
Wireshark calls it:
  mgcap-extcap --extcap-interfaces [--extcap-version=X.Y]
  mgcap-extcap --extcap-interface mgcap:IF --extcap-dlts
  mgcap-extcap --extcap-interface mgcap:IF --extcap-config
  mgcap-extcap --extcap-interface mgcap:IF --extcap-capture-filter EXPR
  mgcap-extcap --extcap-interface mgcap:IF --capture --fifo PATH
               [--extcap-capture-filter EXPR] [--mode auto|mirror|drop]
               [--snaplen N] [--ring-size BYTES] [--hwts off|all|ptp|FILTER]
You install it into Wireshark's extcap folder:
  mgcap-extcap --install [--global | --dir DIR]
  mgcap-extcap --uninstall [--global | --dir DIR]
"""

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from mgctl import __version__
from mgctl.extcap import config, devices, sentences

PROG = "mgcap-extcap"
# the walk-through, where the sources are (an editable install, a checkout)
HELP_DOC = Path(__file__).resolve().parents[2] / "docs" / "wireshark.md"
EXIT_USAGE = 2
EXIT_FAILED = 1


class Usage(Exception):
    """A usage error: one line, exit status 2."""


class Failed(Exception):
    """The request could not be done: one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise Usage(message)


def parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    ext = p.add_argument_group("extcap protocol (Wireshark)")
    ext.add_argument("--extcap-interfaces", action="store_true", help="list the interfaces")
    ext.add_argument(
        "--extcap-version", nargs="?", const="", metavar="X.Y", help="Wireshark's version"
    )
    ext.add_argument("--extcap-interface", metavar="mgcap:IF", help="the interface")
    ext.add_argument("--extcap-dlts", action="store_true", help="the interface's link type")
    ext.add_argument("--extcap-config", action="store_true", help="the interface's options")
    ext.add_argument("--extcap-reload-option", metavar="OPTION", help="(no option reloads)")
    ext.add_argument(
        "--extcap-capture-filter",
        metavar="EXPR",
        help="capture filter (without --capture: check it, print libpcap's error if bad)",
    )
    ext.add_argument("--capture", action="store_true", help="capture into --fifo")
    ext.add_argument("--fifo", metavar="PATH", help="where the PCAP-NG goes")
    ext.add_argument("--extcap-control-in", metavar="PATH", help="(ignored: no toolbar)")
    ext.add_argument("--extcap-control-out", metavar="PATH", help="(ignored: no toolbar)")
    opt = p.add_argument_group("capture options (--extcap-config offers them)")
    opt.add_argument("--mode", metavar="MODE", help="auto (default), mirror or drop")
    opt.add_argument("--snaplen", type=int, metavar="N", help="bytes kept per frame, 0: all")
    opt.add_argument("--ring-size", type=int, metavar="BYTES", help="bytes per CPU ring")
    opt.add_argument("--hwts", metavar="FILTER", help="hardware receive timestamps: off, all, ...")
    inst = p.add_argument_group("installation")
    inst.add_argument("--install", action="store_true", help="install into Wireshark's folder")
    inst.add_argument("--uninstall", action="store_true", help="remove what --install wrote")
    inst.add_argument("--global", dest="global_", action="store_true", help="the global folder")
    inst.add_argument("--dir", metavar="DIR", help="this folder instead of Wireshark's")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return p


def _print(lines: list[str]) -> None:
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def list_interfaces() -> None:
    help_url = HELP_DOC.as_uri() if HELP_DOC.exists() else "docs/wireshark.md of mgcap"
    lines = [sentences.extcap(__version__, help_url)]
    lines += [sentences.interface(d.value, d.display) for d in devices.devices()]
    _print(lines)


def _device(value: str) -> devices.Device:
    try:
        return devices.device(devices.ifname_of(value))
    except devices.UnknownInterface as e:
        raise Failed(str(e)) from None


def check_filter(dev: devices.Device, expr: str) -> None:
    """Wireshark's filter check: nothing on stdout and status 0 if the filter is good,
    libpcap's message (one line) and status 0 if it is not."""
    from mgctl import filter as bpf

    try:
        bpf.compile_filter(expr, 0, dev.link_type, device=dev.ifname)
    except bpf.FilterError as e:
        _print([" ".join(e.message.split())])


def do_install(args: argparse.Namespace) -> None:
    from mgctl.extcap import install

    try:
        folder = Path(args.dir) if args.dir else install.extcap_folder(args.global_)
        if args.install:
            print(f"{PROG}: installed {install.install(folder)}, running {sys.executable}")
        else:
            print(f"{PROG}: removed {install.uninstall(folder)}")
    except install.InstallError as e:
        raise Failed(str(e)) from None


def dispatch(args: argparse.Namespace) -> int:
    if args.install and args.uninstall:
        raise Usage("--install and --uninstall exclude each other")
    if args.install or args.uninstall:
        if args.global_ and args.dir:
            raise Usage("--global and --dir exclude each other")
        do_install(args)
        return 0
    if args.global_ or args.dir:
        raise Usage("--global and --dir go with --install or --uninstall")
    if args.extcap_interfaces:
        list_interfaces()
        return 0
    if args.extcap_interface is None:
        if args.extcap_version is not None:
            list_interfaces()
            return 0
        raise Usage("give --extcap-interfaces, or --extcap-interface mgcap:IF with a request")
    settings = config.settings(args.mode, args.snaplen, args.ring_size, args.hwts)
    try:
        settings.check()
    except ValueError as e:
        raise Usage(str(e)) from None
    dev = _device(args.extcap_interface)
    if args.extcap_dlts:
        name, display = devices.link_type_name(dev.link_type)
        _print([sentences.dlt(dev.link_type, name, display)])
        return 0
    if args.extcap_config:
        if args.extcap_reload_option is None:
            _print(config.config_lines())
        return 0
    expr = args.extcap_capture_filter
    if args.capture:
        if not args.fifo:
            raise Usage("--capture needs --fifo PATH")
        from mgctl.extcap import capture

        return capture.run(
            dev.ifname, args.fifo, settings, " ".join(expr.split()) or None if expr else None
        )
    if expr is not None:
        check_filter(dev, expr)
        return 0
    raise Usage("give --extcap-dlts, --extcap-config, --extcap-capture-filter or --capture")


def main(argv: list[str] | None = None) -> None:
    try:
        code = dispatch(parser().parse_args(argv))
    except Usage as e:
        print(f"{PROG}: {e} ({PROG} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except Failed as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
    raise SystemExit(code)


if __name__ == "__main__":
    main()
