"""mgctl: iproute2-style control of mgcap capture.

\b
    mgctl start dev IF [mode drop|mirror] [snaplen N] [ring-size N] [filter EXPR]
    mgctl stop dev IF
    mgctl set dev IF [mode drop|mirror] [snaplen N] [filter EXPR|none]
    mgctl show [dev IF]
    mgctl monitor
    mgctl hwtstamp show dev IF
    mgctl hwtstamp set dev IF [rx none|all|ptp|FILTER] [tx off|on]

Options before the command: -j (JSON), -p (pretty JSON), -s (statistics; -s -s per
CPU). Commands match by unique prefix in a fixed order (show, start, stop, set,
monitor, hwtstamp, help), like ip. Exit status: 0 done, 1 refused by the kernel
(or module missing, no permission), 2 usage error.
"""

from collections.abc import Callable
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from mgctl import output, spec
from mgctl.api import RX_ALIASES, Mgcap, MgcapError, Result, link_type_of
from mgctl.filter import FilterError, compile_filter
from mgctl.output import Style

COMMAND_ORDER = ("show", "start", "stop", "set", "monitor", "hwtstamp", "help")
KEYWORDS = {"allow_extra_args": True, "ignore_unknown_options": True}


class PrefixGroup(TyperGroup):
    """Commands by unique prefix, resolved in COMMAND_ORDER (so `mgctl s` is show)."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        exact = super().get_command(ctx, cmd_name)
        if exact is not None:
            return exact
        for name in (*COMMAND_ORDER, *sorted(self.list_commands(ctx))):
            if name.startswith(cmd_name):
                return super().get_command(ctx, name)
        return None

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else 99)


app = typer.Typer(
    cls=PrefixGroup,
    add_completion=False,
    no_args_is_help=True,
    help=__doc__,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
hwtstamp_app = typer.Typer(cls=PrefixGroup, no_args_is_help=True, rich_markup_mode=None)
app.add_typer(hwtstamp_app, name="hwtstamp", help="Hardware timestamping of a device.")


class Usage(Exception):
    """A usage error: one line on stderr, exit status 2."""


def _int_in(name: str, attr_set: str = "dev") -> Callable[[str], int]:
    checks = spec.family().attr(attr_set, name).checks

    def conv(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise Usage(f'{name} "{text}" is not a number') from None
        lo, hi = checks.get("min"), checks.get("max")
        if (lo is not None and value < int(lo)) or (hi is not None and value > int(hi)):
            raise Usage(f"{name} {value} out of range ({lo} to {hi})")
        return value

    return conv


def _choice(name: str, choices: list[str], aliases: dict[str, str] | None = None) -> Any:
    def conv(text: str) -> str:
        text = (aliases or {}).get(text, text)
        if text not in choices:
            raise Usage(f'{name} "{text}" is not one of {", ".join(choices)}')
        return text

    return conv


def _ifname(text: str) -> str:
    if not text or len(text) > 15 or "/" in text or text.strip() != text:
        raise Usage(f'"{text}" is not a valid device name')
    return text


def _filter_expr(text: str) -> str:
    """A tcpdump expression (one argument: quote it); "none" means no filter."""
    return "" if text.strip() in ("", "none") else text


def _check_filter(kw: dict[str, Any]) -> None:
    """A usage error if libpcap refuses the expression, before anything else happens
    (the module need not even be loaded). The program sent is compiled later, for
    the capture's snaplen and the device as it is."""
    expr = kw.get("filter")
    if expr:
        try:
            compile_filter(expr, 0, link_type_of(kw["dev"]))
        except FilterError as e:
            raise Usage(f'filter "{e.expr}": {e.message}') from None


def parse_keywords(
    args: list[str],
    grammar: dict[str, Callable[[str], Any]],
    required: tuple[str, ...] = (),
    usage: str = "",
) -> dict[str, Any]:
    """`key value` pairs, iproute2 style: keywords exact, each at most once."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        key = args[i]
        if key == "help":
            typer.echo(f"Usage: {usage}")
            raise typer.Exit(0)
        if key not in grammar:
            raise Usage(f'unknown argument "{key}"; usage: {usage}')
        if i + 1 >= len(args):
            raise Usage(f'"{key}" needs a value; usage: {usage}')
        if key in out:
            raise Usage(f'"{key}" given twice')
        out[key] = grammar[key](args[i + 1])
        i += 2
    for key in required:
        if key not in out:
            raise Usage(f'"{key}" is required; usage: {usage}')
    return out


def fail(err: MgcapError) -> NoReturn:
    msg = err.message
    typer.echo(f"Error: {msg}{'' if msg.endswith('.') else '.'}", err=True)
    raise typer.Exit(1)


def connect() -> Mgcap:
    try:
        return Mgcap()
    except MgcapError as e:
        fail(e)


def style_of(ctx: typer.Context) -> Style:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Style) else Style()


@app.callback()
def options(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "-j", "--json", help="JSON output."),
    pretty: bool = typer.Option(False, "-p", "--pretty", help="Indent JSON output."),
    stats: int = typer.Option(0, "-s", "--stats", count=True, help="Counters; twice: per CPU."),
) -> None:
    ctx.obj = Style(json=json_, pretty=pretty, stats=stats)


def _modes() -> list[str]:
    return list(spec.family().enums["mode"])


START_USAGE = "mgctl start dev IF [mode drop|mirror] [snaplen N] [ring-size N] [filter EXPR]"


@app.command(context_settings=KEYWORDS, help=f"Start capture. {START_USAGE}")
def start(ctx: typer.Context) -> None:
    kw = parse_keywords(
        ctx.args,
        {
            "dev": _ifname,
            "mode": _choice("mode", _modes()),
            "snaplen": _int_in("snaplen"),
            "ring-size": _int_in("ring-size"),
            "filter": _filter_expr,
        },
        required=("dev",),
        usage=START_USAGE,
    )
    _check_filter(kw)
    style = style_of(ctx)
    with connect() as m:
        _run(
            lambda: m.start(
                kw["dev"],
                mode=kw.get("mode"),
                snaplen=kw.get("snaplen"),
                ring_size=kw.get("ring-size"),
                idempotent=style.json,
                filter=kw.get("filter") or None,
            ),
            style,
        )


STOP_USAGE = "mgctl stop dev IF"


@app.command(context_settings=KEYWORDS, help=f"Stop capture. {STOP_USAGE}")
def stop(ctx: typer.Context) -> None:
    kw = parse_keywords(ctx.args, {"dev": _ifname}, required=("dev",), usage=STOP_USAGE)
    style = style_of(ctx)
    with connect() as m:
        _run(lambda: m.stop(kw["dev"], idempotent=style.json), style)


SET_USAGE = "mgctl set dev IF [mode drop|mirror] [snaplen N] [filter EXPR|none]"


@app.command("set", context_settings=KEYWORDS, help=f"Change a capture live. {SET_USAGE}")
def set_(ctx: typer.Context) -> None:
    kw = parse_keywords(
        ctx.args,
        {
            "dev": _ifname,
            "mode": _choice("mode", _modes()),
            "snaplen": _int_in("snaplen"),
            "filter": _filter_expr,
        },
        required=("dev",),
        usage=SET_USAGE,
    )
    if not kw.keys() & {"mode", "snaplen", "filter"}:
        raise Usage(f"nothing to set; usage: {SET_USAGE}")
    _check_filter(kw)
    expr = kw.get("filter")
    with connect() as m:
        _run(
            lambda: m.set(
                kw["dev"],
                mode=kw.get("mode"),
                snaplen=kw.get("snaplen"),
                filter=expr or None,
                clear_filter=expr == "",
            ),
            style_of(ctx),
        )


def _run(action: Callable[[], Result], style: Style) -> None:
    try:
        result = action()
    except MgcapError as e:
        fail(e)
    except FilterError as e:
        # libpcap's own words, as tcpdump prints them; nothing reached the kernel
        raise Usage(f'filter "{e.expr}": {e.message}') from None
    output.change(result, style)


SHOW_USAGE = "mgctl [-s [-s]] [-j [-p]] show [dev IF]"


@app.command(context_settings=KEYWORDS, help=f"Show captures. {SHOW_USAGE}")
def show(ctx: typer.Context) -> None:
    kw = parse_keywords(ctx.args, {"dev": _ifname}, usage=SHOW_USAGE)
    style = style_of(ctx)
    with connect() as m:
        try:
            states = [m.show(kw["dev"])] if "dev" in kw else m.captures()
        except MgcapError as e:
            fail(e)
    output.show(states, style)


@app.command(context_settings=KEYWORDS, help="Print one line per start, set and stop.")
def monitor(ctx: typer.Context) -> None:
    parse_keywords(ctx.args, {}, usage="mgctl [-j] monitor")
    style = style_of(ctx)
    with connect() as m:
        try:
            for ev in m.monitor():
                output.event(ev, style)
        except KeyboardInterrupt:
            pass
        except MgcapError as e:
            fail(e)


@app.command("help", help="This help.")
def help_(ctx: typer.Context) -> None:
    typer.echo(ctx.find_root().get_help())


HWT_SHOW_USAGE = "mgctl hwtstamp show dev IF"
HWT_SET_USAGE = "mgctl hwtstamp set dev IF [rx none|all|ptp|FILTER] [tx off|on]"


def hwtstamp_set_args(args: list[str]) -> dict[str, Any]:
    """dev, and rx and/or tx (rx "ptp" is ptp-v2-event)."""
    enums = spec.family().enums
    kw = parse_keywords(
        args,
        {
            "dev": _ifname,
            "rx": _choice("rx", list(enums["hwtstamp-rx"]), RX_ALIASES),
            "tx": _choice("tx", list(enums["hwtstamp-tx"])),
        },
        required=("dev",),
        usage=HWT_SET_USAGE,
    )
    if "rx" not in kw and "tx" not in kw:
        raise Usage(f"nothing to set; usage: {HWT_SET_USAGE}")
    return kw


@hwtstamp_app.command("show", context_settings=KEYWORDS, help=HWT_SHOW_USAGE)
def hwtstamp_show(ctx: typer.Context) -> None:
    kw = parse_keywords(ctx.args, {"dev": _ifname}, required=("dev",), usage=HWT_SHOW_USAGE)
    with connect() as m:
        try:
            state = m.hwtstamp_get(kw["dev"])
        except MgcapError as e:
            fail(e)
    output.hwtstamp(state, style_of(ctx))


@hwtstamp_app.command("set", context_settings=KEYWORDS, help=HWT_SET_USAGE)
def hwtstamp_set(ctx: typer.Context) -> None:
    """Prints what the driver applied (it may widen the receive filter)."""
    kw = hwtstamp_set_args(ctx.args)
    with connect() as m:
        try:
            state = m.hwtstamp_set(kw["dev"], kw.get("rx"), kw.get("tx"))
        except MgcapError as e:
            fail(e)
    output.hwtstamp(state, style_of(ctx))


def main() -> None:
    try:
        app(prog_name="mgctl", standalone_mode=True)
    except Usage as e:
        typer.echo(f"Error: {e}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
