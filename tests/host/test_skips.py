"""The expected-skip check (tests/harness/skips.py) and the run's plan (tests/harness/plan.py)."""

from pathlib import Path

import pytest

from tests.harness import plan, skips, suite
from tests.harness.build import ROOT

ONCE = "mgdump's logic: runs in another kernel's boot of this run"


def junit(tmp_path: Path, cases: dict[str, str | None]) -> Path:
    """A JUnit file: test name in tests.vm.test_x -> None (passed) or a skip's reason."""
    body = "".join(
        f'<testcase classname="tests.vm.test_x" name="{name}">'
        + ("" if why is None else f'<skipped type="pytest.skip" message="{why}">x</skipped>')
        + "</testcase>"
        for name, why in cases.items()
    )
    path = tmp_path / "junit.xml"
    path.write_text(f'<testsuites><testsuite name="pytest">{body}</testsuite></testsuites>')
    return path


def expected_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expected.toml"
    path.write_text(text)
    return path


EXPECTED = """
[vm]
"tests/vm/test_x.py::test_nic" = "no e1000e*"
["6.12"]
"tests/vm/test_x.py::test_ynl" = "YNL tools not extracted (host tests extract them)"
"tests/vm/test_x.py::test_gone" = "whatever"
"""


def test_a_junit_testcase_is_named_by_its_node_id() -> None:
    ring = "tests/vm/test_ring.py::test_a[mmap]"
    assert skips.test_id("tests.vm.test_ring", "test_a[mmap]") == ring
    assert skips.test_id("tests.host.test_cli.TestX", "test_b") == (
        "tests/host/test_cli.py::TestX::test_b"
    )


def test_a_boot_reads_the_list_of_its_kernels_series() -> None:
    assert skips.kind_of("6.12.95+deb12-amd64") == "6.12"
    assert skips.kind_of("6.1.0-57-amd64") == "6.1"
    assert skips.kind_of("debug") == "debug"
    assert skips.kind_of("host") == "host"


def test_listed_and_once_slot_skips_are_expected_others_are_not(tmp_path: Path) -> None:
    path = junit(
        tmp_path,
        {
            "test_nic": "no e1000e in this VM",  # [vm], by pattern
            "test_ynl": "YNL tools not extracted (host tests extract them)",  # [6.12]
            "test_mgdump": ONCE,  # derived from the once mark: never listed
            "test_hotplug": "CPU 1 cannot go offline in this VM",  # not listed
            "test_gone": None,  # listed but ran: stale
        },
    )
    ran, skipped = skips.read_junit(path)
    expected = skips.load("6.12", expected_file(tmp_path, EXPECTED))
    report = skips.compare(ran, skipped, expected)
    assert report.unexpected == [
        skips.Skip("tests/vm/test_x.py::test_hotplug", "CPU 1 cannot go offline in this VM")
    ]
    assert report.stale == [skips.Skip("tests/vm/test_x.py::test_gone", "whatever")]
    assert report.expected == 3


def test_a_reason_that_differs_is_unexpected(tmp_path: Path) -> None:
    path = junit(tmp_path, {"test_ynl": "YNL tools not extracted: linux-source missing"})
    ran, skipped = skips.read_junit(path)
    report = skips.compare(ran, skipped, skips.load("6.12", expected_file(tmp_path, EXPECTED)))
    assert [s.test for s in report.unexpected] == ["tests/vm/test_x.py::test_ynl"]
    # another kernel's list does not cover it either
    report = skips.compare(ran, skipped, skips.load("6.1", expected_file(tmp_path, EXPECTED)))
    assert len(report.unexpected) == 1


def test_an_unexpected_skip_fails_under_ci_and_warns_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = junit(tmp_path, {"test_a": None, "test_hotplug": "CPU 1 cannot go offline"})
    listing = expected_file(tmp_path, EXPECTED)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("MGCAP_STRICT_SKIPS", raising=False)
    assert skips.check(path, "6.1", "== 6.1: ", listing)
    out = capsys.readouterr().out
    assert "== 6.1: warning: 1 unexpected skips" in out
    assert "    tests/vm/test_x.py::test_hotplug: CPU 1 cannot go offline\n" in out
    monkeypatch.setenv("CI", "true")
    assert not skips.check(path, "6.1", "== 6.1: ", listing)
    assert "== 6.1: FAILED: 1 unexpected skips" in capsys.readouterr().out
    monkeypatch.delenv("CI")
    monkeypatch.setenv("MGCAP_STRICT_SKIPS", "1")
    assert not skips.check(path, "6.1", "", listing)


def test_the_list_names_only_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tables"):
        skips.load("6.1", expected_file(tmp_path, '[6.1]\n"t" = "r"\n'))  # a dotted key: 6, 1


@pytest.fixture(scope="module")
def planned() -> list[plan.Boot]:
    return plan.fill(plan.boots(debug=True, env={}))


def test_the_plan_runs_every_vm_test_in_some_boot(planned: list[plan.Boot]) -> None:
    host, *vm = planned
    assert host.kind == skips.HOST and host.running()
    assert [b.name for b in vm].count("debug") == 1
    debian = [b for b in vm if b.name != "debug"]
    collected = set(debian[0].tests)
    assert all(set(b.tests) == collected for b in debian), "every Debian boot collects all"
    nowhere = collected - {t for b in vm for t in b.running()}
    assert not nowhere, f"VM tests a plain run runs in no boot: {sorted(nowhere)}"
    # a once test runs in exactly one Debian boot; the others say why not, in the words
    # the expected-skip check knows
    if len(debian) > 1:
        for b in debian:
            assert any(why.endswith(skips.ONCE_ELSEWHERE) for why in b.skipped().values())
    for test in collected:
        elsewhere = [b for b in debian if (b.tests[test] or "").endswith(skips.ONCE_ELSEWHERE)]
        assert len(elsewhere) in (0, len(debian) - 1), (test, [b.name for b in elsewhere])


def test_the_debug_subset_names_tests_that_exist(planned: list[plan.Boot]) -> None:
    collected = set(planned[1].tests)
    (debug,) = [b for b in planned if b.name == "debug"]
    for entry in suite.DEBUG_TESTS:
        path, _, name = entry.partition("::")
        assert (ROOT / path).is_file(), entry
        assert not name or entry in collected, f"{entry}: no such test"
    assert set(debug.tests) <= collected


def test_every_listed_skip_names_a_collected_test(planned: list[plan.Boot]) -> None:
    collected = {t for b in planned for t in b.tests}
    for kind in skips.KINDS:
        for pattern in skips.load(kind):
            assert any(skips.matches(pattern, t) for t in collected), f"[{kind}] {pattern}"
