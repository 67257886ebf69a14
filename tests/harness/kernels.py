"""The kernels the VM tests run on: Debian's installed images that have headers."""

import glob
import os
import re


def installed() -> list[str]:
    """Versions with both /boot/vmlinuz-<v> and /lib/modules/<v>/build, oldest first."""
    found = []
    for path in glob.glob("/boot/vmlinuz-*"):
        ver = path.removeprefix("/boot/vmlinuz-")
        if os.path.isdir(f"/lib/modules/{ver}/build"):
            found.append(ver)
    return sorted(found, key=_version_key)


def _version_key(ver: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", ver)]


def resolve(selectors: list[str]) -> list[str]:
    """'all', an exact version, a prefix such as '6.1' or '6.12' (longest match wins),
    or 'debug': the debug kernel (tests/harness/debug_kernel.py; 'all' leaves it out)."""
    have = installed()
    if not have:
        raise SystemExit("no kernel with headers installed: run .ci/setup")
    out: list[str] = []
    for sel in selectors:
        if sel == "debug":
            picks = [sel]
        elif sel == "all":
            picks = have
        elif sel in have:
            picks = [sel]
        else:
            picks = [v for v in have if v.startswith(sel + ".") or v.startswith(sel + "-")]
            if not picks:
                raise SystemExit(f"kernel {sel}: not installed (have: {', '.join(have)})")
            picks = picks[-1:]
        out += [p for p in picks if p not in out]
    return out
