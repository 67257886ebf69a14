"""kmemleak's report (/sys/kernel/debug/kmemleak on the debug kernel), read for
mgcap: the harness after the suite, the cycle tests after their cycles."""

import re
import time
from pathlib import Path

KMEMLEAK = Path("/sys/kernel/debug/kmemleak")


# x86-64's module area (MODULES_VADDR to MODULES_END): once a module is unloaded,
# kmemleak can no longer name its frames and prints the bare address
MODULE_AREA = range(0xFFFFFFFFA0000000, 0xFFFFFFFFFF000000)
BARE_FRAME = re.compile(r"^(?:\[<[0-9a-f]+>\]\s*)?0x([0-9a-f]{16})$")


def _mgcap_frame(line: str) -> str | None:
    """The frame as the report's line, if it is mgcap's or may be: an unnamed
    address in the module area is the frame of a module unloaded before the scan
    (mgcap is unloaded after each test), so it counts, named as such."""
    line = line.strip()
    if "[mgcap]" in line:
        return line
    if (bare := BARE_FRAME.match(line)) and int(bare.group(1), 16) in MODULE_AREA:
        return f"{line} (a module unloaded since)"
    return None


def mgcap_leaks(report: str) -> list[str]:
    """The objects of a report whose allocation backtrace runs through mgcap.ko (or
    through a module unloaded before the scan), each as its first line and those
    frames."""
    out = []
    for block in re.split(r"(?m)^(?=unreferenced object )", report):
        frames = [f for ln in block.splitlines() if (f := _mgcap_frame(ln))]
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
