"""mgctl: iproute2-style control of mgcap capture.

\b
    mgctl start [dev] IF [mode drop|mirror] [snaplen N] [ring-size N] [filter EXPR]
    mgctl stop [dev] IF
    mgctl set [dev] IF [mode drop|mirror] [snaplen N] [filter EXPR|none]
    mgctl show [[dev] IF]
    mgctl monitor
    mgctl hwtstamp show [dev] IF
    mgctl hwtstamp set [dev] IF [rx none|all|ptp|FILTER] [tx off|on]
    mgctl help [COMMAND]

Options before the command: -j (JSON), -p (pretty JSON), -s (statistics; -s -s per
CPU), -n NETNS (in that network namespace, as ip -n), -V (version). Commands match
by unique prefix in a fixed order (show, start, stop, set, monitor, hwtstamp, help),
keywords by unique prefix, like ip; `snaplen 0` is the whole frame.

Exit status: 0 done, 1 refused by the kernel (or module missing, no permission), 2
usage error.
"""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from mgctl import __version__, grammar, output
from mgctl.grammar import HelpRequested
from mgctl.grammar import Usage as Usage  # tests and callers catch cli.Usage
from mgctl.output import Style
from mgctl.typer_speed import plain_values

if TYPE_CHECKING:
    from mgctl.api import Mgcap, MgcapError, Result

# The API (pyroute2, and with it asyncio and ssl), the spec, the filter compiler
# (ctypes, construct) and the namespace code (ctypes) are imported by the commands
# that use them, not here: --help, -V and a usage error start without them, and
# each command with only what it needs (a Python start-up takes seconds in the
# emulated test VM; tests/host/test_imports.py keeps it so).

COMMAND_ORDER = ("show", "start", "stop", "set", "monitor", "hwtstamp", "help")
KEYWORDS = {"allow_extra_args": True, "ignore_unknown_options": True}

# the grammar of each command, as its --help, `help` and usage errors print it
USAGES = {
    "start": "mgctl start [dev] IF [mode drop|mirror] [snaplen N] [ring-size N] [filter EXPR]",
    "stop": "mgctl stop [dev] IF",
    "set": "mgctl set [dev] IF [mode drop|mirror] [snaplen N] [filter EXPR|none]",
    "show": "mgctl [-s [-s]] [-j [-p]] show [[dev] IF]",
    "monitor": "mgctl [-j] monitor",
    "hwtstamp show": "mgctl hwtstamp show [dev] IF",
    "hwtstamp set": "mgctl hwtstamp set [dev] IF [rx none|all|ptp|FILTER] [tx off|on]",
    "help": "mgctl help [COMMAND]",
}


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

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        plain_values(self.get_params(ctx))  # no pydantic: see mgctl.typer_speed
        return list(super().parse_args(ctx, args))


def _usage_of(ctx: Any) -> str:
    """The grammar of the context's command, by its full name (not the prefix typed)."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.command.name)
        ctx = ctx.parent
    return USAGES.get(" ".join(reversed(names)), "")


class KeywordCommand(TyperCommand):
    """A command whose arguments are keywords: its usage is its grammar."""

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        # whole, never wrapped: it is the grammar
        formatter.write(f"Usage: {_usage_of(ctx) or ctx.command_path}\n")

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        plain_values(self.get_params(ctx))  # no pydantic: see mgctl.typer_speed
        return list(super().parse_args(ctx, args))


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


def keywords(
    ctx: typer.Context,
    rules: grammar.Grammar,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The command's arguments by its grammar; `help` among them prints its help."""
    try:
        return grammar.parse_keywords(ctx.args, rules, required, _usage_of(ctx))
    except HelpRequested:
        typer.echo(ctx.get_help())
        raise typer.Exit(0) from None


def _check_filter(kw: dict[str, Any]) -> None:
    """A usage error if libpcap refuses the expression, before anything else happens
    (the module need not even be loaded). The program sent is compiled later, for
    the capture's snaplen and the device as it is."""
    expr = kw.get("filter")
    if expr:
        from mgctl.api import link_type_of
        from mgctl.filter import FilterError, compile_filter

        try:
            compile_filter(expr, 0, link_type_of(kw["dev"]))
        except FilterError as e:
            raise Usage(f'filter "{e.expr}": {e.message}') from None


def fail(err: "MgcapError") -> NoReturn:
    msg = err.message
    typer.echo(f"Error: {msg}{'' if msg.endswith('.') else '.'}", err=True)
    raise typer.Exit(1)


def connect() -> "Mgcap":
    from mgctl import api

    try:
        return api.Mgcap()
    except api.MgcapError as e:
        fail(e)


def style_of(ctx: typer.Context) -> Style:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Style) else Style()


def version_text() -> str:
    """mgctl's version, and the loaded module's if it tells one."""
    lines = [f"mgctl version {__version__}"]
    try:
        loaded = Path("/sys/module/mgcap/version").read_text().strip()
    except OSError:
        loaded = ""
    if loaded:
        lines.append(f"mgcap module version {loaded}")
    return "\n".join(lines)


def _version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit(0)


@app.callback()
def options(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "-j", "--json", help="JSON output."),
    pretty: bool = typer.Option(False, "-p", "--pretty", help="Indent JSON output."),
    stats: int = typer.Option(0, "-s", "--stats", count=True, help="Counters; twice: per CPU."),
    namespace: str | None = typer.Option(
        None,
        "-n",
        "--netns",
        metavar="NETNS",
        help="Run in network namespace NETNS (/run/netns/NETNS), as ip -n does.",
    ),
    version: bool = typer.Option(
        False,
        "-V",
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version of mgctl and of the loaded module.",
    ),
) -> None:
    if namespace is not None:
        from mgctl import netns

        try:
            netns.enter(namespace)
        except netns.NetnsError as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(1) from None
    ctx.obj = Style(json=json_, pretty=pretty, stats=stats)


def _modes() -> list[str]:
    from mgctl import spec

    return list(spec.family().enums["mode"])


def command_grammars() -> dict[str, grammar.Grammar]:
    """Each command's keywords, by its name in USAGES, and how their values are read:
    what the commands parse, and what the man page and the bash completion name."""
    from mgctl import spec

    enums = spec.family().enums
    dev: grammar.Grammar = {"dev": grammar.ifname}
    mode = grammar.choice("mode", _modes())
    return {
        "start": {
            **dev,
            "mode": mode,
            "snaplen": grammar.snaplen,
            "ring-size": grammar.int_in("ring-size"),
            "filter": grammar.filter_expr,
        },
        "stop": dev,
        "set": {**dev, "mode": mode, "snaplen": grammar.snaplen, "filter": grammar.filter_expr},
        "show": dev,
        "monitor": {},
        "hwtstamp show": dev,
        "hwtstamp set": {
            **dev,
            "rx": grammar.choice("rx", list(enums["hwtstamp-rx"]), spec.RX_ALIASES),
            "tx": grammar.choice("tx", list(enums["hwtstamp-tx"])),
        },
    }


@app.command(
    cls=KeywordCommand,
    context_settings=KEYWORDS,
    help="""Start capture.

\b
  dev IF          the device ("dev" may be left out)
  mode            mirror (default) passes each frame on, drop consumes it
  snaplen N       bytes kept of each frame (default 96; 0: the whole frame)
  ring-size N     bytes of ring per CPU, a power of two (default 4 MiB)
  filter EXPR     a capture filter in tcpdump's syntax, one argument

Keywords may be shortened to a unique prefix. Starting a capture that runs with the
same settings changes nothing; one that runs with other settings is an error
(change it with set, or stop it first).""",
)
def start(ctx: typer.Context) -> None:
    kw = keywords(ctx, command_grammars()["start"], required=("dev",))
    _check_filter(kw)
    with connect() as m:
        _run(
            lambda: m.start(
                kw["dev"],
                mode=kw.get("mode"),
                snaplen=kw.get("snaplen"),
                ring_size=kw.get("ring-size"),
                idempotent=True,
                filter=kw.get("filter") or None,
            ),
            style_of(ctx),
            compiles=True,
        )


@app.command(
    cls=KeywordCommand,
    context_settings=KEYWORDS,
    help="Stop capture. Stopping a device that does not capture changes nothing.",
    short_help="Stop capture.",
)
def stop(ctx: typer.Context) -> None:
    kw = keywords(ctx, command_grammars()["stop"], required=("dev",))
    with connect() as m:
        _run(lambda: m.stop(kw["dev"], idempotent=True), style_of(ctx))


@app.command(
    "set",
    cls=KeywordCommand,
    context_settings=KEYWORDS,
    short_help="Change a capture live.",
    help="""Change a capture live.

\b
  dev IF          the device ("dev" may be left out)
  mode            mirror passes each frame on, drop consumes it
  snaplen N       bytes kept of each frame (0: the whole frame)
  filter EXPR     a new capture filter in tcpdump's syntax; none: no filter

Keywords may be shortened to a unique prefix.""",
)
def set_(ctx: typer.Context) -> None:
    kw = keywords(ctx, command_grammars()["set"], required=("dev",))
    if not kw.keys() & {"mode", "snaplen", "filter"}:
        raise Usage(f"nothing to set; usage: {USAGES['set']}")
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
            compiles=True,
        )


def _run(action: Callable[[], "Result"], style: Style, compiles: bool = False) -> None:
    """compiles: the action may compile a filter (start, set), so its errors are
    caught; stop need not load the filter compiler for that."""
    from mgctl.api import MgcapError

    refusals: tuple[type[Exception], ...] = ()
    if compiles:
        from mgctl.filter import FilterError

        refusals = (FilterError,)
    try:
        result = action()
    except MgcapError as e:
        fail(e)
    except refusals as e:
        # libpcap's own words, as tcpdump prints them; nothing reached the kernel
        assert isinstance(e, FilterError)
        raise Usage(f'filter "{e.expr}": {e.message}') from None
    output.change(result, style)


@app.command(
    cls=KeywordCommand,
    context_settings=KEYWORDS,
    help="Show the capturing devices, or one device; -s adds counters, -s -s per CPU.",
    short_help="Show captures.",
)
def show(ctx: typer.Context) -> None:
    from mgctl.api import MgcapError

    kw = keywords(ctx, command_grammars()["show"])
    style = style_of(ctx)
    with connect() as m:
        try:
            states = [m.show(kw["dev"])] if "dev" in kw else m.captures()
        except MgcapError as e:
            fail(e)
    output.show(states, style)


@app.command(
    cls=KeywordCommand,
    context_settings=KEYWORDS,
    help="Print one line per start, change and stop, until interrupted.",
    short_help="Print starts, changes and stops.",
)
def monitor(ctx: typer.Context) -> None:
    from mgctl.api import Lost, MgcapError

    keywords(ctx, command_grammars()["monitor"])
    style = style_of(ctx)
    with connect() as m:
        try:
            for ev in m.monitor():
                if isinstance(ev, Lost):
                    output.lost(ev)
                else:
                    output.event(ev, style)
        except KeyboardInterrupt:
            pass
        except MgcapError as e:
            fail(e)


def help_text(ctx: typer.Context, words: list[str]) -> str:
    """The help of the command the words name (by prefix), the whole list without."""
    cmd_ctx: Any = ctx.find_root()
    for word in words:
        group = cmd_ctx.command
        sub = group.get_command(cmd_ctx, word) if isinstance(group, TyperGroup) else None
        if sub is None:
            raise Usage(f'unknown command "{word}"; usage: {USAGES["help"]}')
        cmd_ctx = typer.Context(sub, parent=cmd_ctx, info_name=sub.name)
    return str(cmd_ctx.get_help())


@app.command("help", cls=KeywordCommand, context_settings=KEYWORDS, help="Help on a command.")
def help_(ctx: typer.Context) -> None:
    typer.echo(help_text(ctx, ctx.args))


@hwtstamp_app.command("help", cls=KeywordCommand, context_settings=KEYWORDS, hidden=True)
def hwtstamp_help(ctx: typer.Context) -> None:
    typer.echo(help_text(ctx, ["hwtstamp", *ctx.args]))


def hwtstamp_set_args(args: list[str]) -> dict[str, Any]:
    """dev, and rx and/or tx (rx "ptp" is ptp-v2-event)."""
    usage = USAGES["hwtstamp set"]
    kw = grammar.parse_keywords(
        args, command_grammars()["hwtstamp set"], required=("dev",), usage=usage
    )
    if "rx" not in kw and "tx" not in kw:
        raise Usage(f"nothing to set; usage: {usage}")
    return kw


@hwtstamp_app.command(
    "show", cls=KeywordCommand, context_settings=KEYWORDS, help="Show timestamping of a device."
)
def hwtstamp_show(ctx: typer.Context) -> None:
    from mgctl.api import MgcapError

    kw = keywords(ctx, command_grammars()["hwtstamp show"], required=("dev",))
    with connect() as m:
        try:
            state = m.hwtstamp_get(kw["dev"])
        except MgcapError as e:
            fail(e)
    output.hwtstamp(state, style_of(ctx))


@hwtstamp_app.command(
    "set",
    cls=KeywordCommand,
    context_settings=KEYWORDS,
    help="Set timestamping; prints what the driver applied (it may widen the receive filter).",
)
def hwtstamp_set(ctx: typer.Context) -> None:
    from mgctl.api import MgcapError

    try:
        kw = hwtstamp_set_args(ctx.args)
    except HelpRequested:
        typer.echo(ctx.get_help())
        raise typer.Exit(0) from None
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
