"""The extcap grammar's sentences: `kind {key=value}{key=value}...`, one a line.

Wireshark's parser takes a value up to the next '}', so a value cannot hold a
brace; values here never do (device names with one are not listed).
"""

from collections.abc import Iterable


class BadValue(ValueError):
    """A value the grammar cannot carry."""


def sentence(kind: str, fields: Iterable[tuple[str, object]]) -> str:
    parts = []
    for key, value in fields:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "{" in text or "}" in text or "\n" in text:
            raise BadValue(f"{key}={text!r}: braces and newlines cannot be carried")
        parts.append(f"{{{key}={text}}}")
    return f"{kind} {''.join(parts)}"


def extcap(version: str, help_url: str) -> str:
    return sentence("extcap", [("version", version), ("help", help_url)])


def interface(value: str, display: str) -> str:
    return sentence("interface", [("value", value), ("display", display)])


def dlt(number: int, name: str, display: str) -> str:
    return sentence("dlt", [("number", number), ("name", name), ("display", display)])
