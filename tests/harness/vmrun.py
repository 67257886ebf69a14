"""Boot a Debian kernel under virtme-ng (TCG) and run a command or the VM test suite in it.

    python -m tests.harness.vmrun --kernel all                  # VM tests on every kernel
    python -m tests.harness.vmrun --kernel 6.12 -- -k ring -x   # pytest arguments after --
    python -m tests.harness.vmrun --kernel 6.1 -- tests/vm/test_mgdump.py  # only these tests
    python -m tests.harness.vmrun --kernel 6.1 --exec 'sh docs/examples/capture-lo-guest.sh'

For each kernel: build mgcap.ko (W=1, sparse, warnings fail), boot once with the
memory-error detectors on, run everything inside, and fail if the command fails,
ran no test or skipped them all, skipped a test its expected-skip list does not name
(under CI=true or MGCAP_STRICT_SKIPS=1: tests/harness/skips.py), or the guest's kernel
log shows a WARN, BUG, KFENCE or similar report. The timeout holds per boot, whether
or not the guest prints.
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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO
from xml.etree import ElementTree

from tests.harness import debug_kernel, kernel_log, kernel_tools, kernels, pytrees, skips
from tests.harness.build import BUILD, DEBUG, DEBUG_TREE, ROOT, build_module
from tests.harness.kmemleak import mgcap_leaks
from tests.pkg import prebuilt

# tsc=reliable: 6.1 found the TCG guest's TSCs "unsynchronized" at boot and fell back
# to the HPET, whose every read is an emulated device access (a loaded host can make
# any kernel fail that check); TCG's TSC is one clock for all vCPUs
APPEND = "slub_debug=FZPU kfence.sample_interval=10 panic_on_warn=1 panic=-1 tsc=reliable"
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


def vng_path() -> str:
    exe = shutil.which("vng") or str(Path(sys.executable).with_name("vng"))
    if not Path(exe).exists():
        raise SystemExit("vng not found: run .ci/setup (pip install virtme-ng)")
    return exe


def guest_command(kernel: str, out: Path, command: str, share: str, trees: str = "") -> str:
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
        # 1: the in-guest dpkg -i runs (test_dkms.py: set by wants_dkms()), the
        # ansible plays run (test_ansible_fleet.py: set when the file is named)
        "MGCAP_DKMS_VM": os.environ.get("MGCAP_DKMS_VM", ""),
        "MGCAP_ANSIBLE_VM": os.environ.get("MGCAP_ANSIBLE_VM", ""),
        # start/stop cycles of test_cycles.py (300 by default; 1000 on the debug kernel)
        "MGCAP_CYCLES": os.environ.get("MGCAP_CYCLES", "1000" if kernel == DEBUG else ""),
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


def kill_live_groups() -> None:
    for pgid in list(LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM (timeout(1), a CI's cancel) unwinds like ^C, every guest killed first."""
    kill_live_groups()
    sys.exit(128 + signal.SIGTERM)


def boot(cmd: list[str], console_path: Path, timeout: float, tag: str = "") -> tuple[bool, float]:
    """Run vng, copying its console to console_path; (timed out, seconds).

    The deadline holds whether or not the guest prints (a hung guest may be silent):
    the loop waits for output at most until it. Then vng's whole process group is
    killed: vng forks qemu and waits for it, so killing vng alone would leave qemu
    running (and holding the pipe). Lines other than kernel messages also go to
    stdout, after tag."""
    start = time.monotonic()
    deadline = start + timeout
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
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
    timeout: int,
    extra_qemu: str | None,
    share: str = "0/1",
    append: str = APPEND,
    trees: str = "",
    tag: str = "",
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

    cmd = [
        vng_path(),
        "--run", image,
        "--disable-kvm", "--cpus", "2", "--memory", "2G",
        "--append", append,
        "--rwdir", str(ROOT),
        *(["--rwdir", str(BUILD)] if not BUILD.is_relative_to(ROOT) else []),
        "--verbose",
        "--exec", guest_command(kernel, out, command, share, trees),
    ]  # fmt: skip
    # bundled with "=": vng's parser takes a separate "-device ..." for an option
    cmd += [f"--qemu-opts={extra_qemu or ''} {SYSTEM_SHARE}".strip()]
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        print(f"== {kernel}: booting (TCG, 2 vCPUs)", flush=True)
        timed_out, elapsed = boot(cmd, out / "console.log", timeout, tag)
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
    if timed_out:
        print(f"== {kernel}: FAILED: timed out after {timeout} s")
        ok = False
    elif not rc_file.exists():
        print(f"== {kernel}: FAILED: the guest died before the command finished")
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


def names(pytest_args: list[str], stem: str) -> bool:
    """Whether a test path among pytest's arguments names tests/vm/STEM.py (or a test in it)."""
    return any(stem in a for a in pytest_args if a.startswith("tests/"))


def wants_dkms(command: str | None, pytest_args: list[str]) -> bool:
    """Whether the run includes tests/vm/test_dkms.py: named among the tests, or the whole
    suite with MGCAP_DKMS_VM=1. The whole suite leaves it out otherwise: the .deb's
    install and purge in the guest take ~8 minutes under TCG (dkms and depmod over
    every module of the kernel), a sixth of a CI run."""
    if command is not None or os.environ.get("MGCAP_DKMS_VM") == "0":
        return False
    if names(pytest_args, "test_dkms"):
        return True
    paths = [a for a in pytest_args if a.startswith("tests/")]
    whole = not paths or any(a.rstrip("/") == "tests/vm" for a in paths)
    return whole and os.environ.get("MGCAP_DKMS_VM") == "1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--kernel",
        action="append",
        default=[],
        help="all, 6.1, 6.12, a version, or debug (the debug kernel, built once into build/)",
    )
    ap.add_argument("--exec", dest="command", help="shell command to run instead of the VM tests")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per kernel")
    ap.add_argument(
        "--qemu-opts",
        default=NICS,
        help="extra qemu options ('' for none; default: %(default)s, for test_hwtstamp.py)",
    )
    ap.add_argument("--append", default=APPEND, help="kernel command line (default: %(default)s)")
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="boot every kernel at once (on 2 host cores this is slower than one after the "
        "other: see docs/testing.md)",
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
    if os.environ.get("MGCAP_ANSIBLE_VM") != "0" and names(pytest_args, "test_ansible_fleet"):
        os.environ["MGCAP_ANSIBLE_VM"] = "1"  # named: its plays run
    if wants_dkms(args.command, pytest_args):
        os.environ["MGCAP_DKMS_VM"] = "1"  # the guest's test_dkms.py runs
        print("== mgcap-dkms: the .deb, installed on the host for its DKMS build", flush=True)
        os.environ["MGCAP_DKMS_PREBUILT"] = str(prebuilt.prepare(BUILD / "dkms-prebuilt"))
    with contextlib.suppress(FileNotFoundError):
        kernel_tools.tree()  # once, before the kernels' runs, which may be parallel
    chosen = kernels.resolve(args.kernel or ["all"])

    def run(i: int, kernel: str) -> bool:
        return run_kernel(
            kernel, command, args.timeout, args.qemu_opts, share=f"{i}/{len(chosen)}",
            append=args.append,
            trees=trees, tag=f"[{kernel}] " if args.parallel else "",
        )  # fmt: skip

    if args.parallel and len(chosen) > 1:
        with ThreadPoolExecutor(len(chosen)) as pool:
            futures = [pool.submit(run, i, k) for i, k in enumerate(chosen)]
            oks = [f.result() for f in futures]
    else:
        oks = [run(i, k) for i, k in enumerate(chosen)]
    results = dict(zip(chosen, oks, strict=True))
    print("== summary: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in results.items()))
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
