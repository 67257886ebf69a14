"""Boot a Debian kernel under virtme-ng (TCG) and run a command or the VM test suite in it.

    python -m tests.harness.vmrun --kernel all                  # VM tests on every kernel
    python -m tests.harness.vmrun --kernel 6.12 -- -k ring -x   # pytest arguments after --
    python -m tests.harness.vmrun --kernel 6.1 -- tests/vm/test_mgdump.py  # only these tests
    python -m tests.harness.vmrun --kernel 6.1 --exec 'sh docs/examples/capture-lo-guest.sh'

For each kernel: build mgcap.ko (W=1, sparse, warnings fail), boot once with the
memory-error detectors on, run everything inside, and fail if the command fails,
ran no test or skipped them all, skipped a test its expected-skip list does not name
(under CI=true or MGCAP_STRICT_SKIPS=1: tests/harness/skips.py), or the guest's kernel
log shows a WARN, BUG, KFENCE or similar report. Each boot has a deadline, kept whether
or not the guest prints, from the run's budget (budget.py: MGCAP_RUN_DEADLINE or
--budget), and the guest command one of its own a few minutes before it (guest.sh).
"""

import argparse
import contextlib
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO
from xml.etree import ElementTree

from tests.harness import (
    budget,
    debug_kernel,
    kernel_log,
    kernel_tools,
    kernels,
    pytrees,
    skips,
    suite,
)
from tests.harness.build import BUILD, DEBUG, DEBUG_TREE, ROOT, build_module
from tests.harness.kmemleak import mgcap_leaks
from tests.harness.suite import Boot
from tests.pkg import prebuilt

# A task in D state (uninterruptible: no signal, not even SIGKILL, ends it) for
# HUNG_TASK_SECONDS panics the guest, and vng's qemu (-no-reboot) exits: the boot
# ends as a failure with the task's kernel stack (kernel_log.py's "blocked" line and
# the panic) within HUNG_TASK_SECONDS + the check interval, not at the boot's deadline.
# Legit waits are far shorter even under TCG, and the detector skips killable waits
# (9p, page-cache reads); a test that waits on a deadlock itself (test_lock_order.py's
# PATIENCE, 150 s) reports it before the panic.
HUNG_TASK_SECONDS = 300
HUNG_TASK = (
    f"hung_task_panic=1 sysctl.kernel.hung_task_timeout_secs={HUNG_TASK_SECONDS} "
    "sysctl.kernel.hung_task_check_interval_secs=30"
)
# tsc=reliable: 6.1 found the TCG guest's TSCs "unsynchronized" at boot and fell back
# to the HPET, whose every read is an emulated device access (a loaded host can make
# any kernel fail that check); TCG's TSC is one clock for all vCPUs
APPEND = (
    f"slub_debug=FZPU kfence.sample_interval=10 panic_on_warn=1 panic=-1 tsc=reliable {HUNG_TASK}"
)
# the debug kernel's leak detector is off until asked for (DEBUG_KMEMLEAK_DEFAULT_OFF)
DEBUG_APPEND = "kmemleak=on"
KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")
BEGIN_MARK = "mgcap-vm: guest command begins"
# two emulated NICs on one hub, for the e1000e test (test_hwtstamp.py): a real driver
NICS = (
    "-device e1000e,netdev=h0 -netdev hubport,id=h0,hubid=0 "
    "-device e1000e,netdev=h1 -netdev hubport,id=h1,hubid=0"
)
# the host's root once more, read-only, for guest.sh to mount with caching: the root
# virtme-ng exports is uncached 9p, on which tshark's first start took 81 s (9.5 s
# cached) and every later one 13 s (7 s); guest.sh binds the directories it serves
SYSTEM_SHARE = (
    "-fsdev local,id=mgsys,path=/,security_model=none,readonly=on,multidevs=remap "
    "-device virtio-9p-pci,fsdev=mgsys,mount_tag=mgcap-sys"
)
# boots that die before the guest command begins are tried again, this often in all
BOOT_ATTEMPTS = 3
# The guest's CPU model, given after vng's own "-cpu max" (qemu takes the last). "max"
# advertises AVX and AVX2, which TCG runs through slow helper calls, and glibc, OpenSSL
# and the kernel then pick their AVX2 routines: in two 6.12 boots side by side,
# sha256 of 50 MB took 8.6 s with "max" and 4.9 s with this model, `tshark -v` 24 s
# and 14 s, a pure Python loop the same (9.6 and 10.3 s). x86-64-v2, as a Nehalem
# has it: what Debian's userland and kernels can use, nothing TCG emulates slowly.
CPU_MODEL = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"
# One host thread runs both vCPUs of a guest in turn ("single"), instead of a thread
# per vCPU ("multi", qemu's default). Two guests side by side on the machine's two
# cores then take one core each; with a thread per vCPU, four threads share two
# cores, and a vCPU spinning on a lock or waiting for an IPI (an expedited RCU grace
# period at every rx_handler unregister) waits for a descheduled host thread. In
# single mode a vCPU that pauses in a spin loop or halts hands over at once. Two
# boots side by side, 19 tests each (cycles, capture owner, faults under load,
# chardev files): 6.1 599 s -> 162 s (test_cycles 333 -> 50 s), 6.12 428 -> 179 s.
# The vCPUs interleave more coarsely than on real hardware either way; MGCAP_TCG_THREAD
# =multi brings qemu's default back.
TCG_THREAD = "single"


# virtme-ng shares the host's files over virtio-fs when it finds the Rust virtiofsd,
# else over 9p without a cache (every lookup and read a trip into qemu). Debian 12
# packages no Rust daemon, but qemu's C one is there, and the shim beside this file
# speaks vng's options to it. Measured in one 6.12 boot under TCG (pytrees.py's
# images mounted in both): `mgctl --help` 3.0-5.5 s -> 3.0 s, `mgctl -j show`
# 6.8-8.2 s -> 4.2-5.2 s, `mgdump --version` 4.3 s -> 2.9-3.3 s, the whole boot with
# those commands 88 s -> 63 s. MGCAP_9P=1 keeps vng's 9p.
C_VIRTIOFSD = Path("/usr/lib/qemu/virtiofsd")
VIRTIOFS_SHIM = Path(__file__).resolve().parent / "virtiofs"


def vng_env(virtiofs: bool = True) -> dict[str, str]:
    """vng's environment: the shim first in PATH when only the C virtiofsd exists.
    virtiofs False: 9p, for the debug kernel, whose config (virtme's allnoconfig and
    tests/harness/debug.config) has no FUSE: it cannot mount a virtio-fs root."""
    env = dict(os.environ)
    if (
        virtiofs
        and env.get("MGCAP_9P") != "1"
        and not shutil.which("virtiofsd")
        and C_VIRTIOFSD.exists()
    ):
        env["PATH"] = f"{VIRTIOFS_SHIM}:{env.get('PATH', os.defpath)}"
    return env


def vng_path() -> str:
    exe = shutil.which("vng") or str(Path(sys.executable).with_name("vng"))
    if not Path(exe).exists():
        raise SystemExit("vng not found: run .ci/setup (pip install virtme-ng)")
    return exe


def guest_command(
    kernel: str,
    out: Path,
    command: str,
    share: str,
    trees: str = "",
    end: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> str:
    env = {
        "MGCAP_VM": "1",
        # "i/n": this boot is the i-th of the n kernels of the run; a test marked
        # once(slot=k) runs only in the boot with i == k % n (tests/vm/conftest.py)
        "MGCAP_SHARE": share,
        "MGCAP_ROOT": str(ROOT),
        "MGCAP_BUILD": str(BUILD / kernel),
        "MGCAP_OUT": str(out),
        "PYTHONDONTWRITEBYTECODE": "1",
        # output as it happens: the console shows where a hung test hangs
        "PYTHONUNBUFFERED": "1",
        # the venv's mgctl/mgdump scripts import this checkout, not the one the
        # venv was installed from (a second worktree shares the venv)
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        # disk images of Python's trees that guest.sh mounts over them (pytrees.py)
        "MGCAP_PYTREES": trees,
        # the .deb and the modules its DKMS install built on the host (test_dkms.py)
        "MGCAP_DKMS_PREBUILT": os.environ.get("MGCAP_DKMS_PREBUILT", ""),
        # 1: the in-guest dpkg -i runs (test_dkms.py), the ansible plays run
        # (test_ansible_fleet.py): set by wanted() for the whole suite or when named
        "MGCAP_DKMS_VM": os.environ.get("MGCAP_DKMS_VM", ""),
        "MGCAP_ANSIBLE_VM": os.environ.get("MGCAP_ANSIBLE_VM", ""),
        # start/stop cycles of test_cycles.py (300 by default; 1000 on the debug kernel)
        "MGCAP_CYCLES": os.environ.get("MGCAP_CYCLES", "1000" if kernel == DEBUG else ""),
        # the guest command's deadline (seconds since the epoch) and the grace between
        # its SIGUSR2 and its SIGKILL (guest.sh, budget.py)
        "MGCAP_GUEST_END": "" if end is None else str(end),
        "MGCAP_GUEST_GRACE": str(budget.GRACE),
        **(extra_env or {}),
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    guest = ROOT / "tests" / "harness" / "guest.sh"
    # the command goes through a file: vng puts the guest script on the kernel command
    # line (2048 bytes on x86), and a longer one panics the boot (fortify, 6.12)
    command_file = out / "command"
    command_file.write_text(command)
    read = f'"$(cat {shlex.quote(str(command_file))})"'
    return f"cd {shlex.quote(str(ROOT))} && env {exports} sh {guest} {read}"


def scan_kernel_log(text: str, whole: bool = False) -> list[str]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if BEGIN_MARK in line and not whole:
            lines = lines[i:]
            break
    return kernel_log.problems(lines)


def junit_verdict(path: Path) -> str | None:
    """Why pytest's JUnit XML shows a boot that tested nothing, or None: no file, no
    test, or every test skipped (pytest exits 0 when all its tests skip)."""
    if not path.exists():
        return f"no {path.name}: pytest did not report"
    cases = list(ElementTree.parse(path).iter("testcase"))
    if not cases:
        return "no test ran"
    skips = [s for c in cases if (s := c.find("skipped")) is not None]
    if len(skips) == len(cases):
        reasons = sorted({s.get("message", "") for s in skips})
        return f"all {len(cases)} tests skipped: " + "; ".join(reasons[:3])
    return None


# process groups of the vng runs under way: a SIGTERM kills them all (the parallel
# runs' threads cannot be interrupted by the exception the main thread gets)
LIVE_GROUPS: set[int] = set()
# set once the run is ending (SIGTERM): the lanes start no further boot
STOPPING = threading.Event()


def kill_live_groups() -> None:
    for pgid in list(LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM (timeout(1), a CI's cancel) unwinds like ^C, every guest killed first."""
    STOPPING.set()
    kill_live_groups()
    sys.exit(128 + signal.SIGTERM)


def boot(
    cmd: list[str], console_path: Path, timeout: float, tag: str = "", virtiofs: bool = True
) -> tuple[bool, float]:
    """Run vng, copying its console to console_path; (timed out, seconds).

    The deadline holds whether or not the guest prints (a hung guest may be silent):
    the loop waits for output at most until it. Then vng's whole process group is
    killed: vng forks qemu and waits for it, so killing vng alone would leave qemu
    running (and holding the pipe). Lines other than kernel messages also go to
    stdout, after tag."""
    start = time.monotonic()
    deadline = start + timeout
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=vng_env(virtiofs),
    )
    LIVE_GROUPS.add(proc.pid)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    timed_out = False
    pending = b""

    def emit(raw: bytes, console: TextIO) -> None:
        line = raw.removesuffix(b"\r").decode(errors="replace") + "\n"
        console.write(line)
        if not KERNEL_LINE.match(line):
            sys.stdout.write(tag + line)
            sys.stdout.flush()

    try:
        with console_path.open("w") as console:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not select.select([fd], [], [], left)[0]:
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    emit(raw, console)
                console.flush()  # console.log is live: `tail -f` shows a hang as it happens
            if pending:
                emit(pending, console)
    finally:
        # whatever is left of the group: everything on a timeout or an exception,
        # nothing after a normal end
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        proc.wait(timeout=60)
        LIVE_GROUPS.discard(proc.pid)
    return timed_out, time.monotonic() - start


def run_kernel(
    kernel: str,
    command: str,
    plan: budget.Budget,
    extra_qemu: str | None,
    share: str = "0/1",
    append: str = APPEND,
    trees: str = "",
    tag: str = "",
    cpu: str = CPU_MODEL,
    extra_env: dict[str, str] | None = None,
    boots_after: int = 0,
    tcg: str | None = None,
) -> bool:
    out = BUILD / kernel / "vm"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    image = f"/boot/vmlinuz-{kernel}"
    if kernel == DEBUG:
        debug_kernel.build()
        image = str(DEBUG_TREE)  # vng finds bzImage and the modules in the tree
        append = f"{append} {DEBUG_APPEND}"
    print(f"== {kernel}: building modules", flush=True)
    build_module(ROOT / "kernel", kernel)
    for extra in sorted((ROOT / "tests" / "kmod").glob("*/Kbuild")):
        build_module(extra.parent, kernel)
    try:
        kernel_tools.tree()  # the guest drives the family with the kernel's YNL cli
    except FileNotFoundError as e:
        print(f"== {kernel}: {e}: the YNL test will be skipped", flush=True)

    timeout = plan.boot_timeout(boots_after, time.time())
    if not (deadline_line := boot_deadline(kernel, plan, timeout, boots_after)):
        return False
    print(deadline_line, flush=True)
    end = time.monotonic() + timeout
    guest_end = budget.guest_end(time.time() + timeout)
    cmd = [
        vng_path(),
        "--run", image,
        "--disable-kvm", "--cpus", "2", "--memory", "2G",
        "--append", append,
        "--rwdir", str(ROOT),
        *(["--rwdir", str(BUILD)] if not BUILD.is_relative_to(ROOT) else []),
        "--verbose",
        "--exec", guest_command(kernel, out, command, share, trees, guest_end, extra_env),
    ]  # fmt: skip
    # bundled with "=": vng's parser takes a separate "-device ..." for an option
    cpu_opt = f"-cpu {cpu}" if cpu else ""
    tcg = tcg or os.environ.get("MGCAP_TCG_THREAD") or TCG_THREAD
    cpu_opt += f" -accel tcg,thread={tcg}"
    cmd += [f"--qemu-opts={extra_qemu or ''} {SYSTEM_SHARE} {cpu_opt}".strip()]
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        print(f"== {kernel}: booting (TCG, 2 vCPUs)", flush=True)
        timed_out, elapsed = boot(
            cmd, out / "console.log", end - time.monotonic(), tag, virtiofs=kernel != DEBUG
        )
        console = (out / "console.log").read_text(errors="replace")
        if timed_out or (out / "rc").exists() or BEGIN_MARK in console:
            break
        # the guest died before the test command began: nothing of mgcap had run
        # (under multi-threaded TCG a boot very rarely dies patching kernel text)
        bad = scan_kernel_log(console, whole=True)
        print(
            f"== {kernel}: the guest died while booting, before the tests began "
            f"(attempt {attempt} of {BOOT_ATTEMPTS}): {bad[:1]}",
            flush=True,
        )
        if attempt < BOOT_ATTEMPTS:
            (out / "console.log").rename(out / f"console-boot{attempt}.log")

    ok = True
    rc_file = out / "rc"
    timed_out_file = out / "timed-out"
    if timed_out_file.exists():
        # guest.sh's own deadline: what the guest command had done is reported below
        print(
            f"== {kernel}: FAILED: the guest command timed out after "
            f"{timed_out_file.read_text().strip()} s (its deadline; every thread's stack "
            "is in console.log)"
        )
        ok = False
    if timed_out:
        print(f"== {kernel}: FAILED: the boot timed out after {timeout:.0f} s (its deadline)")
        ok = False
    elif not rc_file.exists():
        panic = [ln for ln in console.splitlines() if "Kernel panic" in ln]
        death = f"the guest kernel panicked: {panic[0]}" if panic else "the guest died"
        print(f"== {kernel}: FAILED: {death} before the command finished")
        ok = False
    elif rc_file.read_text().strip() != "0":
        print(f"== {kernel}: FAILED: guest command exit status {rc_file.read_text().strip()}")
        ok = False
    elif command.startswith("pytest") and (why := junit_verdict(out / "junit.xml")):
        print(f"== {kernel}: FAILED: {why}")
        ok = False
    # every skip against the boot's expected list (tests/expected-skips.toml): an
    # unexpected one fails the boot under CI=true or MGCAP_STRICT_SKIPS=1
    if command.startswith("pytest") and not skips.check(
        out / "junit.xml", skips.kind_of(kernel), f"== {kernel}: "
    ):
        ok = False
    log = (out / "console.log").read_text(errors="replace")
    bad = scan_kernel_log(log)
    dmesg = out / "dmesg.txt"
    if dmesg.exists():
        # its own begin mark: the boot's messages before it are not the tests'
        bad += scan_kernel_log(dmesg.read_text(errors="replace"))
    leaks_file = out / "kmemleak.txt"
    if leaks_file.exists():
        report = leaks_file.read_text(errors="replace")
        others = report.count("unreferenced object")
        leaks = mgcap_leaks(report)
        print(
            f"== {kernel}: kmemleak: {len(leaks)} of {others} unreferenced objects"
            " from mgcap (or a module unloaded since)"
        )
        bad += [f"kmemleak: {leak}" for leak in leaks]
    if bad:
        print(f"== {kernel}: FAILED: the guest kernel reported problems:")
        for line in dict.fromkeys(bad):
            print("   ", line)
        ok = False
    if not ok:
        tail = [ln for ln in log.splitlines() if KERNEL_LINE.match(ln)][-80:]
        print(f"== {kernel}: last kernel messages:\n" + "\n".join(tail))
    print(f"== {kernel}: {'ok' if ok else 'FAILED'} in {elapsed:.0f} s (logs in {out})", flush=True)
    return ok


def boot_deadline(kernel: str, plan: budget.Budget, timeout: float, boots_after: int) -> str:
    """The line that says how long this boot may take, or "" (and a FAILED line) when
    the run's budget leaves it too little to start."""
    left = plan.left(time.time())
    why = "the per-boot cap"
    if left is not None and timeout < plan.cap:
        why = f"the run's budget: {left:.0f} s left"
        if boots_after:
            why += f", {plan.reserve:.0f} s kept for each of the {boots_after} boot(s) to come"
    if timeout < budget.MIN_BOOT:
        print(f"== {kernel}: FAILED: not booted: {timeout:.0f} s for it ({why})", flush=True)
        return ""
    return f"== {kernel}: boot deadline {timeout:.0f} s ({why})"


def names(pytest_args: list[str], stem: str) -> bool:
    """Whether a test path among pytest's arguments names tests/vm/STEM.py (or a test in it)."""
    return any(stem in a for a in pytest_args if a.startswith("tests/"))


def whole_suite(pytest_args: list[str]) -> bool:
    """Whether pytest's arguments leave the whole VM suite to run (no test path, or tests/vm)."""
    paths = [a for a in pytest_args if a.startswith("tests/")]
    return not paths or any(a.rstrip("/") == "tests/vm" for a in paths)


def wanted(switch: str, command: str | None, pytest_args: list[str], stem: str) -> bool:
    """Whether the costly plays of tests/vm/STEM.py run: the .deb's install in the guest
    (MGCAP_DKMS_VM, test_dkms), the ansible plays (MGCAP_ANSIBLE_VM, test_ansible_fleet).
    They run in the whole suite (so in CI) and when the file is named; SWITCH=0 leaves
    them out of a quick local run, SWITCH=1 adds them to any selection that collects them."""
    value = os.environ.get(switch)
    if command is not None or value == "0":
        return False
    return value == "1" or names(pytest_args, stem) or whole_suite(pytest_args)


def run_lanes(
    lanes: list[list[Boot]], run: Callable[[Boot, int], bool], before: Callable[[int], None]
) -> dict[str, bool]:
    """Each lane's boots one after the other, the lanes side by side; {kernel: ok}. A lane
    begins with before(its index); run(boot, boots after it in its lane). Once the run
    is ending (^C, SIGTERM) no lane boots again."""

    def run_lane(index: int, lane: list[Boot]) -> list[tuple[str, bool]]:
        before(index)
        done = []
        for i, b in enumerate(lane):
            if STOPPING.is_set():
                break
            done.append((b.kernel, run(b, len(lane) - 1 - i)))
        return done

    with ThreadPoolExecutor(len(lanes)) as pool:
        futures = [pool.submit(run_lane, i, lane) for i, lane in enumerate(lanes)]
        try:
            return dict(r for f in futures for r in f.result())
        except BaseException:  # ^C, SIGTERM's SystemExit: no lane may boot again
            STOPPING.set()
            kill_live_groups()
            raise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--kernel",
        action="append",
        default=[],
        help="all, 6.1, 6.12, a version, or debug (the debug kernel, built once into build/)",
    )
    ap.add_argument("--exec", dest="command", help="shell command to run instead of the VM tests")
    ap.add_argument(
        "--timeout", type=int, default=budget.CAP, help="the most seconds a boot may take"
    )
    ap.add_argument(
        "--budget",
        type=int,
        help=f"seconds for this whole run (default: until ${budget.ENV}, set by tests/run)",
    )
    ap.add_argument(
        "--reserve",
        type=int,
        default=budget.RESERVE,
        help="seconds of the budget kept for each boot still to come (default: %(default)s)",
    )
    ap.add_argument(
        "--later-boots",
        type=int,
        default=0,
        help="boots that later vmrun calls of the same run will make (each gets a reserve)",
    )
    ap.add_argument(
        "--qemu-opts",
        default=NICS,
        help="extra qemu options ('' for none; default: %(default)s, for test_hwtstamp.py)",
    )
    ap.add_argument("--append", default=APPEND, help="kernel command line (default: %(default)s)")
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="boot every kernel at once (two lanes of one boot each are what --suite uses)",
    )
    ap.add_argument(
        "--suite",
        action="store_true",
        help="the whole composition of tests/run and CI (tests/harness/suite.py): 6.1 and "
        "6.12 side by side",
    )
    ap.add_argument(
        "--debug",
        action="store_true",
        help="with --suite: the debug kernel's subset after 6.1, its build before 6.12",
    )
    ap.add_argument(
        "--cpu",
        default=CPU_MODEL,
        help="the guest's qemu CPU model ('' for vng's own, max; default: %(default)s)",
    )
    ap.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    if os.geteuid() != 0:
        raise SystemExit("vmrun: needs root (qemu, module builds)")
    pytest_args = [a for a in args.pytest_args if a != "--"]
    command = args.command or "pytest " + " ".join(shlex.quote(a) for a in pytest_args)
    trees = pytrees.prepare(BUILD / "pytrees")
    pytrees.precompile(ROOT)
    if wanted("MGCAP_ANSIBLE_VM", args.command, pytest_args, "test_ansible_fleet"):
        os.environ["MGCAP_ANSIBLE_VM"] = "1"  # the guest's plays run
    if wanted("MGCAP_DKMS_VM", args.command, pytest_args, "test_dkms"):
        os.environ["MGCAP_DKMS_VM"] = "1"  # the guest's test_dkms.py runs
        print("== mgcap-dkms: the .deb, installed on the host for its DKMS build", flush=True)
        os.environ["MGCAP_DKMS_PREBUILT"] = str(prebuilt.prepare(BUILD / "dkms-prebuilt"))
    with contextlib.suppress(FileNotFoundError):
        kernel_tools.tree()  # once, before the kernels' runs, which may be parallel
    plan = budget.from_env(args.budget, cap=args.timeout, reserve=args.reserve)
    if args.suite:
        lanes = [
            [Boot(kernels.resolve([b.kernel])[0], b.share, b.tests, b.env) for b in lane]
            for lane in suite.lanes(args.debug)
        ]
    else:
        chosen = kernels.resolve(args.kernel or ["all"])
        boots = [Boot(k, f"{i}/{len(chosen)}") for i, k in enumerate(chosen)]
        lanes = [[b] for b in boots] if args.parallel else [boots]
    tagged = len(lanes) > 1

    def run(boot: Boot, after: int) -> bool:
        """after: the boots still to come in this lane; lanes side by side share the
        time left, one after the other each keeps a reserve for those after it"""
        cmd = command
        if boot.tests and args.command is None:
            cmd += " " + " ".join(shlex.quote(t) for t in boot.tests)
        return run_kernel(
            boot.kernel, cmd, plan, args.qemu_opts, share=boot.share,
            append=args.append, trees=trees, tag=f"[{boot.kernel}] " if tagged else "",
            boots_after=args.later_boots + after, cpu=args.cpu, extra_env=boot.env,
        )  # fmt: skip

    def before(index: int) -> None:
        if args.suite and args.debug and index == suite.BUILD_LANE:
            print("== waiting for the debug kernel's build before this lane's boots", flush=True)
            debug_kernel.build()

    results = run_lanes(lanes, run, before)
    print("== summary: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in results.items()))
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
