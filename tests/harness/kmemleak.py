"""kmemleak's report (/sys/kernel/debug/kmemleak on the debug kernel), read for
mgcap: the harness after the suite, the cycle tests after their cycles."""

import re
import time
from pathlib import Path

KMEMLEAK = Path("/sys/kernel/debug/kmemleak")


def mgcap_leaks(report: str) -> list[str]:
    """The objects of a report whose allocation backtrace runs through mgcap.ko, each
    as its first line and its mgcap frames."""
    out = []
    for block in re.split(r"(?m)^(?=unreferenced object )", report):
        frames = [ln.strip() for ln in block.splitlines() if "[mgcap]" in ln]
        if block.startswith("unreferenced object") and frames:
            out.append(block.splitlines()[0] + ": " + " <- ".join(frames))
    return out


def available() -> bool:
    return KMEMLEAK.exists() and KMEMLEAK.stat().st_mode & 0o200 != 0


def clear() -> None:
    """Forget what is reported so far (the leaks of earlier tests are not this one's)."""
    KMEMLEAK.write_text("clear\n")


def scan() -> str:
    """The report after two scans: an object is reported once it stayed unreferenced
    for 5 s."""
    KMEMLEAK.write_text("scan\n")
    time.sleep(6)
    KMEMLEAK.write_text("scan\n")
    return KMEMLEAK.read_text(errors="replace")
