"""The man pages mgctl(8) and mgdump(8): what mgctl.manpage makes of --help, so they
name every option, command and keyword --help names; man and groff render them
without a warning."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mgctl import cli, grammar, manpage
from mgctl.dump import cli as dump_cli

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man"
PAGES = {p.name: p for p in manpage.pages()}
runner = CliRunner()


def page_text(name: str) -> str:
    """The committed page, its roff escapes undone (\\fB, \\-, \\e, \\&, \\%)."""
    text = (MAN / f"{name}.8").read_text()
    text = re.sub(r"\\f[BIRP]", "", text)
    for esc, plain in (("\\-", "-"), ("\\&", ""), ("\\%", ""), ("\\(dq", '"'), ("\\e", "\\")):
        text = text.replace(esc, plain)
    return text


def help_options(args: list[str], app: object) -> set[str]:
    """Every -x and --long-option of the Options section of --help."""
    out = runner.invoke(app, [*args, "--help"], terminal_width=200).output  # type: ignore[arg-type]
    section = out.split("Options:", 1)[1].split("Commands:", 1)[0]
    return set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", section))


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_page_is_what_help_makes(name: str) -> None:
    page = PAGES[name]
    made = manpage.generate(page, manpage.template_of(name, MAN).read_text())
    assert (MAN / f"{name}.8").read_text() == made, (
        f"man/{name}.8 is not what --help makes: run python -m mgctl.manpage man"
    )


def test_mgctl_page_names_every_option_command_and_keyword() -> None:
    text = page_text("mgctl")
    options = help_options([], cli.app)
    assert {"-j", "--json", "-n", "--netns", "-s", "-V", "-h"} <= options
    for opt in options:
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text), opt
    for name, rules in cli.command_grammars().items():
        assert f".SS {name}\n" in text
        assert cli.USAGES[name] in text
        for key, read in rules.items():
            assert re.search(rf"\b{re.escape(key)}\b", text.split(f".SS {name}\n")[1]), key
            if isinstance(read, grammar.Choice):
                for value in read.values:
                    assert value in text, (name, key, value)
    assert ".SS help\n" in text


def test_mgdump_page_names_every_option() -> None:
    text = page_text("mgdump")
    options = help_options([], dump_cli.app)
    assert {"-i", "--interface", "-w", "-C", "-G", "-W", "--hwts", "-D", "-h"} <= options
    for opt in options:
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text), opt
    assert "EXPRESSION" in text
    assert "5 reading the capture failed" in text


@pytest.mark.parametrize("name", sorted(PAGES))
def test_groff_finds_nothing_to_warn_about(name: str) -> None:
    p = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(MAN / f"{name}.8")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (p.returncode, p.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("man") is None, reason="no man(1)")
@pytest.mark.parametrize("name", sorted(PAGES))
def test_man_renders_the_page(name: str) -> None:
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": ""}
    p = subprocess.run(
        ["man", "--warnings=w", "-l", "-Tutf8", str(MAN / f"{name}.8")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (p.returncode, p.stderr) == (0, "")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{section}\n" in re.sub(r".\x08", "", p.stdout), section
