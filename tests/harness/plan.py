"""What a plain `bash tests/run` runs and skips, boot by boot, without building or booting.

    bash tests/run --plan                       # = python -m tests.harness.plan
    python -m tests.harness.plan --full-debug   # as `bash tests/run --full-debug`
    python -m tests.harness.plan --short        # counts and skips, not every test run

Each boot's tests are collected by pytest on the host with that boot's environment
(MGCAP_VM=1, MGCAP_SHARE=i/n, MGCAP_BUILD, the opt-in switches of tests/harness/suite.py),
so the marks decide as in the guest: the once-slot skips, the skipif marks. What
skips only at run time is shown from the boot's expected-skip list
(tests/expected-skips.toml). The boots and the debug subset are suite.py's, as in
tests/run and vmrun --suite.

Also a pytest plugin (-p tests.harness.plan): with MGCAP_PLAN_OUT set, it writes the
collected tests and the reasons their skip marks give to that file as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness import kernels, skips, suite
from tests.harness.build import BUILD, DEBUG, ROOT

# a once-slot skip, a skipif, or an expected skip at run time (then this prefix)
AT_RUN_TIME = "expected at run time: "
# what a boot's environment sets (the host's own values must not leak into it)
BOOT_ENV = ("MGCAP_VM", "MGCAP_SHARE", "MGCAP_BUILD", *suite.SWITCHES)


@dataclass
class Boot:
    name: str  # the kernel as vmrun's --kernel takes it, or "host"
    kind: str  # its expected-skip list (skips.kind_of)
    paths: tuple[str, ...]  # pytest's test paths
    env: dict[str, str] = field(default_factory=dict)
    # test id -> None (runs) or why it does not
    tests: dict[str, str | None] = field(default_factory=dict)

    def running(self) -> list[str]:
        return [t for t, why in self.tests.items() if why is None]

    def skipped(self) -> dict[str, str]:
        return {t: why for t, why in self.tests.items() if why is not None}


def boots(
    debug: bool = False, full_debug: bool = False, env: dict[str, str] | None = None
) -> list[Boot]:
    """The host tests, then the boots of the run: suite.py's lanes, lane by lane (the
    lanes run side by side), with debug the debug kernel's subset, and with full_debug
    the whole suite on the debug kernel."""
    switches = suite.switches(env)
    out = [Boot("host", skips.HOST, ("tests/host",))]
    planned = [b for lane in suite.lanes(debug) for b in lane]
    if full_debug:
        planned.append(suite.Boot(DEBUG, "0/1"))
    for b in planned:
        kernel = resolved(b.kernel)
        vm = {"MGCAP_VM": "1", "MGCAP_SHARE": b.share, "MGCAP_BUILD": str(BUILD / kernel)}
        paths = b.tests or ("tests/vm",)
        out.append(Boot(kernel, skips.kind_of(kernel), paths, vm | b.env | switches))
    return out


def resolved(selector: str) -> str:
    """The installed kernel a selector names (vmrun's choice), or the selector itself."""
    if selector == DEBUG:
        return DEBUG
    try:
        return kernels.resolve([selector])[0]
    except SystemExit:  # not installed here: the plan still names it
        return selector


def collect(boot: Boot) -> dict[str, str | None]:
    """The boot's tests as pytest collects them in its environment, with the skip
    marks' reasons (this module as a plugin)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plan.json"
        env = {k: v for k, v in os.environ.items() if k not in BOOT_ENV}
        env |= boot.env | {"MGCAP_PLAN_OUT": str(out), "PYTHONDONTWRITEBYTECODE": "1"}
        marks = ["-m", "vm"] if boot.kind != skips.HOST else []
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.harness.plan"]
        cmd += ["--collect-only", "-qq", *marks, *boot.paths]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            why = proc.stdout + proc.stderr
            raise RuntimeError(f"collecting {boot.name}'s tests failed:\n{why}")
        found: dict[str, str | None] = json.loads(out.read_text())
        return found


def fill(boots_: list[Boot]) -> list[Boot]:
    """Each boot's tests: collected (in parallel), then the expected run-time skips."""
    with ThreadPoolExecutor(len(boots_)) as pool:
        for boot, found in zip(boots_, pool.map(collect, boots_), strict=True):
            expected = skips.load(boot.kind)
            for test, why in found.items():
                if why is None:
                    for pattern, reason in expected.items():
                        if skips.matches(pattern, test):
                            why = AT_RUN_TIME + reason
                boot.tests[test] = why
    return boots_


def pytest_collection_finish(session: pytest.Session) -> None:
    """The plugin: each collected test and why its marks skip it (None: it runs)."""
    out = os.environ.get("MGCAP_PLAN_OUT")
    if not out:
        return
    from _pytest.skipping import evaluate_skip_marks

    found = {}
    for item in session.items:
        skip = evaluate_skip_marks(item)
        found[item.nodeid] = None if skip is None else skip.reason
    Path(out).write_text(json.dumps(found))


def describe(boot: Boot, number: int, count: int, short: bool) -> list[str]:
    ran, skipped = boot.running(), boot.skipped()
    if boot.kind == skips.HOST:
        head = "== host tests (tests/host)"
    else:
        whole = boot.paths == ("tests/vm",)
        subset = "" if whole else ", suite.py's DEBUG_TESTS"
        head = f"== boot {number} of {count}: {boot.name} "
        head += f"(MGCAP_SHARE={boot.env['MGCAP_SHARE']}{subset})"
    lines = [f"{head}: {len(boot.tests)} tests, {len(ran)} run, {len(skipped)} skipped"]
    if not short:
        lines += [f"   run  {t}" for t in ran]
    lines += [f"   skip {t}: {why}" for t, why in skipped.items()]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--debug",
        action="store_true",
        help="as `bash tests/run --debug`: the debug kernel's subset too",
    )
    ap.add_argument(
        "--full-debug",
        action="store_true",
        help="as `bash tests/run --full-debug`: the whole suite on the debug kernel too",
    )
    ap.add_argument("--short", action="store_true", help="counts and skips, not each test run")
    args = ap.parse_args()
    planned = fill(boots(args.debug, args.full_debug))
    vm = [b for b in planned if b.kind != skips.HOST]
    print(
        "The plan of `bash tests/run` (switches: "
        + ", ".join(f"{k}={v}" for k, v in suite.switches().items())
        + "). The VM boots run in two lanes side by side:"
    )
    print("\n".join(f"   {line}" for line in suite.describe(args.debug)))
    for number, boot in enumerate(planned):
        print("\n".join(describe(boot, number, len(vm), args.short)))
    debug = [b for b in vm if b.name == DEBUG]
    if debug and all(b.paths != ("tests/vm",) for b in debug):
        left = {t for b in vm for t in b.tests} - {t for b in debug for t in b.tests}
        print(f"== not in the debug subset: {len(left)} more tests (--full-debug runs them)")
    nowhere = sorted({t for b in vm for t in b.tests} - {t for b in vm for t in b.running()})
    print(f"== VM tests that no boot runs: {len(nowhere)}")
    for t in nowhere:
        print(f"   {t}")


if __name__ == "__main__":
    main()
