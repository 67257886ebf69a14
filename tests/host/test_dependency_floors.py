"""The runtime dependencies' floors in pyproject.toml are true: mgctl and mgdump start
and their host tests pass with exactly those versions (tests/run runs this file and
the host tests of mgctl and mgdump in .ci/setup's .venv-floor, MGCAP_FLOOR=1)."""

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
AT_FLOOR = os.environ.get("MGCAP_FLOOR") == "1"


def floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for text in project["dependencies"]:
        req = Requirement(text)
        (spec,) = req.specifier  # one floor each, nothing else
        assert spec.operator == ">=", text
        out[req.name] = Version(spec.version)
    return out


@pytest.mark.parametrize(("name", "floor"), sorted(floors().items()))
def test_installed_version(name: str, floor: Version) -> None:
    """At least the floor; in the floor venv exactly it (else the run proves nothing)."""
    have = Version(metadata.version(name))
    assert have == floor if AT_FLOOR else have >= floor, (name, str(have))


def test_typer_floor_has_what_mgdump_imports() -> None:
    """typer.exceptions (mgdump's TyperException) exists only from typer 0.27.2."""
    from typer.exceptions import TyperException

    assert issubclass(TyperException, Exception)


@pytest.mark.parametrize("module", ["mgctl.cli", "mgctl.dump.cli"])
def test_help_starts(module: str) -> None:
    """mgctl --help and mgdump --help, in a fresh interpreter of this venv."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert proc.stdout.startswith("Usage: ")
