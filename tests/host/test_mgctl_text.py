"""mgctl's text output without a kernel: ip -s's columns, nothing cut, the same on a
terminal and in a pipe; the line for lost monitor events."""

import contextlib
import io

import pytest

from mgctl import api, output
from mgctl.output import Style

BIG = 18_446_744_073_709_551_615  # a u64 counter at its end: 20 digits


def state(ifname: str = "enp1s0f0np0", n: int = BIG) -> api.DevState:
    stats = {k: n - i for i, k in enumerate(api.STAT_KEYS)}
    return api.DevState(
        ifindex=7,
        ifname=ifname,
        capturing=True,
        mode="drop",
        snaplen=262144,
        ring_size=1 << 30,
        nr_rings=2,
        chardev=f"/dev/mgcap/{ifname}",
        stats=stats,
        cpu_stats=[{"cpu": c, **{k: v // 2 for k, v in stats.items()}} for c in (0, 1)],
        filter="tcp port 443 and host 2001:db8::1",
        filter_program=b"\0" * 8 * 12,
    )


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def render(states: list[api.DevState], stats: int, stream: io.StringIO) -> str:
    with contextlib.redirect_stdout(stream):
        output.show(states, Style(stats=stats))
    return stream.getvalue()


@pytest.mark.parametrize("stats", [0, 1, 2])
def test_same_text_on_a_terminal_and_in_a_pipe(stats: int) -> None:
    states = [state(), state("lo", 3)]
    assert render(states, stats, Tty()) == render(states, stats, io.StringIO())


def test_nothing_cut_and_columns_aligned() -> None:
    text = render([state()], 2, io.StringIO())
    lines = text.splitlines()
    assert lines[0] == (
        "7: enp1s0f0np0: capturing mode drop snaplen 262144 ring-size 1073741824 rings 2 "
        'chardev /dev/mgcap/enp1s0f0np0 filter "tcp port 443 and host 2001:db8::1"'
    )
    s = state()
    # every counter whole, where its column's name ends
    for title, cols in output.STAT_GROUPS:
        head = next(i for i, line in enumerate(lines) if line.startswith(f"    {title}:"))
        rows = [(s.stats, head + 1), *((c, head + 2 + i) for i, c in enumerate(s.cpu_stats))]
        for name, key in cols:
            end = lines[head].index(f" {name}", 3) + 1 + len(name)
            for counters, row in rows:
                value = str(counters[key])
                assert lines[row][end - len(value) : end] == value, (name, lines[row])
                assert lines[row][end - len(value) - 1] == " "
    assert lines[head + 2].startswith("    cpu 0 ") and lines[head + 3].startswith("    cpu 1 ")
    assert all(line == line.rstrip() for line in lines)


def test_no_counters_without_s() -> None:
    assert render([state()], 0, io.StringIO()).count("\n") == 1


def test_not_capturing() -> None:
    dev = api.DevState(ifindex=1, ifname="lo", capturing=False)
    assert render([dev], 1, io.StringIO()) == "1: lo: not capturing\n"


@pytest.mark.parametrize(
    ("count", "line"),
    [
        (1, "mgctl: 1 event lost (receive buffer overrun)\n"),
        (37, "mgctl: 37 events lost (receive buffer overrun)\n"),
    ],
)
def test_lost_events_line(count: int, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    output.lost(api.Lost(count))
    assert capsys.readouterr() == ("", line)
