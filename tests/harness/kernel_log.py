"""What in a kernel log counts as a problem: the reports of the kernel's checkers
(WARN, BUG, KASAN, KFENCE, UBSAN, lockdep, kmemleak's own errors, hung tasks).

Used by vmrun on a whole boot's log and by VM tests on the lines a test produced."""

import re

BAD_LINE = re.compile(
    # pktgen says "WARNING:" in a plain pr_warn when a device it drives goes away
    # mid-flood (the fault tests do that on purpose): a message, not a WARN()
    r"(?<!pktgen: )WARNING:|\bBUG[: ]|KFENCE|Oops|general protection fault|UBSAN|KASAN|"
    r"Call Trace|list_(add|del) corruption|refcount_t:|Kernel panic|"
    # kmemleak's own trouble; its leaks are judged from its report (kmemleak.py)
    r"kmemleak: (?!\d+ new suspected memory leaks)|"
    r"unreferenced object|INFO: task .* blocked"
)


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if BAD_LINE.search(line)]
