"""Boot a Debian kernel under virtme-ng (TCG) and run a command or the VM test suite in it.

    python -m tests.harness.vmrun --kernel all                  # VM tests on every kernel
    python -m tests.harness.vmrun --kernel 6.12 -- -k ring -x   # pytest arguments after --
    python -m tests.harness.vmrun --kernel 6.1 -- tests/vm/test_mgdump.py  # only these tests
    python -m tests.harness.vmrun --kernel 6.1 --exec 'sh docs/examples/capture-lo-guest.sh'

For each kernel: build mgcap.ko (W=1, sparse, warnings fail), boot once with the
memory-error detectors on, run everything inside, and fail if the command fails,
ran no test, or the guest's kernel log shows a WARN, BUG, KFENCE or similar report.
"""

import argparse
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.harness import kernel_tools, kernels, pytrees
from tests.harness.build import BUILD, ROOT, build_module

APPEND = "slub_debug=FZPU kfence.sample_interval=10 panic_on_warn=1 panic=-1"
BAD_KERNEL_LOG = re.compile(
    r"WARNING:|\bBUG[: ]|KFENCE|Oops|general protection fault|UBSAN|KASAN|"
    r"Call Trace|list_(add|del) corruption|refcount_t:|kmemleak|Kernel panic|"
    r"unreferenced object|INFO: task .* blocked"
)
KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")
BEGIN_MARK = "mgcap-vm: guest command begins"
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
        # the venv's mgctl/mgdump scripts import this checkout, not the one the
        # venv was installed from (a second worktree shares the venv)
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        # disk images of Python's trees that guest.sh mounts over them (pytrees.py)
        "MGCAP_PYTREES": trees,
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    guest = ROOT / "tests" / "harness" / "guest.sh"
    return f"cd {shlex.quote(str(ROOT))} && env {exports} sh {guest} {shlex.quote(command)}"


def scan_kernel_log(text: str, whole: bool = False) -> list[str]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if BEGIN_MARK in line and not whole:
            lines = lines[i:]
            break
    return [line for line in lines if BAD_KERNEL_LOG.search(line)]


def boot(cmd: list[str], console_path: Path, timeout: int, tag: str = "") -> tuple[bool, float]:
    """Run vng, copying its console to console_path; (timed out, seconds).

    Lines other than kernel messages also go to stdout, after tag."""
    start = time.monotonic()
    console = console_path.open("w")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert proc.stdout is not None
    timed_out = False
    try:
        for line in proc.stdout:
            console.write(line)
            if not KERNEL_LINE.match(line):
                sys.stdout.write(tag + line)
                sys.stdout.flush()
            if time.monotonic() - start > timeout:
                timed_out = True
                proc.kill()
                break
        proc.wait(timeout=60)
    finally:
        console.close()
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
        "--run", f"/boot/vmlinuz-{kernel}",
        "--disable-kvm", "--cpus", "2", "--memory", "2G",
        "--append", append,
        "--rwdir", str(ROOT),
        *(["--rwdir", str(BUILD)] if not BUILD.is_relative_to(ROOT) else []),
        "--verbose",
        "--exec", guest_command(kernel, out, command, share, trees),
    ]  # fmt: skip
    if extra_qemu:
        # bundled with "=": vng's parser takes a separate "-device ..." for an option
        cmd += [f"--qemu-opts={extra_qemu}"]
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
    log = (out / "console.log").read_text(errors="replace")
    dmesg = out / "dmesg.txt"
    if dmesg.exists():
        log += "\n" + dmesg.read_text(errors="replace")
    bad = scan_kernel_log(log)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kernel", action="append", default=[], help="all, 6.1, 6.12 or a version")
    ap.add_argument("--exec", dest="command", help="shell command to run instead of the VM tests")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per kernel")
    ap.add_argument("--qemu-opts", help="extra qemu options (e.g. emulated NICs)")
    ap.add_argument("--append", default=APPEND, help="kernel command line (default: %(default)s)")
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="boot every kernel at once (the guests' Python is mostly one busy vCPU each)",
    )
    ap.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("vmrun: needs root (qemu, module builds)")
    pytest_args = [a for a in args.pytest_args if a != "--"]
    command = args.command or "pytest " + " ".join(shlex.quote(a) for a in pytest_args)
    trees = pytrees.prepare(BUILD / "pytrees")
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
