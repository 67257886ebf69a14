"""The man pages mgctl(8) and mgdump(8), made from what --help prints.

Each page's source is a roff template, man/src/NAME.8.in, holding the hand-written
parts (the opening of DESCRIPTION, FILES, EXAMPLES, SEE ALSO); its placeholder
lines are filled from the command's typer definition, the same data --help
prints: @NAME@ (the help's first line), @SYNOPSIS@ (its first unwrapped block),
@DESCRIPTION@ (its other paragraphs), @EXIT_STATUS@ (the paragraph that begins
"Exit status:"), @OPTIONS@ (the options, as --help lists them) and, for mgctl,
@COMMANDS@ (each command's grammar, help and keywords with their values).

    python -m mgctl.manpage [DIR]    writes DIR/mgctl.8 and DIR/mgdump.8 (DIR: man)

tests/host/test_man_pages.py fails when a committed page is not what this makes.
"""

import inspect
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from mgctl import cli, grammar
from mgctl.dump import cli as dump_cli

NO_WRAP = "\b"
EXIT_STATUS = "Exit status:"
# typer's commands, parameters and contexts are click's (which typer may carry inside
# itself): read through their attributes, not click's classes
Command = Any
Context = Any
# "  key VALUE      what it does": a row of a command's keyword table
TABLE_ROW = re.compile(r"^\s+(\S+(?: \S+)*)\s{2,}(\S.*)$")


def escape(text: str) -> str:
    """Text as roff prints it: backslashes kept, a leading dash a minus (options),
    a line that would begin with a control character made plain."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w-])-", r"\\-", text)
    text = re.sub(r"(?<=\\-)-", r"\\-", text)  # the second dash of --option
    return "\n".join("\\&" + ln if ln[:1] in (".", "'") else ln for ln in text.split("\n"))


def term(words: str) -> str:
    """A keyword or option with its value: the first word bold, the rest italic."""
    head, _, rest = words.partition(" ")
    out = f"\\fB{escape(head)}\\fR"
    return f"{out} \\fI{escape(rest)}\\fR" if rest else out


@dataclass
class Paragraph:
    lines: list[str]
    unwrapped: bool  # a "\b" block of click's help: printed as written


def paragraphs(help_text: str) -> list[Paragraph]:
    out = []
    for block in re.split(r"\n\s*\n", inspect.cleandoc(help_text)):
        lines = block.split("\n")
        if lines[0].strip() == NO_WRAP:
            out.append(Paragraph(lines[1:], True))
        else:
            out.append(Paragraph([ln.strip() for ln in lines], False))
    return out


def render(p: Paragraph) -> str:
    """A paragraph of help as roff: filled text, a keyword table (.TP), or lines
    kept as they are."""
    if not p.unwrapped:
        return ".PP\n" + escape("\n".join(p.lines))
    rows = [TABLE_ROW.match(ln) for ln in p.lines]
    if all(rows):
        table = "\n".join(
            f".TP 16\n{term(m.group(1))}\n{escape(m.group(2))}" for m in rows if m is not None
        )
        return f".PP\n.PD 0\n{table}\n.PD"
    indent = min(len(ln) - len(ln.lstrip()) for ln in p.lines if ln.strip())
    body = escape("\n".join(ln[indent:] for ln in p.lines))
    return f".PP\n.RS 4\n.nf\n{body}\n.fi\n.RE"


@dataclass
class HelpParts:
    name: str
    synopsis: str
    description: str
    exit_status: str


def help_parts(prog: str, command: Command) -> HelpParts:
    """NAME, SYNOPSIS, DESCRIPTION and EXIT STATUS from the command's help."""
    first, *rest = paragraphs(command.help or "")
    summary = " ".join(first.lines).removeprefix(f"{prog}:").strip().rstrip(".")
    synopsis = next(p for p in rest if p.unwrapped)
    indent = min(len(ln) - len(ln.lstrip()) for ln in synopsis.lines if ln.strip())
    syn = ".nf\n" + escape("\n".join(ln[indent:] for ln in synopsis.lines)) + "\n.fi"
    exits = [p for p in rest if " ".join(p.lines).strip().startswith(EXIT_STATUS)]
    others = [p for p in rest if p is not synopsis and p not in exits]
    exit_text = " ".join(ln.strip() for p in exits for ln in p.lines)
    return HelpParts(
        name=f"{prog} \\- {escape(summary)}",
        synopsis=syn,
        description="\n".join(render(p) for p in others),
        exit_status=".PP\n" + escape(exit_text.removeprefix(EXIT_STATUS).strip()),
    )


def params_of(command: Command, ctx: Context) -> Iterator[Any]:
    yield from (p for p in command.params if not getattr(p, "hidden", False))
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        yield help_option


def options(command: Command, ctx: Context) -> str:
    """Each option (and argument) with its value and help, as --help lists them."""
    out = []
    for p in params_of(command, ctx):
        help_text = getattr(p, "help", None) or ""
        if p.param_type_name == "option":
            # short names first (click keeps the help option's names in a set,
            # whose order changes with every interpreter's hash seed)
            opts = sorted([*p.opts, *p.secondary_opts], key=lambda o: o.startswith("--"))
            names = ", ".join(f"\\fB{escape(o)}\\fR" for o in opts)
            takes_value = not p.is_flag and not p.count
            value = f" \\fI{escape(p.metavar or (p.name or '').upper())}\\fR" if takes_value else ""
            if takes_value and p.default is not None and p.show_default is not False:
                help_text = f"{help_text} (default: {p.default})"
            out.append(f".TP\n{names}{value}\n{escape(help_text)}")
        else:
            name = p.metavar or (p.name or "").upper()
            out.append(f".TP\n\\fI{escape(name)}\\fR\n{escape(help_text)}")
    return "\n".join(out)


def keyword_values(rules: grammar.Grammar) -> str:
    """The command's keywords, and the values of those that take one of a set."""
    words = []
    for key, read in rules.items():
        if isinstance(read, grammar.Choice):
            values = ", ".join(f"\\%{escape(v)}" for v in read.values)
            words.append(f"\\fB{key}\\fR ({values})")
        else:
            words.append(f"\\fB{key}\\fR")
    return ".PP\nKeywords: " + ", ".join(words) + "." if words else ""


def commands(group: TyperGroup, ctx: Context) -> str:
    """Each command of mgctl: its grammar, its help and its keywords."""
    grammars = cli.command_grammars()
    out = []

    def walk(g: TyperGroup, g_ctx: Context, prefix: str) -> None:
        for name in g.list_commands(g_ctx):
            cmd = g.get_command(g_ctx, name)
            if cmd is None or cmd.hidden:
                continue
            full = f"{prefix}{name}"
            if isinstance(cmd, TyperGroup):
                walk(cmd, typer.Context(cmd, parent=g_ctx, info_name=name), f"{full} ")
                continue
            parts = [f".SS {full}", ".nf", escape(cli.USAGES[full]), ".fi"]
            parts += [render(p) for p in paragraphs(cmd.help or "")]
            if full in grammars:
                parts.append(keyword_values(grammars[full]))
            out.append("\n".join(p for p in parts if p))

    walk(group, ctx, "")
    return "\n".join(out)


@dataclass
class Page:
    name: str
    command: Command
    sections: Callable[[Command, Context], dict[str, str]]


def _mgctl_sections(command: Command, ctx: Context) -> dict[str, str]:
    assert isinstance(command, TyperGroup)
    return {"COMMANDS": commands(command, ctx)}


def _no_sections(command: Command, ctx: Context) -> dict[str, str]:
    return {}


def pages() -> list[Page]:
    return [
        Page("mgctl", typer.main.get_command(cli.app), _mgctl_sections),
        Page("mgdump", typer.main.get_command(dump_cli.app), _no_sections),
    ]


def generate(page: Page, template: str) -> str:
    """The page: the template with its placeholder lines filled."""
    ctx = typer.Context(page.command, info_name=page.name, **page.command.context_settings)
    parts = help_parts(page.name, page.command)
    fill: dict[str, Any] = {
        "NAME": parts.name,
        "SYNOPSIS": parts.synopsis,
        "DESCRIPTION": parts.description,
        "EXIT_STATUS": parts.exit_status,
        "OPTIONS": options(page.command, ctx),
        **page.sections(page.command, ctx),
    }
    out = []
    for line in template.splitlines():
        m = re.fullmatch(r"@([A-Z_]+)@", line)
        out.append(str(fill[m.group(1)]) if m else line)
    return "\n".join(out) + "\n"


def template_of(name: str, man_dir: Path) -> Path:
    return man_dir / "src" / f"{name}.8.in"


def main() -> None:
    man_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "man")
    for page in pages():
        text = generate(page, template_of(page.name, man_dir).read_text())
        (man_dir / f"{page.name}.8").write_text(text)
        print(man_dir / f"{page.name}.8")


if __name__ == "__main__":
    main()
