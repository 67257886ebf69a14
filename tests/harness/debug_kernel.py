"""The debug kernel: Debian's linux-source-6.12 with KASAN, kmemleak, lockdep and the
other detectors (tests/harness/debug.config) on virtme-ng's allnoconfig-based VM config.

    python -m tests.harness.debug_kernel          # build it (or say it is built)
    python -m tests.harness.vmrun --kernel debug  # the VM suite on it

Built once into build/debug-kernel/ and kept while the source tarball, the config
fragment and virtme-ng's version are the same (a second run does not rebuild).
mgcap.ko and the test modules are built against the tree (`make -C tree M=...`).
"""

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.build import BUILD, DEBUG_TREE, ROOT

TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
FRAGMENT = ROOT / "tests" / "harness" / "debug.config"
HOME = BUILD / "debug-kernel"
TREE = DEBUG_TREE
STAMP = HOME / "built"
IMAGE = "arch/x86/boot/bzImage"


def wanted() -> dict[str, str]:
    """The fragment's CONFIG_X=value lines, and its "# CONFIG_X is not set" lines as
    CONFIG_X: "n"."""
    out = {}
    for line in FRAGMENT.read_text().splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split()[0]] = "n"
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def key() -> str:
    """What the build depends on: a change of any rebuilds."""
    h = hashlib.sha256(FRAGMENT.read_bytes())
    st = TARBALL.stat()
    h.update(f"{st.st_size} {int(st.st_mtime)}".encode())
    h.update(importlib.metadata.version("virtme-ng").encode())
    return h.hexdigest()


def missing_options(config: Path) -> list[str]:
    """Fragment lines that olddefconfig did not keep (a dependency missing)."""
    have = {}
    for line in config.read_text().splitlines():
        if line.startswith("CONFIG_"):
            k, _, v = line.partition("=")
            have[k] = v
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            have[line[2:].split()[0]] = "n"
    want = wanted().items()
    return [f"{k}={v} (got {have.get(k, 'n')})" for k, v in want if have.get(k, "n") != v]


def built() -> bool:
    return STAMP.exists() and STAMP.read_text().strip() == key() and (TREE / IMAGE).exists()


# SCHED_IDLE: the build gets only the CPU time nothing else wants, so it can run beside
# a VM run (tests/run starts it before the Debian kernels' boots) without taking the
# guest's time: a busy TCG guest keeps its pace, its timeouts and its durations
IDLE = ["chrt", "--idle", "0", "nice", "-n", "19"]


def _run(cmd: list[str], log: Path, cwd: Path) -> None:
    cmd = [*IDLE, *cmd]
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        sys.stderr.write("\n".join(tail) + "\n")
        raise SystemExit(f"debug kernel: {cmd[0]} failed ({log})")


def build() -> Path:
    """The built tree (building it first when needed, or waiting for the build that
    another process, such as tests/run's early one, has under way)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with (BUILD / "debug-kernel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build()


def _build() -> Path:
    if built():
        return TREE
    if not TARBALL.exists():
        raise SystemExit(f"{TARBALL} missing: apt-get install linux-source-6.12 (.ci/setup)")
    start = time.monotonic()
    if HOME.exists():
        shutil.rmtree(HOME)
    TREE.mkdir(parents=True)
    log = HOME / "build.log"
    print(f"== debug kernel: extracting {TARBALL.name}", flush=True)
    _run(["tar", "-xf", str(TARBALL), "-C", str(TREE), "--strip-components=1"], log, HOME)
    configkernel = shutil.which("virtme-configkernel") or str(
        Path(sys.executable).with_name("virtme-configkernel")
    )
    print("== debug kernel: configuring (virtme allnoconfig + debug.config)", flush=True)
    _run([configkernel, "--arch", "x86_64", "--allnoconfig", "--custom", str(FRAGMENT)], log, TREE)
    # virtme's own options come after --custom ones: the fragment again, last, wins
    with (TREE / ".config").open("a") as config:
        config.write("\n" + FRAGMENT.read_text())
    _run(["make", "olddefconfig"], log, TREE)
    if lost := missing_options(TREE / ".config"):
        raise SystemExit("debug kernel: options the config lost: " + ", ".join(lost))
    jobs = str(os.cpu_count() or 2)
    print(f"== debug kernel: make -j{jobs} bzImage modules", flush=True)
    _run(["make", f"-j{jobs}", "bzImage", "modules"], log, TREE)
    STAMP.write_text(key() + "\n")
    print(f"== debug kernel: built in {time.monotonic() - start:.0f} s ({TREE})", flush=True)
    return TREE


def main() -> None:
    tree = build()
    print(tree / IMAGE)


if __name__ == "__main__":
    main()
