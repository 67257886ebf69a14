"""mgctl's argument grammar, iproute2's: `keyword value` pairs after the command.

A keyword may be shortened to any prefix that names only it (`mgctl start lo m drop
s 0`); a word that is no keyword names the device, as in `ip link show lo`; `help`
anywhere prints the command's help. Values of a fixed set take unique prefixes too.
Every mistake is a Usage error: one line, exit status 2.
"""

from collections.abc import Callable
from typing import Any

from mgctl import spec, uapi

DEVICE = "dev"


class Usage(Exception):
    """A usage error: one line on stderr, exit status 2."""


class HelpRequested(Exception):
    """`help` among the arguments: print the command's help, exit status 0."""


Grammar = dict[str, Callable[[str], Any]]


def keyword(word: str, names: list[str]) -> str | None:
    """The keyword `word` names: itself, or the only one it is a prefix of (None: no
    keyword). A prefix of several is a usage error."""
    if word in names:
        return word
    hits = [n for n in names if word and n.startswith(word)]
    if len(hits) > 1:
        raise Usage(f'"{word}" is ambiguous: {" or ".join(hits)}')
    return hits[0] if hits else None


def parse_keywords(
    args: list[str], grammar: Grammar, required: tuple[str, ...] = (), usage: str = ""
) -> dict[str, Any]:
    """`key value` pairs: each keyword at most once, in any order, by unique prefix; a
    word that is no keyword is the device if the grammar has one and it is not given."""
    out: dict[str, Any] = {}
    names = [*grammar, "help"]
    i = 0
    while i < len(args):
        word = args[i]
        key = keyword(word, names)
        if key == "help":
            raise HelpRequested
        if key is None:
            if DEVICE not in grammar or DEVICE in out:
                raise Usage(f'unknown argument "{word}"; usage: {usage}')
            out[DEVICE] = grammar[DEVICE](word)
            i += 1
            continue
        if i + 1 >= len(args):
            raise Usage(f'"{key}" needs a value; usage: {usage}')
        if key in out:
            raise Usage(f'"{key}" given twice')
        out[key] = grammar[key](args[i + 1])
        i += 2
    for key in required:
        if key not in out:
            what = "a device" if key == DEVICE else f'"{key}"'
            raise Usage(f"{what} is required; usage: {usage}")
    return out


def int_in(name: str, attr_set: str = "dev") -> Callable[[str], int]:
    """A number in the range the spec's checks give the attribute."""
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


def snaplen(text: str) -> int:
    """1 to SNAPLEN_MAX bytes; 0 is the whole frame (SNAPLEN_MAX), as in tcpdump -s 0."""
    try:
        value = int(text, 0)
    except ValueError:
        raise Usage(f'snaplen "{text}" is not a number') from None
    if value == 0:
        return int(uapi.SNAPLEN_MAX)
    if not uapi.SNAPLEN_MIN <= value <= uapi.SNAPLEN_MAX:
        raise Usage(
            f"snaplen {value} out of range ({uapi.SNAPLEN_MIN} to {uapi.SNAPLEN_MAX}, "
            "or 0 for the whole frame)"
        )
    return value


class Choice:
    """One of choices (or an alias of one), by unique prefix: a keyword's reader that
    tells its values (the completion offers them, the man page lists them)."""

    def __init__(
        self, name: str, choices: list[str], aliases: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.choices = choices
        self.aliases = aliases or {}

    @property
    def values(self) -> list[str]:
        """What may be typed in full: the choices, then the aliases."""
        return [*self.choices, *(a for a in self.aliases if a not in self.choices)]

    def __call__(self, text: str) -> str:
        text = self.aliases.get(text, text)
        try:
            hit = keyword(text, self.choices)
        except Usage:
            hit = None
        if hit is None:
            raise Usage(f'{self.name} "{text}" is not one of {", ".join(self.choices)}')
        return hit


def choice(name: str, choices: list[str], aliases: dict[str, str] | None = None) -> Choice:
    """One of choices (or an alias of one), by unique prefix."""
    return Choice(name, choices, aliases)


def ifname(text: str) -> str:
    if not text or len(text) > 15 or "/" in text or text.strip() != text:
        raise Usage(f'"{text}" is not a valid device name')
    return text


def filter_expr(text: str) -> str:
    """A tcpdump expression (one argument: quote it); "none" means no filter."""
    return "" if text.strip() in ("", "none") else text
