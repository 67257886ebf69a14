"""A boot's skipped tests against the expected list (tests/expected-skips.toml).

A prerequisite lost (the YNL tools, linux-source, a NIC, CPU hotplug, checkpatch)
turns real tests into skips, and pytest passes a run of skips. So every skip of a
boot (or of the host tests) must be listed for its kind of boot, with its reason;
or be a once-slot skip, which tests/vm/conftest.py makes from the test's once mark
and the boot's MGCAP_SHARE (its reason ends with ONCE_ELSEWHERE), never listed.
An unlisted skip fails the check under CI=true or MGCAP_STRICT_SKIPS=1 and is a
warning otherwise; a listed skip whose test ran is reported as a stale entry.

    python -m tests.harness.skips host build/host/junit.xml   # tests/run's host check
"""

import argparse
import fnmatch
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from tests.harness.build import BUILD, DEBUG, ROOT

EXPECTED = ROOT / "tests" / "expected-skips.toml"
# the end of the reason conftest.py gives a once test outside its boot
ONCE_ELSEWHERE = "runs in another kernel's boot of this run"
HOST = "host"
HOST_JUNIT = BUILD / "host" / "junit.xml"
KINDS = (HOST, "6.1", "6.12", DEBUG)


@dataclass(frozen=True)
class Skip:
    test: str
    reason: str


@dataclass
class Report:
    unexpected: list[Skip]
    stale: list[Skip]  # expected, but the test ran
    expected: int  # skips that were expected (listed or once-slot)


def kind_of(kernel: str) -> str:
    """The expected list a boot reads: "debug", or the kernel's major.minor ("6.12")."""
    if kernel in (DEBUG, HOST):
        return kernel
    m = re.match(r"\d+\.\d+", kernel)
    if not m:
        raise ValueError(f"{kernel}: not a kernel version")
    return m.group(0)


def test_id(classname: str, name: str) -> str:
    """pytest's node id from a JUnit testcase: "tests.vm.test_ring" + "test_x" ->
    "tests/vm/test_ring.py::test_x" (a class's name stays after the file's)."""
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if (ROOT / path).is_file():
            return "::".join([path, *parts[i:], name])
    return "/".join(parts) + ".py::" + name  # no such file here: a module, no class


def read_junit(path: Path) -> tuple[list[str], list[Skip]]:
    """The ids of the tests that ran (passed or failed) and the skips, from pytest's JUnit XML."""
    ran: list[str] = []
    skipped: list[Skip] = []
    for case in ElementTree.parse(path).iter("testcase"):
        tid = test_id(case.get("classname", ""), case.get("name", ""))
        skip = case.find("skipped")
        if skip is None:
            ran.append(tid)
        else:
            skipped.append(Skip(tid, skip.get("message", "")))
    return ran, skipped


def load(kind: str, path: Path = EXPECTED) -> dict[str, str]:
    """The expected skips of a kind of boot: test id (or a pattern with *) -> reason
    (exact, or a pattern with *). [vm] holds for every VM boot."""
    tables = tomllib.loads(path.read_text())
    unknown = set(tables) - {*KINDS, "vm"}
    if unknown:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)} (known: {KINDS}, vm)")
    out: dict[str, str] = {}
    for table in ("vm", kind) if kind != HOST else (HOST,):
        out.update(tables.get(table, {}))
    return out


def matches(pattern: str, text: str) -> bool:
    return text == pattern or ("*" in pattern and fnmatch.fnmatchcase(text, pattern))


def listed(skip: Skip, expected: dict[str, str]) -> bool:
    return any(matches(t, skip.test) and matches(r, skip.reason) for t, r in expected.items())


def compare(ran: list[str], skipped: list[Skip], expected: dict[str, str]) -> Report:
    once = [s for s in skipped if s.reason.endswith(ONCE_ELSEWHERE)]
    unexpected = [s for s in skipped if s not in once and not listed(s, expected)]
    stale = [Skip(test, r) for t, r in expected.items() for test in ran if matches(t, test)]
    return Report(unexpected, stale, len(skipped) - len(unexpected))


def strict() -> bool:
    """Unexpected skips fail under CI (CI=true) or with MGCAP_STRICT_SKIPS=1."""
    return os.environ.get("CI") == "true" or os.environ.get("MGCAP_STRICT_SKIPS") == "1"


def check(junit: Path, kind: str, prefix: str = "", expected_path: Path = EXPECTED) -> bool:
    """Print what the boot skipped against its list; False if an unexpected skip
    must fail it (strict()). A missing JUnit file is junit_verdict's to report."""
    if not junit.exists():
        return True
    ran, skipped = read_junit(junit)
    report = compare(ran, skipped, load(kind, expected_path))
    fail = bool(report.unexpected) and strict()
    print(
        f"{prefix}skips: {len(skipped)}, {report.expected} expected ([{kind}] of "
        f"{expected_path.name} or once-slot)",
        flush=True,
    )
    if report.unexpected:
        word = "FAILED" if fail else "warning"
        print(f"{prefix}{word}: {len(report.unexpected)} unexpected skips (test id: reason):")
        for s in report.unexpected:
            print(f"    {s.test}: {s.reason}")
        if not fail:
            print(f"{prefix}(a failure under CI=true or MGCAP_STRICT_SKIPS=1)")
    for s in report.stale:
        print(f"{prefix}stale entry of [{kind}]: {s.test} ran (listed as skipped: {s.reason})")
    sys.stdout.flush()
    return not fail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", help=f"the boot's kernel or kind ({', '.join(KINDS)})")
    ap.add_argument("junit", type=Path, help="pytest's JUnit XML")
    ap.add_argument("--strict", action="store_true", help="fail on an unexpected skip (as CI)")
    args = ap.parse_args()
    if args.strict:
        os.environ["MGCAP_STRICT_SKIPS"] = "1"
    if not args.junit.exists():
        raise SystemExit(f"{args.junit}: missing (pytest did not report)")
    sys.exit(0 if check(args.junit, kind_of(args.kind), f"== {args.kind}: ") else 1)


if __name__ == "__main__":
    main()
