"""What mgdump says when it ends: tcpdump-like lines on stderr, and --stats-json."""

import json
import os
from typing import Any

from mgctl.dump.session import Session

REASONS = {
    "signal": "interrupted",
    "count": "packet count reached",
    "files": "file count reached",
    "ended": "capture ended (device removed or capture stopped)",
    "read-error": "reading the capture failed",
    "error": "writing the output failed",
    "closed": "standard output closed",
}


def as_dict(session: Session) -> dict[str, Any]:
    totals = session.totals()
    cpu = os.times()
    files = [f for out in session.outputs for f in out.files]
    return {
        "reason": session.reason,
        "seen": sum(t.seen for t in totals),
        "written": sum(t.written for t in totals),
        "kernel_drops": sum(t.kernel_drops for t in totals),
        "mgdump_drops": sum(t.mgdump_drops for t in totals),
        "not_written": sum(t.not_written for t in totals),
        "hw_stamped": sum(t.hw_stamped for t in totals),
        "filtered": sum(t.filtered for t in totals),
        "cpu_seconds": round(cpu.user + cpu.system, 3),
        "buffer_high_water": session.buffer.high_water,
        # how the rings were read (mmap: written from the mapped rings), and the records
        # that went through the buffer instead (all of them with read)
        "ring_access": "+".join(sorted({r.access for r in session.readers})),
        "buffered": sum(r.buffered for r in session.readers),
        "files": files,
        "files_started": sum(out.files_started for out in session.outputs),
        "interfaces": [
            {
                "ifname": t.ifname,
                "seen": t.seen,
                "written": t.written,
                "kernel_drops": t.kernel_drops,
                "mgdump_drops": t.mgdump_drops,
                "not_written": t.not_written,
                "hw_stamped": t.hw_stamped,
                "filtered": t.filtered,
                "filter": t.filter,
                "filter_found": t.filter_found,
            }
            for t in totals
        ],
    }


def text(d: dict[str, Any]) -> str:
    return "\n".join([f"mgdump: {REASONS.get(d['reason'], d['reason'])}", counts(d)])


def counts(d: dict[str, Any], running: bool = False) -> str:
    """The counters in tcpdump's words; running: while the capture goes on (SIGUSR1),
    when records on their way to the output are not "not written"."""
    lines = []
    ifaces = d["interfaces"]
    rows: list[tuple[str, dict[str, Any]]] = [("", d)]
    if len(ifaces) > 1:
        rows += [(f"{i['ifname']}: ", i) for i in ifaces]
    filtering = any(i["filter"] is not None for i in ifaces)
    for prefix, r in rows:
        lines.append(f"{prefix}{r['written']} packets written")
        lines.append(f"{prefix}{r['seen']} packets seen by mgcap")
        if filtering or r["filtered"]:
            rejected = f"{prefix}{r['filtered']} packets rejected by the capture filter"
            # the totals row of a single device speaks for that device
            found = r.get("filter_found", len(ifaces) == 1 and ifaces[0]["filter_found"])
            if found:
                rejected += " (installed before mgdump)"
            lines.append(rejected)
        lines.append(f"{prefix}{r['kernel_drops']} packets dropped by the kernel ring")
        lines.append(f"{prefix}{r['mgdump_drops']} packets dropped by mgdump")
        if r["not_written"] and not running:
            lines.append(f"{prefix}{r['not_written']} packets captured but not written")
        if r["hw_stamped"]:
            lines.append(f"{prefix}{r['hw_stamped']} packets stamped by the NIC")
    return "\n".join(lines)


def write_json(path: str, d: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
