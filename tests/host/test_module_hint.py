"""The one line mgctl, mgdump and mgcap-extcap print without the module: "modprobe
mgcap" only where modprobe can find it (depmod's modules.dep of the running kernel
names it), else where the module comes from.  Decided on fake /lib/modules trees."""

import os
from pathlib import Path

import pytest

from mgctl import api

RELEASE = "6.1.0-99-amd64"
INSTALLED = "mgcap module not loaded (modprobe mgcap)"


def modules_dir(root: Path, *dep_lines: str) -> Path:
    """root/RELEASE with a modules.dep of these lines."""
    d = root / RELEASE
    d.mkdir(parents=True)
    (d / "modules.dep").write_text("".join(f"{line}\n" for line in dep_lines))
    return d


OTHERS = (
    "kernel/drivers/net/dummy.ko.xz:",
    "kernel/net/core/failover.ko.xz:",
    "kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz",
)


@pytest.mark.parametrize(
    "line",
    [
        "updates/dkms/mgcap.ko.xz:",  # Debian's DKMS (compressed as the kernel's own)
        "updates/dkms/mgcap.ko:",
        "updates/mgcap.ko.zst:",
        "extra/mgcap.ko:",  # make -C kernel install (the kernel's modules_install)
        "mgcap.ko:",
    ],
)
def test_installed_where_modules_dep_names_it(tmp_path: Path, line: str) -> None:
    assert api.module_installed(modules_dir(tmp_path, *OTHERS, line)) is True


@pytest.mark.parametrize(
    "line",
    [
        "kernel/net/mgcap_helper.ko:",
        "updates/dkms/notmgcap.ko:",
        "kernel/net/x.ko: updates/mgcap.kox",
        "# mgcap.ko:",
    ],
)
def test_not_installed_where_it_does_not(tmp_path: Path, line: str) -> None:
    assert api.module_installed(modules_dir(tmp_path, *OTHERS, line)) is False


def test_no_directory_for_the_kernel_is_not_installed(tmp_path: Path) -> None:
    """A container, or a kernel whose modules were never installed here."""
    assert api.module_installed(tmp_path / RELEASE) is False


def test_unknown_without_modules_dep(tmp_path: Path) -> None:
    (tmp_path / RELEASE).mkdir()
    assert api.module_installed(tmp_path / RELEASE) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a directory of mode 000")
def test_unknown_when_unreadable(tmp_path: Path) -> None:
    """As mgcap@.service sees /lib/modules (ProtectKernelModules=)."""
    d = modules_dir(tmp_path, "updates/dkms/mgcap.ko:")
    (tmp_path).chmod(0)
    try:
        assert api.module_installed(d) is None
    finally:
        tmp_path.chmod(0o755)


def test_unknown_when_modules_dep_is_a_directory(tmp_path: Path) -> None:
    """An OSError other than "no such file" (any user): cannot tell."""
    (tmp_path / RELEASE / "modules.dep").mkdir(parents=True)
    assert api.module_installed(tmp_path / RELEASE) is None


def test_the_line_for_each_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "MODULES_ROOT", tmp_path)
    not_installed = api.module_missing(RELEASE)
    assert not_installed == (
        f"mgcap module not loaded, and not installed for kernel {RELEASE} (install it with "
        "DKMS as docs/install.md says, or insmod kernel/mgcap.ko from a build)"
    )
    (tmp_path / RELEASE).mkdir()
    assert api.module_missing(RELEASE) == INSTALLED  # unknown: the usual hint
    (tmp_path / RELEASE / "modules.dep").write_text("kernel/drivers/net/dummy.ko:\n")
    assert api.module_missing(RELEASE) == not_installed
    (tmp_path / RELEASE / "modules.dep").write_text("updates/dkms/mgcap.ko.xz:\n")
    assert api.module_missing(RELEASE) == INSTALLED
    assert "\n" not in not_installed


def test_the_running_kernel_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def installed(d: Path) -> bool:
        seen.append(d)
        return True

    monkeypatch.setattr(api, "module_installed", installed)
    assert api.module_missing() == INSTALLED
    assert seen == [api.MODULES_ROOT / os.uname().release]
