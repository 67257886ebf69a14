"""One version, written in one place (kernel/VERSION): pyproject.toml, mgctl,
dkms.conf and the module (MODULE_VERSION, checked in the VM) all read it.
debian/changelog is the one other file that must say it (dpkg takes a
package's version from nowhere else): it is checked to agree."""

import re
import subprocess
import tomllib
from pathlib import Path

import mgctl
from mgctl.version import VERSION_FILE
from tests.pkg.deb import changelog_version

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG = ROOT / "debian" / "changelog"
# ansible-galaxy reads the collection's version from here only (no dynamic value)
GALAXY = ROOT / "ansible_collections" / "mgcap" / "capture" / "galaxy.yml"


def _version() -> str:
    text = VERSION_FILE.read_text()
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", text), "kernel/VERSION: one line, X.Y.Z"
    return text.strip()


def test_mgctl_version_is_the_file() -> None:
    assert VERSION_FILE == ROOT / "kernel" / "VERSION"
    assert mgctl.__version__ == _version()


def test_pyproject_reads_the_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"file": "kernel/VERSION"}


def test_dkms_conf_reads_the_file(tmp_path: Path) -> None:
    # dkms sources dkms.conf with bash, from wherever the tree was copied to
    tree = tmp_path / "mgcap-src"
    tree.mkdir()
    for name in ("dkms.conf", "VERSION"):
        (tree / name).write_bytes((ROOT / "kernel" / name).read_bytes())
    out = subprocess.run(
        ["bash", "-c", '. "$1" && printf %s "$PACKAGE_VERSION"', "bash", str(tree / "dkms.conf")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd="/",
    )
    assert out.stdout == _version()


def test_no_other_file_holds_the_version() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], capture_output=True, check=True, timeout=30, cwd=ROOT
    ).stdout.split(b"\0")
    literal = re.compile(rb"(?<![\d.])" + re.escape(_version().encode()) + rb"(?![\d.])")
    holders = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if path in (VERSION_FILE, CHANGELOG, GALAXY) or not path.is_file():
            continue
        if literal.search(path.read_bytes()):
            holders.append(name.decode())
    assert holders == [], f"the version is written in kernel/VERSION only, not in {holders}"


def test_debian_changelog_agrees() -> None:
    # a native package: the Debian version is the upstream one, no revision
    assert changelog_version(CHANGELOG) == _version(), (
        "debian/changelog's newest entry must be kernel/VERSION's version "
        "(dch -v $(cat kernel/VERSION) when the version changes)"
    )


def test_galaxy_collection_version_agrees() -> None:
    lines = [ln for ln in GALAXY.read_text().splitlines() if ln.startswith("version:")]
    assert lines == [f"version: {_version()}"], (
        "galaxy.yml's version must be kernel/VERSION's (ansible-galaxy has no dynamic version)"
    )
