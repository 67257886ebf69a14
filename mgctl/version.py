"""The version of mgcap, written in one place only: kernel/VERSION.

The module's MODULE_VERSION (kernel/Kbuild), the package's version
(pyproject.toml, setuptools dynamic), dkms.conf and every --version read it.
A checkout reads the file itself (so a worktree tells its own version even under
another checkout's editable install); an installed package, which has no
kernel/ beside it, asks its metadata.
"""

from pathlib import Path

VERSION_FILE = Path(__file__).resolve().parent.parent / "kernel" / "VERSION"


def version() -> str:
    try:
        return VERSION_FILE.read_text().strip()
    except OSError:
        pass
    from importlib import metadata  # only then: 50 ms of imports

    try:
        return metadata.version("mgcap")
    except metadata.PackageNotFoundError:
        return "unknown"
