"""The VM harness's own logic: the kernel log scan, the boot's deadline, the verdict on
pytest's report, the guest's environment, the run's budget, the guest command's
deadline and pytest's end (tests/conftest.py)."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import budget, debug_kernel, kmemleak, vmrun
from tests.harness.build import ROOT


def test_scan_finds_reports_after_the_begin_mark_only() -> None:
    log = "\n".join(
        [
            "[    1.0] WARNING: boot noise before the mark is the boot's business",
            f"[    2.0] {vmrun.BEGIN_MARK}",
            "[    3.0] lo: mgcap: capturing",
            "[    4.0] WARNING: CPU: 1 PID: 5 at net/core/dev.c:1 foo+0x1/0x2",
            "[    5.0] BUG: KFENCE: use-after-free read in mgcap_read+0x10/0x20",
            "[    6.0] " + "=" * 70,
            "[    7.0] BUG kmalloc-128 (Tainted: G): Poison overwritten",
        ]
    )
    bad = vmrun.scan_kernel_log(log)
    assert len(bad) == 3
    assert "net/core/dev.c" in bad[0]


def test_scan_quiet_log() -> None:
    log = f"[ 1.0] {vmrun.BEGIN_MARK}\n[ 2.0] mgd0: mgcap: capture stopped\n"
    assert vmrun.scan_kernel_log(log) == []


def test_boot_copies_the_console_and_shows_only_non_kernel_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console = tmp_path / "console.log"
    cmd = ["sh", "-c", r"echo 'mgcap-vm: begins'; printf '[    1.000000] kernel line\r\ntail'"]
    timed_out, elapsed = vmrun.boot(cmd, console, timeout=60, tag="[k] ")
    assert not timed_out and elapsed < 30
    assert console.read_text() == "mgcap-vm: begins\n[    1.000000] kernel line\ntail\n"
    assert capsys.readouterr().out == "[k] mgcap-vm: begins\n[k] tail\n"


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaps counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_boot_times_out_on_a_silent_guest_and_kills_what_it_forked(tmp_path: Path) -> None:
    """A guest that prints nothing more still ends at the deadline, and the child the
    command forked (as vng forks qemu) dies with it."""
    pidfile = tmp_path / "child.pid"
    cmd = ["sh", "-c", f"echo booted; sleep 300 & echo $! > {pidfile}; wait"]
    timed_out, elapsed = vmrun.boot(cmd, tmp_path / "console.log", timeout=3)
    assert timed_out
    assert 3 <= elapsed < 30
    assert (tmp_path / "console.log").read_text() == "booted\n"
    child = int(pidfile.read_text())
    assert eventually(lambda: gone(child)), f"pid {child} (sleep) outlived the boot"


def eventually(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def junit(tmp_path: Path, *cases: str) -> Path:
    path = tmp_path / "junit.xml"
    body = "".join(f'<testcase classname="tests.vm.t" name="t{i}">{c}</testcase>'
                   for i, c in enumerate(cases))  # fmt: skip
    path.write_text(f'<testsuites><testsuite name="pytest">{body}</testsuite></testsuites>')
    return path


SKIP = '<skipped type="pytest.skip" message="no e1000e in this VM">why</skipped>'


def test_a_boot_that_tested_nothing_fails(tmp_path: Path) -> None:
    assert vmrun.junit_verdict(tmp_path / "junit.xml") == "no junit.xml: pytest did not report"
    assert vmrun.junit_verdict(junit(tmp_path)) == "no test ran"
    assert vmrun.junit_verdict(junit(tmp_path, SKIP, SKIP)) == (
        "all 2 tests skipped: no e1000e in this VM"
    )
    assert vmrun.junit_verdict(junit(tmp_path, SKIP, "")) is None
    assert vmrun.junit_verdict(junit(tmp_path, '<failure message="x">x</failure>')) is None


def test_guest_env_has_unbuffered_python(tmp_path: Path) -> None:
    cmd = vmrun.guest_command("6.12", tmp_path, "pytest", "0/1")
    assert " PYTHONUNBUFFERED=1 " in cmd


def test_a_long_command_stays_off_the_kernel_command_line(tmp_path: Path) -> None:
    """vng passes the guest script on the kernel command line (2048 bytes on x86): a
    long list of tests there panicked 6.12 at boot. It goes through a file instead."""
    command = "pytest " + " ".join(f"tests/vm/test_ring.py::test_{i:04d}" for i in range(200))
    cmd = vmrun.guest_command("6.12", tmp_path, command, "0/1")
    assert (tmp_path / "command").read_text() == command
    assert "test_0199" not in cmd and len(cmd) < 1000


KMEMLEAK_REPORT = """\
unreferenced object 0xffff888004a1c000 (size 4096):
  comm "mgctl", pid 812, jiffies 4295012345
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 5a1b2c3d):
    [<ffffffff81234567>] kmemleak_alloc+0x4a/0x80
    [<ffffffff81345678>] __kmalloc_node+0x1f0/0x3a0
    [<ffffffffa0012345>] mgcap_ring_alloc+0x55/0x120 [mgcap]
    [<ffffffffa0013456>] mgcap_nl_dev_start_doit+0x2a0/0x610 [mgcap]
unreferenced object 0xffff888005b2d100 (size 64):
  comm "swapper/0", pid 1, jiffies 4294892345
  backtrace (crc 11223344):
    [<ffffffff81234567>] kmemleak_alloc+0x4a/0x80
    [<ffffffff81456789>] virtio_dev_probe+0x10/0x20
"""


def test_kmemleak_objects_from_mgcap_are_named_others_are_not() -> None:
    leaks = kmemleak.mgcap_leaks(KMEMLEAK_REPORT)
    assert len(leaks) == 1
    assert leaks[0].startswith("unreferenced object 0xffff888004a1c000 (size 4096)")
    assert "mgcap_ring_alloc" in leaks[0] and "mgcap_nl_dev_start_doit" in leaks[0]
    assert kmemleak.mgcap_leaks("") == []


def test_kmemleak_frames_of_an_unloaded_module_count_as_mgcaps() -> None:
    # the final scan of a debug boot comes after rmmod: the frames lose their names
    # (a capture struct lost per stop, seen so on the debug kernel, 2026-12-04)
    report = """unreferenced object 0xff1100000536b200 (size 512):
  comm "python", pid 124, jiffies 4294946061
  backtrace (crc 11ac96f6):
    kmemleak_alloc+0x28/0x30
    __kmalloc_cache_noprof+0x229/0x3b0
    0xffffffffa02c1696
    [<ffffffffa02cdbd6>] 0xffffffffa02cdbd6
    genl_family_rcv_msg_doit+0x1db/0x2c0
unreferenced object 0xff11000007000000 (size 64):
  comm "swapper/0", pid 1, jiffies 4294892345
  backtrace (crc 11223344):
    kmemleak_alloc+0x28/0x30
    0xffffffff81456789
    do_one_initcall+0x10/0x20
"""
    leaks = kmemleak.mgcap_leaks(report)
    assert len(leaks) == 1, leaks
    assert leaks[0].startswith("unreferenced object 0xff1100000536b200 (size 512)")
    assert "0xffffffffa02c1696 (a module unloaded since)" in leaks[0]
    assert "[<ffffffffa02cdbd6>] 0xffffffffa02cdbd6 (a module unloaded since)" in leaks[0]


def test_kmemleak_summary_line_is_not_a_report_its_errors_are() -> None:
    summary = "[ 99.1] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"
    broken = "[ 99.2] kmemleak: Cannot allocate a kmemleak_object structure"
    log = f"[ 1.0] {vmrun.BEGIN_MARK}\n{summary}\n{broken}"
    assert vmrun.scan_kernel_log(log) == [broken]


def test_debug_config_lists_the_detectors_the_issue_names() -> None:
    want = debug_kernel.wanted()
    for opt in (
        "KASAN", "KASAN_GENERIC", "KASAN_INLINE", "DEBUG_KMEMLEAK", "PROVE_LOCKING", "PROVE_RCU",
        "DEBUG_ATOMIC_SLEEP", "KFENCE", "UBSAN_BOUNDS", "DEBUG_LIST", "MODULES", "NET_PKTGEN",
        "DUMMY", "VETH", "NET_NS", "USER_NS", "E1000E", "PTP_1588_CLOCK", "BPF_SYSCALL",
    ):  # fmt: skip
        assert want.get(f"CONFIG_{opt}") in ("y", "m"), opt


def test_debug_config_check_names_what_olddefconfig_dropped(tmp_path: Path) -> None:
    config = tmp_path / ".config"
    lines = [f"{k}={v}" for k, v in debug_kernel.wanted().items()]
    config.write_text("\n".join(lines) + "\n")
    assert debug_kernel.missing_options(config) == []
    lines = [ln for ln in lines if not ln.startswith("CONFIG_KASAN_INLINE=")]
    config.write_text("\n".join(lines) + "\n# CONFIG_DEBUG_LIST is not set\n")
    config.write_text(config.read_text().replace("CONFIG_DEBUG_LIST=y\n", ""))
    assert debug_kernel.missing_options(config) == [
        "CONFIG_KASAN_INLINE=y (got n)",
        "CONFIG_DEBUG_LIST=y (got n)",
    ]
    # an option the fragment turns off, turned on again by a select
    assert debug_kernel.wanted()["CONFIG_DRM"] == "n"
    config.write_text(config.read_text().replace("CONFIG_DRM=n\n", "CONFIG_DRM=y\n"))
    assert "CONFIG_DRM=n (got y)" in debug_kernel.missing_options(config)


def test_pktgen_warning_message_is_not_a_warn_but_a_warn_is() -> None:
    pktgen = "[ 478.1] pktgen: WARNING: trying to remove a running interface, stopping it now"
    warn = "[ 478.2] WARNING: CPU: 0 PID: 1 at net/core/dev.c:1 foo+0x1/0x2"
    lockdep = "[ 478.3] WARNING: possible circular locking dependency detected"
    log = f"[ 1.0] {vmrun.BEGIN_MARK}\n{pktgen}\n{warn}\n{lockdep}"
    assert vmrun.scan_kernel_log(log) == [warn, lockdep]


def test_sigterm_kills_every_running_guest(tmp_path: Path) -> None:
    """A parallel run's guests run in threads that the main thread's SystemExit does
    not reach: the SIGTERM handler kills their process groups itself."""
    import threading

    out: list[tuple[bool, float]] = []
    t = threading.Thread(
        target=lambda: out.append(vmrun.boot(["sleep", "600"], tmp_path / "c.log", timeout=600))
    )
    t.start()
    assert eventually(lambda: bool(vmrun.LIVE_GROUPS))
    try:
        with pytest.raises(SystemExit):
            vmrun.on_sigterm(15, None)
    finally:
        vmrun.STOPPING.clear()  # set by the handler: the process would be ending
    t.join(30)
    assert not t.is_alive() and out and not out[0][0]
    assert not vmrun.LIVE_GROUPS


def test_lanes_run_side_by_side_and_stop_booting_once_the_run_ends() -> None:
    """run_lanes: each lane's boots in order, the lanes at once (lane 1's boot starts
    while lane 0's runs); once STOPPING is set (SIGTERM, ^C) no lane boots again."""
    import threading

    from tests.harness.suite import Boot

    started: list[str] = []
    both = threading.Barrier(2, timeout=10)

    def run(boot: Boot, after: int) -> bool:
        started.append(f"{boot.kernel}+{after}")
        if boot.kernel in ("a1", "b1"):
            both.wait()  # only passes if the two lanes' first boots run at once
        if boot.kernel == "a1":
            vmrun.STOPPING.set()
        return True

    lanes = [[Boot("a1", "0/2"), Boot("a2", "0/2")], [Boot("b1", "1/2")]]
    try:
        results = vmrun.run_lanes(lanes, run, lambda i: None)
    finally:
        vmrun.STOPPING.clear()
    assert sorted(started) == ["a1+1", "b1+0"]
    assert results == {"a1": True, "b1": True}


def test_each_boot_gets_what_is_left_less_a_reserve_for_the_boots_to_come() -> None:
    plan = budget.Budget(end=10_000.0, cap=3600, reserve=900)
    # the first of three boots, 4000 s left: 4000 - 2 * 900
    assert plan.boot_timeout(boots_after=2, now=6000.0) == 2200
    # the second, after the first hung for its 2200 s: 1800 - 900
    assert plan.boot_timeout(boots_after=1, now=8200.0) == 900
    # the last gets all that is left, never more than the cap
    assert plan.boot_timeout(boots_after=0, now=9100.0) == 900
    assert plan.boot_timeout(boots_after=0, now=0.0) == 3600
    # no budget: the cap
    assert budget.Budget(None, cap=1234).boot_timeout(5, now=0.0) == 1234


def test_the_budget_comes_from_the_option_else_the_run_deadline() -> None:
    env = {budget.ENV: "5000"}
    assert budget.from_env(None, env=env).end == 5000.0
    assert budget.from_env(600, env=env, now=100.0).end == 700.0
    assert budget.from_env(None, env={}).end is None


def test_a_boot_with_too_little_budget_left_is_not_started(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time()
    plan = budget.Budget(end=now + 1000, cap=3600, reserve=900)
    timeout = plan.boot_timeout(1, now)
    assert vmrun.boot_deadline("6.12", plan, timeout, 1) == ""
    assert capsys.readouterr().out.startswith("== 6.12: FAILED: not booted: 100 s for it")
    line = vmrun.boot_deadline("6.1", plan, plan.boot_timeout(0, now), 0)
    assert line.startswith("== 6.1: boot deadline 1000 s (the run's budget: 1000 s left")
    capped = vmrun.boot_deadline("6.1", budget.Budget(None), budget.CAP, 0)
    assert capped == f"== 6.1: boot deadline {budget.CAP} s (the per-boot cap)"


def test_the_guest_command_ends_before_the_boot(tmp_path: Path) -> None:
    end = budget.guest_end(10_000.0)
    assert end == 10_000 - budget.WRAPUP and budget.WRAPUP > budget.GRACE
    cmd = vmrun.guest_command("6.12", tmp_path, "pytest", "0/1", end=end)
    assert f" MGCAP_GUEST_END={end} " in cmd
    assert f" MGCAP_GUEST_GRACE={budget.GRACE} " in cmd


def test_the_hung_task_detector_panics_the_guest_well_after_the_lock_order_patience() -> None:
    assert "hung_task_panic=1" in vmrun.APPEND
    assert f"hung_task_timeout_secs={vmrun.HUNG_TASK_SECONDS}" in vmrun.APPEND
    assert vmrun.HUNG_TASK_SECONDS >= 2 * 150  # test_lock_order.py's PATIENCE reports first


def with_deadline(
    tmp_path: Path, command: str, seconds: int, grace: int = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    """guest.sh's with_deadline on the host: (the shell's result, seconds taken)."""
    script = f". {ROOT}/tests/harness/deadline.sh; with_deadline {command}; echo rc=$rc"
    env = {
        **os.environ,
        "MGCAP_GUEST_END": str(int(time.time()) + seconds),
        "MGCAP_GUEST_GRACE": str(grace),
        "MGCAP_OUT": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    start = time.monotonic()
    proc = subprocess.run(
        ["sh", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    return proc, time.monotonic() - start


def test_the_guest_command_that_hangs_is_ended_at_its_deadline(tmp_path: Path) -> None:
    proc, took = with_deadline(tmp_path, "sleep 300", seconds=2)
    assert took < 30
    assert "mgcap-vm: FAILED: guest command timed out after" in proc.stdout
    assert proc.stdout.rstrip().endswith("rc=124")
    assert (tmp_path / "timed-out").exists()


def test_a_guest_command_deaf_to_the_deadline_is_killed_after_the_grace(tmp_path: Path) -> None:
    proc, took = with_deadline(tmp_path, "sh -c 'trap \"\" USR2; sleep 300'", 2, grace=2)
    assert took < 30
    assert proc.stdout.rstrip().endswith("rc=137"), proc.stdout
    assert (tmp_path / "timed-out").exists()


def test_a_guest_command_in_time_is_not_timed_out(tmp_path: Path) -> None:
    proc, _ = with_deadline(tmp_path, "sh -c 'exit 3'", seconds=60)
    assert proc.stdout.rstrip().endswith("rc=3")
    assert "timed out" not in proc.stdout and not (tmp_path / "timed-out").exists()


LEAKS_A_THREAD = """
import threading, time

STOP = threading.Event()


def test_passes_but_leaves_a_thread() -> None:
    threading.Thread(target=STOP.wait, name="left-behind").start()


def test_fails_with_a_thread_alive() -> None:
    threading.Thread(target=STOP.wait, name="sink").start()
    {body}
"""


def run_pytest(
    tmp_path: Path, body: str, seconds: int | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """A tiny test file under this repo's tests/conftest.py (as a plugin): the pytest
    run's result and the seconds it took; with seconds, under guest.sh's deadline."""
    (tmp_path / "test_tiny.py").write_text(LEAKS_A_THREAD.format(body=body))
    pytest_cmd = (
        f"{sys.executable} -m pytest -p tests.conftest -p no:cacheprovider -q "
        f"--junitxml={tmp_path}/junit.xml test_tiny.py"
    )
    if seconds is not None:
        return with_deadline(tmp_path, pytest_cmd, seconds)
    start = time.monotonic()
    proc = subprocess.run(
        pytest_cmd.split(),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, time.monotonic() - start


def test_pytest_does_not_outlive_its_summary_when_threads_are_left(tmp_path: Path) -> None:
    proc, took = run_pytest(tmp_path, "assert False")
    assert took < 60
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "2 non-daemon thread(s) outlived the tests" in proc.stderr
    assert "'left-behind', started during test_tiny.py::test_passes_but_leaves_a_thread" in (
        proc.stderr
    )
    junit = (tmp_path / "junit.xml").read_text()
    assert 'tests="2"' in junit and 'failures="1"' in junit


def test_a_leaked_thread_fails_a_run_whose_tests_passed(tmp_path: Path) -> None:
    proc, _ = run_pytest(tmp_path, "pass")
    assert "2 passed" in proc.stdout
    assert proc.returncode == 1
    assert "exiting with status 1" in proc.stderr


def test_the_deadline_fails_the_hung_test_with_every_stack_and_pytest_reports(
    tmp_path: Path,
) -> None:
    proc, took = run_pytest(tmp_path, "time.sleep(300)", seconds=8)
    assert took < 60
    assert "mgcap-vm: FAILED: guest command timed out after" in proc.stdout
    assert proc.stdout.rstrip().endswith("rc=124")
    assert "Failed: the run's deadline (SIGUSR2" in proc.stdout
    assert "in test_fails_with_a_thread_alive" in proc.stderr  # faulthandler's dump
    junit = (tmp_path / "junit.xml").read_text()
    assert 'tests="2"' in junit and 'failures="1"' in junit
