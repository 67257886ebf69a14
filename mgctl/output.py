"""How mgctl prints: one function per kind of output, each writing text, JSON or a
rich table from the same fields (iproute2's habit: -j changes the form, never the
content). Tables only on a terminal; plain text in a pipe.
"""

import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from mgctl.api import STAT_KEYS, DevState, Event, HwTstamp, Result


@dataclass(frozen=True)
class Style:
    json: bool = False
    pretty: bool = False
    stats: int = 0

    @property
    def table(self) -> bool:
        return not self.json and sys.stdout.isatty()


def emit_json(obj: Any, style: Style) -> None:
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


def _stats_text(stats: dict[str, int]) -> str:
    return (
        f"seen {stats['seen_packets']} packets {stats['seen_bytes']} bytes  "
        f"captured {stats['captured_packets']} packets {stats['captured_bytes']} bytes  "
        f"ring-full-drops {stats['ring_full_drops']}  consumed {stats['consumed_packets']}  "
        f"copy-errors {stats['copy_errors']}  hw-stamped {stats['hw_stamped_packets']}  "
        f"filtered {stats['filtered_packets']}"
    )


def show(states: list[DevState], style: Style) -> None:
    if style.json:
        emit_json([s.to_json(style.stats) for s in states], style)
        return
    if style.table:
        _show_table(states, style)
        return
    for s in states:
        print(f"{s.ifindex}: {s.ifname}: {_settings_text(s)}")
        if style.stats >= 1 and s.stats:
            print(f"    {_stats_text(s.stats)}")
        if style.stats >= 2:
            for c in s.cpu_stats:
                print(f"    cpu {c['cpu']}: {_stats_text(c)}")


def _show_table(states: list[DevState], style: Style) -> None:
    t = Table(box=None, header_style="bold")
    for col in ("ifindex", "ifname", "capturing", "mode", "snaplen", "ring size", "rings"):
        t.add_column(col, justify="right" if col in ("ifindex", "snaplen", "ring size") else "left")
    t.add_column("chardev")
    t.add_column("filter")
    stat_cols = STAT_KEYS if style.stats else ()
    for k in stat_cols:
        t.add_column(k.replace("_", " "), justify="right")
    for s in states:
        rows: list[tuple[DevState | None, dict[str, int]]] = [(s, s.stats)]
        if style.stats >= 2:
            rows += [(None, c) for c in s.cpu_stats]
        for st, stats in rows:
            if st is None:
                cells = ["", f"  cpu {stats['cpu']}", "", "", "", "", "", "", ""]
            else:
                cells = [
                    str(st.ifindex),
                    st.ifname,
                    "yes" if st.capturing else "no",
                    st.mode or "",
                    str(st.snaplen or ""),
                    str(st.ring_size or ""),
                    str(st.nr_rings or ""),
                    st.chardev or "",
                    st.filter or (f"({st.filter_insns} insns)" if st.filter_program else ""),
                ]
            cells += [str(stats.get(k, "")) for k in stat_cols]
            t.add_row(*cells)
    Console().print(t)


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
