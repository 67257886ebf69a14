"""The bash completion of mgctl and mgdump: its tables are mgctl's grammar and
mgdump's options, and driven as bash drives it (COMP_WORDS, COMP_CWORD) it offers
the commands, keywords, values and device names."""

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer

from mgctl import cli, grammar
from mgctl.dump import cli as dump_cli

COMPLETIONS = Path(__file__).resolve().parents[2] / "completions"


def bash(script: str, body: str) -> list[str]:
    """The words the body prints (one a line), after sourcing the completion file."""
    p = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", f". {COMPLETIONS / script} && {body}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (p.returncode, p.stderr) == (0, "")
    return p.stdout.split()


def complete(*words: str) -> list[str]:
    """COMPREPLY for the command line `words`, the last being the word completed."""
    func = f"_{words[0]}"
    body = (
        f"COMP_WORDS=({shlex.join(words)}); COMP_CWORD={len(words) - 1}; "
        f'{func}; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    return bash(words[0], body)


def option_names(command: Any) -> list[str]:
    names = [o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
    return [*names, *command.context_settings.get("help_option_names", [])]


def test_first_word_offers_the_commands() -> None:
    reply = complete("mgctl", "")
    assert {"start", "stop", "set", "show", "monitor", "hwtstamp"} <= set(reply)
    assert reply == list(cli.COMMAND_ORDER)
    assert complete("mgctl", "-j", "-n", "ns1", "s") == ["show", "start", "stop", "set"]


def test_device_names_after_dev() -> None:
    assert "lo" in complete("mgctl", "start", "dev", "")
    assert "lo" in complete("mgctl", "hwtstamp", "show", "dev", "l")
    # dev may be left out: the names come with the keywords, until a device is named
    first = complete("mgctl", "st", "")
    assert {"lo", "dev", "mode", "snaplen", "ring-size", "filter"} <= set(first)
    assert complete("mgctl", "st", "lo", "m", "drop", "") == [
        "help",
        "snaplen",
        "ring-size",
        "filter",
    ]
    assert "lo" in complete("mgdump", "-i", "")


def test_values_of_keywords() -> None:
    assert complete("mgctl", "start", "lo", "m", "") == ["drop", "mirror"]
    rx = cli.command_grammars()["hwtstamp set"]["rx"]
    assert isinstance(rx, grammar.Choice)
    assert complete("mgctl", "hwtstamp", "set", "lo", "rx", "") == rx.values
    assert complete("mgctl", "hw", "se", "dev", "lo", "tx", "of") == ["off"]
    assert complete("mgdump", "--hwts", "") == rx.values
    assert complete("mgdump", "--mode", "") == ["mirror", "drop"]


def test_options() -> None:
    assert complete("mgctl", "-") == option_names(typer.main.get_command(cli.app))
    assert "--snapshot-length" in complete("mgdump", "--s")


def test_tables_are_the_grammar() -> None:
    """What the completion knows of mgctl is what mgctl parses."""
    assert bash("mgctl", "echo $_mgctl_commands") == list(cli.COMMAND_ORDER)
    group = typer.main.get_command(cli.app)
    hw = group.get_command(typer.Context(group), "hwtstamp")  # type: ignore[attr-defined]
    assert bash("mgctl", "echo $_mgctl_hwtstamp_commands") == hw.list_commands(None)
    assert bash("mgctl", "echo $_mgctl_options") == option_names(group)
    for name, rules in cli.command_grammars().items():
        assert bash("mgctl", f"_mgctl_keywords {shlex.quote(name)}") == list(rules), name
        for key, read in rules.items():
            values = read.values if isinstance(read, grammar.Choice) else []
            assert bash("mgctl", f"_mgctl_values {key}") == values, (name, key)


@pytest.mark.parametrize("words", [["mgctl", "monitor", ""], ["mgctl", "help", "h"]])
def test_commands_without_keywords(words: list[str]) -> None:
    assert complete(*words) in (["help"], ["hwtstamp", "help"])


def test_mgdump_options_are_its_help() -> None:
    options = option_names(typer.main.get_command(dump_cli.app))
    assert sorted(bash("mgdump", "echo $_mgdump_options")) == sorted(options)
