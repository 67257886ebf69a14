"""The mgcap-dkms package (debian/), built as CI builds it: what it holds and says.

The package is built from a copy of kernel/ that an earlier build has littered
with objects, as a developer's tree is: only the sources may reach
/usr/src/mgcap-<version>.  Whether DKMS then builds, installs and autoloads
the module is tests/vm/test_dkms.py's part.
"""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pkg.deb import PACKAGE, ROOT, build_deb, version

# what `make -C kernel` leaves behind, and DKMS's source copy must not take along
BUILD_PRODUCTS = (
    "main.o",
    "mgcap.o",
    "mgcap.ko",
    "mgcap.mod",
    "mgcap.mod.c",
    "mgcap.mod.o",
    ".main.o.cmd",
    ".mgcap.ko.cmd",
    "Module.symvers",
    "modules.order",
)
TOOLS = ("dpkg-buildpackage", "dh", "dh_dkms", "dpkg-deb")


def run(*cmd: str | Path) -> str:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run .ci/setup (dh-dkms, debhelper)")
    tmp = tmp_path_factory.mktemp("deb")
    dirty = tmp / "kernel"
    shutil.copytree(ROOT / "kernel", dirty)
    for name in BUILD_PRODUCTS:
        (dirty / name).write_bytes(b"left over from an earlier build\n")
    yield build_deb(tmp / "out", kernel=dirty)


def git_sources() -> set[str]:
    out = run("git", "-C", ROOT, "ls-files", "kernel")
    return {line.removeprefix("kernel/") for line in out.splitlines()}


def test_holds_the_sources_and_nothing_built(deb: Path) -> None:
    srcdir = f"./usr/src/mgcap-{version()}/"
    files = set()
    for line in run("dpkg-deb", "-c", deb).splitlines():
        mode, path = line.split()[0], line.split()[-1]
        if mode.startswith("-"):
            files.add(path)
    under = {p.removeprefix(srcdir) for p in files if p.startswith(srcdir)}
    assert under == git_sources(), "the package's /usr/src tree is kernel/'s sources, exactly"
    others = files - {srcdir + p for p in under}
    assert others == {
        f"./usr/share/doc/{PACKAGE}/changelog.gz",
        f"./usr/share/doc/{PACKAGE}/copyright",
    }, "nothing else: no modules-load.d or modprobe.d entry loads mgcap at boot"


def test_control_fields(deb: Path) -> None:
    fields = run("dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends")
    info = dict(line.split(": ", 1) for line in fields.splitlines())
    assert info["Package"] == PACKAGE
    assert info["Version"] == version()
    assert info["Architecture"] == "all"
    assert info["Depends"].startswith("dkms")


def test_packaged_dkms_conf(deb: Path, tmp_path: Path) -> None:
    run("dpkg-deb", "-x", deb, tmp_path)
    tree = tmp_path / "usr" / "src" / f"mgcap-{version()}"
    conf = (tree / "dkms.conf").read_text()
    # written in literally: dh_dkms parses it without running it
    assert f'PACKAGE_VERSION="{version()}"\n' in conf
    # and it means, to bash (as dkms sources it), what kernel/dkms.conf means
    show = '. "$1"; printf "%s\\n" "$PACKAGE_NAME" "$PACKAGE_VERSION" "${BUILT_MODULE_NAME[0]}"'
    for path in (tree / "dkms.conf", ROOT / "kernel" / "dkms.conf"):
        out = run("bash", "-c", show, "bash", path)
        assert out.split() == ["mgcap", version(), "mgcap"], path
    # the maintainer scripts dh_dkms wrote add and remove this version
    ctl = tmp_path / "DEBIAN"
    run("dpkg-deb", "-e", deb, ctl)
    for script in ("postinst", "prerm"):
        text = (ctl / script).read_text()
        assert "DKMS_NAME=mgcap\n" in text and f"DKMS_VERSION={version()}\n" in text, script


def test_lintian_clean(deb: Path) -> None:
    if shutil.which("lintian") is None:
        pytest.skip("lintian not installed")
    proc = subprocess.run(
        ["lintian", "--fail-on", "none", deb], capture_output=True, text=True, timeout=300
    )
    tags = [line for line in (proc.stdout + proc.stderr).splitlines() if line[:2] in ("E:", "W:")]
    assert tags == [], "\n".join(tags)
