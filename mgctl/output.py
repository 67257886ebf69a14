"""How mgctl prints: one function per kind of output, each writing text or JSON from
the same fields (iproute2's habit: -j changes the form, never the content).

The text is `ip -s link`'s kind: plain lines, the same on a terminal and in a pipe.
Counters stand in columns as wide as their widest value or name, so nothing is ever
cut; a line longer than the terminal wraps there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotations only: mgctl --help does not load the API
    from mgctl.api import DevState, Event, HwTstamp, Lost, Result


@dataclass(frozen=True)
class Style:
    json: bool = False
    pretty: bool = False
    stats: int = 0


def emit_json(obj: Any, style: Style) -> None:
    import json  # only for -j

    print(json.dumps(obj, indent=2 if style.pretty else None, sort_keys=False))
    sys.stdout.flush()


def _settings_text(s: DevState) -> str:
    if not s.capturing:
        return "not capturing"
    text = (
        f"capturing mode {s.mode} snaplen {s.snaplen} ring-size {s.ring_size} "
        f"rings {s.nr_rings} chardev {s.chardev}"
    )
    if s.hwtstamp_rx is not None:
        text += f" hwtstamp rx {s.hwtstamp_rx} tx {s.hwtstamp_tx}"
    if s.filter_program is not None:
        text += f' filter "{s.filter}"' if s.filter else f" filter ({s.filter_insns} insns)"
    if s.owner_portid is not None:
        text += f" owner portid {s.owner_portid}"
    return text


# the counters in two groups of columns, as `ip -s link` has RX and TX: what was seen
# and where it went (seen = captured + filtered + ring-full-drops + copy-errors), then
# what was captured
STAT_GROUPS = (
    (
        "seen",
        (
            ("packets", "seen_packets"),
            ("bytes", "seen_bytes"),
            ("filtered", "filtered_packets"),
            ("ring-full-drops", "ring_full_drops"),
            ("copy-errors", "copy_errors"),
        ),
    ),
    (
        "captured",
        (
            ("packets", "captured_packets"),
            ("bytes", "captured_bytes"),
            ("hw-stamped", "hw_stamped_packets"),
            ("consumed", "consumed_packets"),
        ),
    ),
)


def stats_lines(rows: list[tuple[str, dict[str, int]]]) -> list[str]:
    """Each group's header, then one line per (label, counters) row: the totals
    (label "") and, with -s -s, each ring ("cpu N")."""
    label_w = max(len(title) + 1 for title, _ in STAT_GROUPS)
    label_w = max(label_w, *(len(label) for label, _ in rows))
    lines = []
    for title, cols in STAT_GROUPS:
        widths = [
            max(len(name), *(len(str(st.get(key, 0))) for _, st in rows)) for name, key in cols
        ]
        head = "".join(f"  {name:>{w}}" for (name, _), w in zip(cols, widths, strict=True))
        lines.append(f"    {title + ':':<{label_w}}{head}")
        for label, st in rows:
            cells = "".join(
                f"  {st.get(key, 0):>{w}}" for (_, key), w in zip(cols, widths, strict=True)
            )
            lines.append(f"    {label:<{label_w}}{cells}")
    return lines


def show(states: list[DevState], style: Style) -> None:
    if style.json:
        emit_json([s.to_json(style.stats) for s in states], style)
        return
    for s in states:
        print(f"{s.ifindex}: {s.ifname}: {_settings_text(s)}")
        if style.stats >= 1 and s.stats:
            rows = [("", s.stats)]
            if style.stats >= 2:
                rows += [(f"cpu {c['cpu']}", c) for c in s.cpu_stats]
            for line in stats_lines(rows):
                print(line)
    sys.stdout.flush()


def change(result: Result, style: Style) -> None:
    """Mutating commands: silent in text (like ip), {"changed": ..} with -j."""
    if style.json:
        emit_json({"changed": result.changed, "dev": result.state.to_json(style.stats)}, style)


def event(ev: Event, style: Style) -> None:
    s = ev.state
    if style.json:
        emit_json({"event": ev.kind, **s.to_json(max(style.stats, 1))}, style)
        return
    line = f"{ev.kind} dev {s.ifname}"
    if ev.kind == "stop":
        st = s.stats
        line += (
            f" seen {st.get('seen_packets', 0)} captured {st.get('captured_packets', 0)}"
            f" ring-full-drops {st.get('ring_full_drops', 0)}"
        )
        if s.filter_program is not None or st.get("filtered_packets"):
            line += f" filtered {st.get('filtered_packets', 0)}"
    else:
        line += f" mode {s.mode} snaplen {s.snaplen} ring-size {s.ring_size}"
        if s.filter_program is not None:
            line += f' filter "{s.filter}"' if s.filter else f" filter ({s.filter_insns} insns)"
    print(line, flush=True)


def hwtstamp(state: HwTstamp, style: Style) -> None:
    if style.json:
        emit_json(state.to_json(), style)
    else:
        print(f"{state.ifname}: rx {state.rx} tx {state.tx}")


def lost(ev: Lost) -> None:
    """Notifications the kernel dropped: one line on stderr, in both forms (the events
    that follow are printed as usual)."""
    what = "events" if ev.count != 1 else "event"
    print(f"mgctl: {ev.count} {what} lost (receive buffer overrun)", file=sys.stderr, flush=True)
