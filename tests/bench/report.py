"""The benchmark's table, summary JSON and plot, from the raw results of tests/bench/guest.py.

python -m tests.bench.report RAW.json [--out DIR]
"""

import argparse
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Summary:
    """One row over its repetitions: medians, the spread of µs/packet, the worst accounting."""

    key: str
    name: str
    group: str
    pkt_size: int
    threads: int
    baseline: str | None
    reps: int
    offered: int
    pps: float
    us_per_packet: float
    us_min: float
    us_max: float
    added_us: float | None = None
    # half the range of the row's µs/packet plus half that of its baseline's
    added_spread_us: float | None = None
    added_pct: float | None = None
    captured: int | None = None
    drops: int | None = None
    unaccounted: int | None = None  # the largest |offered - captured - drops| of any rep
    cpu_seconds: float | None = None
    cpu_us_per_packet: float | None = None
    traffic: str = ""  # "" the default traffic, else what pktgen varied (tests/bench/rows.py)
    filter: str | None = None  # the capture filter expression
    filtered: int | None = None  # frames the filter rejected (None: the tool does not say)

    @property
    def spread_pct(self) -> float:
        """Half the range of µs/packet over the repetitions, relative to the median."""
        return 50 * (self.us_max - self.us_min) / self.us_per_packet


def summarize(results: list[dict[str, Any]]) -> list[Summary]:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_key.setdefault(r["key"], []).append(r)
    out: list[Summary] = []
    for key, runs in by_key.items():
        us = [r["us_per_packet"] for r in runs]
        first = runs[0]
        s = Summary(
            key=key,
            name=first["name"],
            group=first["group"],
            pkt_size=first["pkt_size"],
            threads=first["threads"],
            baseline=first["baseline"],
            reps=len(runs),
            offered=int(statistics.median(r["offered"] for r in runs)),
            pps=statistics.median(r["pps"] for r in runs),
            us_per_packet=statistics.median(us),
            us_min=min(us),
            us_max=max(us),
            traffic=first.get("traffic", ""),
            filter=first.get("filter"),
        )
        if "captured" in first:
            s.captured = int(statistics.median(r["captured"] for r in runs))
            s.drops = int(statistics.median(r["drops"] for r in runs))
            unacc = [r["unaccounted"] for r in runs if r["unaccounted"] is not None]
            s.unaccounted = max(unacc, key=abs) if unacc else None
            filtered = [r["filtered"] for r in runs if r.get("filtered") is not None]
            s.filtered = int(statistics.median(filtered)) if filtered else None
            s.cpu_seconds = statistics.median(r["cpu_seconds"] for r in runs)
            s.cpu_us_per_packet = statistics.median(
                r["cpu_seconds"] * 1e6 / max(r["captured"], 1) for r in runs
            )
        out.append(s)
    by_row = {s.key: s for s in out}
    for s in out:
        if s.baseline in by_row:
            b = by_row[s.baseline]
            s.added_us = s.us_per_packet - b.us_per_packet
            s.added_spread_us = (s.us_max - s.us_min) / 2 + (b.us_max - b.us_min) / 2
            s.added_pct = 100 * s.added_us / b.us_per_packet
    return out


def _f(v: float | int | None, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def table(rows: list[Summary]) -> str:
    head = ("| row | frame B | gen thr | offered | pps | µs/pkt | ± | added µs "
            "| added ± µs | added % | captured | drops | unaccounted | capture CPU s "
            "| CPU µs/pkt |")  # fmt: skip
    lines = [head, "|" + "---|" * 15]
    for s in rows:
        lines.append(
            f"| {s.name} | {s.pkt_size} | {s.threads} | {s.offered} | {s.pps:,.0f} "
            f"| {s.us_per_packet:.3f} | {s.spread_pct:.1f} % | {_f(s.added_us, '+.3f')} "
            f"| {_f(s.added_spread_us, '.3f')} | {_f(s.added_pct, '+.1f')} "
            f"| {_f(s.captured, 'd')} | {_f(s.drops, 'd')} "
            f"| {_f(s.unaccounted, 'd')} | {_f(s.cpu_seconds, '.2f')} "
            f"| {_f(s.cpu_us_per_packet, '.2f')} |"
        )
    return "\n".join(lines)


def _find(
    rows: list[Summary], name: str, size: int = 128, threads: int = 1, traffic: str = ""
) -> Summary | None:
    for s in rows:
        if s.name == name and s.pkt_size == size and s.threads == threads and s.traffic == traffic:
            return s
    return None


def _tool(s: Summary) -> str:
    """The row's name without its filter: the tool and how it runs."""
    return s.name.removesuffix(f' "{s.filter}"') if s.filter else s.name


def filter_table(rows: list[Summary]) -> str:
    """The rows of a traffic other than the default (the capture filter rows).  The
    capture processes' CPU is per frame offered: with a filter, per packet captured
    would charge one packet with the work of a hundred."""
    head = ("| row | traffic | filter | µs/pkt | ± | added µs | added % | captured | filtered "
            "| drops | unaccounted | capture CPU s | CPU µs/offered frame |")  # fmt: skip
    lines = [head, "|" + "---|" * 13]
    for s in rows:
        flt = f"`{s.filter}`" if s.filter else ""
        cpu = None if s.cpu_seconds is None else s.cpu_seconds * 1e6 / max(s.offered, 1)
        lines.append(
            f"| {_tool(s)} | {s.traffic}, {s.pkt_size} B, {s.threads} thr | {flt} "
            f"| {s.us_per_packet:.3f} | {s.spread_pct:.1f} % | {_f(s.added_us, '+.3f')} "
            f"| {_f(s.added_pct, '+.1f')} | {_f(s.captured, 'd')} | {_f(s.filtered, 'd')} "
            f"| {_f(s.drops, 'd')} | {_f(s.unaccounted, 'd')} | {_f(s.cpu_seconds, '.2f')} "
            f"| {_f(cpu, '.2f')} |"
        )
    return "\n".join(lines)


def filter_ratios(rows: list[Summary]) -> str:
    """Each filtered row's added cost against the same tool unfiltered on the same
    traffic, and mgcap's against tcpdump's with the same filter."""
    lines = [
        "| row | filter | against | added µs | against's added µs | added-cost ratio |",
        "|" + "---|" * 6,
    ]
    for s in rows:
        if not s.filter or s.added_us is None:
            continue
        others = [_find(rows, _tool(s), s.pkt_size, s.threads, s.traffic)]
        if s.group == "mgcap":
            others += [o for o in rows if o.group == "peer" and o.filter == s.filter
                       and o.traffic == s.traffic and o.pkt_size == s.pkt_size
                       and o.threads == s.threads]  # fmt: skip
        for o in others:
            if o is None or o.added_us is None:
                continue
            ratio = s.added_us / o.added_us if o.added_us > 0 else float("nan")
            what = f"{_tool(o)} `{o.filter}`" if o.filter else f"{_tool(o)}, no filter"
            lines.append(
                f"| {_tool(s)} | `{s.filter}` | {what} | {s.added_us:+.3f} "
                f"| {o.added_us:+.3f} | {ratio:.2f} |"
            )
    return "\n".join(lines)


def ratios(rows: list[Summary]) -> str:
    """mgcap's added cost and CPU per packet against each peer's (same frames, threads)."""
    lines = [
        "| mgcap row | peer | frame B | mgcap added µs | peer added µs | added-cost ratio "
        "| mgcap CPU µs/pkt | peer CPU µs/pkt | CPU ratio |",
        "|" + "---|" * 9,
    ]
    peers = [s for s in rows if s.group in ("peer", "reader")]
    for mg_name in ("mgcap drop + mgdump", "mgcap mirror + mgdump"):
        for p in peers:
            mg = _find(rows, mg_name, p.pkt_size, p.threads)
            if not mg or mg.added_us is None or p.added_us is None:
                continue
            ratio = mg.added_us / p.added_us if p.added_us > 0 else float("nan")
            cpu = (
                mg.cpu_us_per_packet / p.cpu_us_per_packet
                if mg.cpu_us_per_packet is not None and p.cpu_us_per_packet
                else None
            )
            lines.append(
                f"| {mg.name} ({mg.threads} thr) | {p.name} | {p.pkt_size} "
                f"| {mg.added_us:+.3f} ± {_f(mg.added_spread_us, '.3f')} "
                f"| {p.added_us:+.3f} ± {_f(p.added_spread_us, '.3f')} | {ratio:.2f} "
                f"| {_f(mg.cpu_us_per_packet, '.2f')} "
                f"| {_f(p.cpu_us_per_packet, '.2f')} | {_f(cpu, '.2f')} |"
            )
    return "\n".join(lines)


def plot(rows: list[Summary], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, sizes) = plt.subplots(1, 2, figsize=(14, 6.5), width_ratios=[3, 2])
    at128 = [s for s in rows if s.pkt_size == 128 and s.group != "loss"]
    names = [f"{s.name} ({s.threads} thr)" for s in at128]
    med = [s.us_per_packet for s in at128]
    err = [[s.us_per_packet - s.us_min for s in at128], [s.us_max - s.us_per_packet for s in at128]]
    colors = {"pktgen": "grey", "null": "silver", "mgcap": "tab:blue", "reader": "tab:cyan",
              "peer": "tab:orange"}  # fmt: skip
    bars.barh(names, med, xerr=err, color=[colors.get(s.group, "k") for s in at128])
    bars.invert_yaxis()
    bars.set_xlabel("pktgen µs per packet (lower is better; min to max over repetitions)")
    bars.set_title("128-byte frames")
    for i, s in enumerate(at128):
        if s.added_pct is not None:
            bars.text(s.us_per_packet, i, f"  {s.added_pct:+.0f} %", va="center", fontsize=8)
    for name in ("pktgen alone", "null rx_handler, pass", "null rx_handler, consume",
                 "mgcap mirror + mgdump", "mgcap drop + mgdump"):  # fmt: skip
        pts = sorted((s.pkt_size, s.us_per_packet) for s in rows
                     if s.name == name and s.threads == 1)  # fmt: skip
        if pts:
            sizes.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    sizes.set_xscale("log")
    sizes.set_xticks([64, 128, 256, 1500], ["64", "128", "256", "1500"])
    sizes.set_xlabel("frame size (pktgen pkt_size, bytes)")
    sizes.set_ylabel("µs per packet")
    sizes.set_title("cost by frame size, one generator thread")
    sizes.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render(raw: dict[str, Any], out: Path, stem: str, with_plot: bool = True) -> str:
    """Write STEM.md (the tables), STEM.json (summaries and facts), STEM.png; returns the text."""
    every = summarize(raw["results"])
    rows = [s for s in every if not s.traffic]
    filtered = [s for s in every if s.traffic]
    f = raw["facts"]
    title = (f"mgcap benchmark, kernel {f['kernel']}, {f['cpus']} vCPUs ({f['cpu']}), "
             f"{raw['reps']} reps x {raw['count']} frames/thread")  # fmt: skip
    text = f"{title}\n"
    if rows:
        text += f"\n{table(rows)}\n\n{ratios(rows)}\n"
    if filtered:
        text += f"\nCapture filters\n\n{filter_table(filtered)}\n\n{filter_ratios(filtered)}\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text)
    summary = {"facts": f, "count": raw["count"], "reps": raw["reps"],
               "rows": [asdict(s) for s in every]}  # fmt: skip
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    if with_plot and rows:
        plot(rows, out / f"{stem}.png", title)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("raw", type=Path)
    ap.add_argument("--out", type=Path, default=Path("build/bench"))
    ap.add_argument("--stem", default="bench")
    a = ap.parse_args()
    print(render(json.loads(a.raw.read_text()), a.out, a.stem))


if __name__ == "__main__":
    main()
