"""mgcap-extcap --install / --uninstall: a small executable in Wireshark's extcap
folder that runs this Python with mgctl.extcap.

The folders are Wireshark's own, as `tshark -G folders` prints them: the personal
one ("Personal Extcap path", or <Personal configuration>/extcap before Wireshark
4.2) and the global one ("Global Extcap path", or "Extcap path" before 4.2).
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

NAME = "mgcap-extcap"
MARKER = "# written by mgcap-extcap --install"
TSHARK_TIMEOUT = 120  # tshark loads every dissector first: slow on a slow machine


class InstallError(Exception):
    """One line for the user."""


def wrapper_text(python: str = sys.executable) -> str:
    return (
        "#!/bin/sh\n"
        f"{MARKER}; mgcap-extcap --uninstall removes it\n"
        f'exec {shlex.quote(python)} -m mgctl.extcap "$@"\n'
    )


def folders() -> dict[str, str]:
    """`tshark -G folders` as a dict (InstallError if tshark cannot say)."""
    tshark = shutil.which("tshark")
    if tshark is None:
        raise InstallError("tshark not found: give the extcap folder with --dir DIR")
    try:
        out = subprocess.run(
            [tshark, "-G", "folders"],
            capture_output=True,
            text=True,
            timeout=TSHARK_TIMEOUT,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise InstallError(f"tshark -G folders failed ({e}): give the folder with --dir DIR") from e
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found.setdefault(key.strip(), value.strip())
    return found


def extcap_folder(global_: bool) -> Path:
    """Wireshark's personal (or global) extcap folder."""
    f = folders()
    if global_:
        path = f.get("Global Extcap path") or f.get("Extcap path")
    else:
        path = f.get("Personal Extcap path")
        if not path and f.get("Personal configuration"):
            path = os.path.join(f["Personal configuration"], "extcap")
    if not path:
        raise InstallError("tshark -G folders names no extcap folder: give it with --dir DIR")
    return Path(path)


def install(folder: Path) -> Path:
    target = folder / NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{NAME}.tmp"
        tmp.write_text(wrapper_text())
        tmp.chmod(0o755)
        tmp.replace(target)
    except OSError as e:
        raise InstallError(f"{e.filename or folder}: {e.strerror}") from e
    return target


def uninstall(folder: Path) -> Path:
    target = folder / NAME
    try:
        text = target.read_text()
    except FileNotFoundError:
        raise InstallError(f"{target}: not installed") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InstallError(f"{target}: {getattr(e, 'strerror', 'not a text file')}") from e
    if MARKER not in text:
        raise InstallError(f"{target}: not written by mgcap-extcap --install; left alone")
    try:
        target.unlink()
    except OSError as e:
        raise InstallError(f"{target}: {e.strerror}") from e
    return target
