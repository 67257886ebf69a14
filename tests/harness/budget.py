"""How long each boot may take, from the run's budget.

tests/run sets MGCAP_RUN_DEADLINE (seconds since the epoch) once, at its start (or
.ci/run, from CI's start), 85 minutes on, so that a run with a hang still ends before
CI's 90 minutes (`vmrun --budget SECONDS` sets one for a run of its
own). Each boot then gets what is left of it less a reserve for every boot still to
come, never more than the per-boot cap (`vmrun --timeout`): a boot that hangs ends
in time for the others to boot and give their verdicts.

Inside a boot the guest command has a deadline of its own, WRAPUP seconds before the
boot's (tests/harness/guest.sh): at it, the command gets SIGUSR2 (tests/conftest.py:
every thread's stack, the test under way fails, pytest writes its report) and
SIGKILL GRACE seconds later, and the guest still writes its exit status, the JUnit
XML, its kernel log and the kmemleak scan before the boot's deadline kills qemu.
"""

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

ENV = "MGCAP_RUN_DEADLINE"
# the per-boot cap (vmrun --timeout), for a run without a budget: a whole boot of
# either Debian kernel took 1700-2500 s alone, and a boot beside another (tests/run's
# two lanes) runs slower; in a run with a budget, the budget bounds it first
CAP = 4800
# kept for each boot still to come (vmrun --reserve): enough for a boot (about 100 s
# to the first test) and a good part of a suite, though not all of it: a hung boot
# costs the boots after it their slowest tests, not their verdict
RESERVE = 900
# a boot given less than this is not started (the first test comes after about
# 100 s, more on a busy host): the run's budget is spent, and the verdict says so
MIN_BOOT = 240
# between the guest command's SIGUSR2 and its SIGKILL (guest.sh's `timeout -k`)
GRACE = 60
# the guest command's deadline comes this long before the boot's: GRACE, then the
# kmemleak scans (sleep 6 between two; a scan takes seconds, longer on the debug
# kernel), dmesg, the exit status, the power-off
WRAPUP = GRACE + 120


@dataclass(frozen=True)
class Budget:
    end: float | None  # the run's deadline, seconds since the epoch; None: no budget
    cap: float = CAP
    reserve: float = RESERVE

    def left(self, now: float) -> float | None:
        return None if self.end is None else self.end - now

    def boot_timeout(self, boots_after: int, now: float) -> float:
        """Seconds for a boot that starts now, with boots_after boots still to come."""
        left = self.left(now)
        if left is None:
            return self.cap
        return min(self.cap, left - self.reserve * boots_after)


def from_env(
    budget: float | None,
    cap: float = CAP,
    reserve: float = RESERVE,
    env: Mapping[str, str] = os.environ,
    now: float | None = None,
) -> Budget:
    """A budget of `budget` seconds from now; else the run's deadline in env; else none."""
    if budget is not None:
        return Budget((time.time() if now is None else now) + budget, cap, reserve)
    if value := env.get(ENV, "").strip():
        return Budget(float(value), cap, reserve)
    return Budget(None, cap, reserve)


def guest_end(boot_end: float) -> int:
    """When the guest command must end (seconds since the epoch, the host's clock; the
    guest's is set from it at boot) for a boot that must end at boot_end."""
    return int(boot_end - WRAPUP)
