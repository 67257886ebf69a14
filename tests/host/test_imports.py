"""What mgctl and mgdump import to start: each command loads only what it uses.

A Python start-up takes seconds in the emulated test VM (every module counts), and
the ansible modules, the extcap and the tests run mgctl and mgdump as processes.
--help, --version and usage errors load no API (pyroute2, and with it asyncio and
ssl), no spec (yaml), no record layouts (construct) and no pydantic (typer 0.28+
coerces through it: mgctl.typer_speed); `mgctl show` loads no filter compiler, no
pcapng and no timestamp ioctl. Each command runs in a fresh interpreter here, as
its script runs it, and says what was imported.
"""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from mgctl import cli
from mgctl.dump import cli as dump_cli

ROOT = Path(__file__).resolve().parents[2]
# what no command needs before it does its work (pydantic: only for a value typer
# must convert, like -c 0x10)
NEVER_AT_START = {"pydantic", "construct", "mgctl.filter", "mgctl.pcapng", "mgctl.hwtsioctl"}
# what --help, --version and a usage error do without, besides
NOT_FOR_HELP = NEVER_AT_START | {
    "asyncio",
    "ssl",
    "yaml",
    "pyroute2.netlink",  # (the package itself is mgctl.pyroute2_core's stand-in)
    "mgctl.api",
    "mgctl.netlink",
    "mgctl.dump.session",
}

RUN = """
import sys
out, entry, sys.argv = sys.argv[1], sys.argv[2], sys.argv[2:]
module, _, func = entry.partition(":")
try:
    getattr(__import__(module, fromlist=[func]), func)()
except SystemExit:
    pass
with open(out, "w") as f:
    f.write("\\n".join(sys.modules))
"""


def imported(tmp_path: Path, entry: str, *args: str) -> set[str]:
    """The modules that `entry args` imported, and their top-level packages."""
    out = tmp_path / "modules"
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(out), entry, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert out.exists(), proc.stderr
    names = out.read_text().split()
    return {n.partition(".")[0] for n in names} | set(names)


MGCTL = "mgctl.cli:main"
MGDUMP = "mgctl.dump.cli:main"


@pytest.mark.parametrize(
    "argv",
    [
        (MGCTL, "--help"),
        (MGCTL, "-V"),
        (MGCTL, "help", "show"),
        (MGCTL, "start", "--help"),
        (MGCTL, "-s", "-s", "-j", "-p", "nosuchcommand"),
        (MGDUMP, "--help"),
        (MGDUMP, "--version"),
        (MGDUMP, "-c", "0"),  # usage error: -i is required
        ("mgctl.extcap.cli:main", "--extcap-interfaces"),  # Wireshark, at its every start
    ],
)
def test_help_version_and_usage_errors_start_light(tmp_path: Path, argv: tuple[str, ...]) -> None:
    assert not imported(tmp_path, *argv) & NOT_FOR_HELP


def test_show_loads_no_filter_compiler_pcapng_or_ioctl(tmp_path: Path) -> None:
    # without the module it fails at the connection, after loading what show needs
    mods = imported(tmp_path, MGCTL, "-s", "-s", "-j", "show")
    assert "mgctl.netlink" in mods
    assert not mods & NEVER_AT_START


def test_mgdump_capture_loads_no_pydantic(tmp_path: Path) -> None:
    # fails at the start of the capture (no module), options parsed
    mods = imported(tmp_path, MGDUMP, "-i", "lo", "-c", "10", "-w", str(tmp_path / "x"))
    assert "mgctl.dump.session" in mods
    assert "pydantic" not in mods


def _values(command: Any, args: list[str]) -> dict[str, tuple[str, Any]]:
    """The values the command's function would get for args, with their types."""
    got: dict[str, Any] = {}
    command.callback = lambda **kw: got.update(kw)
    command.main(args, standalone_mode=False)
    return {k: (type(v).__name__, v) for k, v in got.items()}


MGDUMP_ARGS = [
    [],
    ["-i", "lo"],
    ["-i", "lo", "-i", "eth0", "tcp", "port", "80"],
    ["-i", "lo", "-w", "-", "-c", "10", "-s", "0", "-B", "1024", "-d", "-d"],
    ["-i", "lo", "-c", "010", "-C", "1.5", "-G", "2", "-W", "3", "--ring-size", "65536"],
    ["-i", "lo", "--mode", "drop", "--hwts", "all", "-q", "--per-ring", "--stats-json", "x"],
    ["--version"],
]


@pytest.mark.parametrize("args", MGDUMP_ARGS)
def test_plain_values_are_what_typer_gives(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """mgctl.typer_speed changes no value, nor its type: with and without it, mgdump's
    and mgctl's functions get the same."""
    fast = _values(typer.main.get_command(dump_cli.app), args)
    monkeypatch.setattr(dump_cli, "plain_values", lambda params: None)
    assert _values(typer.main.get_command(dump_cli.app), args) == fast


@pytest.mark.parametrize("args", [[], ["-s", "-s", "-j", "-p"], ["-n", "blue", "-s"]])
def test_plain_values_of_mgctl_options(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def values() -> dict[str, tuple[str, Any]]:
        group = typer.main.get_command(cli.app)
        ctx = group.make_context("mgctl", [*args, "show"])
        return {k: (type(v).__name__, v) for k, v in ctx.params.items()}

    fast = values()
    monkeypatch.setattr(cli, "plain_values", lambda params: None)
    assert values() == fast
