"""mgcap-dkms in the guest: dpkg -i builds and installs the module with DKMS for
the running kernel, modprobe loads that module, and with it installed but not
loaded, `mgctl start` loads it through the genl family alias.

The guest's /usr (with /lib, /sbin, /bin: merged /usr) and /var are throw-away
overlays of the host's (virtme-ng's rw overlays): the install changes nothing
on the host, which the test checks before it installs anything.  It removes the
package again at the end, so the later tests, which insmod build/kernel/mgcap.ko
and expect "module not loaded" without it, find no installed mgcap.
"""

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mgctl
from tests.pkg.deb import PACKAGE, build_deb
from tests.vm.conftest import KO, Module, run_mgctl, sh

KVER = os.uname().release
VERSION = mgctl.__version__
# where dpkg, dkms and depmod write: each must be a guest-only overlay
WRITTEN = ("/usr/src", f"/lib/modules/{KVER}", "/var/lib/dkms", "/var/lib/dpkg")
DKMS_KO = re.compile(
    rf"/(usr/)?lib/modules/{re.escape(KVER)}/updates/dkms/mgcap\.ko(\.xz|\.zst|\.gz)?"
)
UNPACK = {".xz": "xz", ".zst": "zstd", ".gz": "gzip"}


def note(text: str) -> None:
    """Timings and the like, kept in $MGCAP_OUT/test_dkms.txt on the host."""
    print(text)
    out = os.environ.get("MGCAP_OUT")
    if out:
        with open(Path(out) / "test_dkms.txt", "a") as f:
            f.write(text + "\n")


def fstype(path: str) -> str:
    return sh(f"findmnt -n -o FSTYPE -T {path}").stdout.strip()


def installed_path() -> str | None:
    proc = sh("modinfo -n mgcap", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def build_id(ko: str, scratch: Path) -> bytes:
    """The GNU build-id note of a module file, as /sys/module/*/notes shows it."""
    plain, note_file = scratch / "plain.ko", scratch / "build-id"
    tool = UNPACK.get(Path(ko).suffix)
    if tool:
        with plain.open("wb") as f:
            subprocess.run([tool, "-dc", ko], stdout=f, check=True, timeout=120)
    else:
        plain.write_bytes(Path(ko).read_bytes())
    sh(f"objcopy -O binary --only-section=.note.gnu.build-id {plain} {note_file}")
    return note_file.read_bytes()


def loaded_build_id() -> bytes:
    return Path("/sys/module/mgcap/notes/.note.gnu.build-id").read_bytes()


def remove_package() -> None:
    sh(f"dpkg --purge {PACKAGE}", check=False, timeout=600)
    # whatever dpkg left (a failed postinst): no mgcap stays installed for later tests
    sh(f"dkms remove mgcap/{VERSION} --all", check=False, timeout=600)
    sh(f"rm -f /lib/modules/{KVER}/updates/dkms/mgcap.ko*; depmod -a {KVER}", timeout=600)


@pytest.fixture
def throwaway_install(mgcap: Module) -> Iterator[Module]:
    for path in WRITTEN:
        kind = fstype(path)
        if kind != "overlay":
            pytest.fail(f"{path} is {kind}, not a guest-only overlay: installing would change it")
    assert installed_path() is None, "mgcap is installed in the guest before the test"
    try:
        yield mgcap
    finally:
        if Path("/sys/module/mgcap").exists():
            run_mgctl("stop dev lo")
            sh("rmmod mgcap", check=False)
        remove_package()
        assert installed_path() is None, "mgcap is still installed after dpkg --purge"


@pytest.mark.skip(
    reason="unfinished (issue 15): the DKMS compile inside dpkg -i took over 8 minutes "
    "under TCG and never completed; the package is checked on the host (test_deb.py)"
)
def test_deb_dkms_modprobe_and_autoload(throwaway_install: Module, tmp_path: Path) -> None:
    t0 = time.monotonic()
    deb = build_deb(tmp_path / "deb")
    t1 = time.monotonic()
    note(f"{KVER}: dpkg-buildpackage in the guest: {t1 - t0:.0f} s")

    # the postinst adds, builds and installs the module for the running kernel
    # (and the newest installed one, if that is another)
    proc = sh(f"dpkg -i {deb}", check=False, timeout=1800)
    t2 = time.monotonic()
    note(f"{KVER}: dpkg -i (dkms build + install under TCG): {t2 - t1:.0f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = sh(f"dkms status mgcap/{VERSION} -k {KVER}").stdout
    note(f"{KVER}: dkms status: {status.strip()}")
    assert re.search(rf"mgcap/{re.escape(VERSION)}, {re.escape(KVER)}, \S+: installed", status)

    ko = installed_path()
    assert ko is not None and DKMS_KO.fullmatch(ko), f"modinfo -n mgcap: {ko}"
    assert sh("modinfo -F version mgcap").stdout.strip() == VERSION
    assert "net-pf-16-proto-16-family-mgcap" in sh("modinfo -F alias mgcap").stdout.split()
    dkms_id = build_id(ko, tmp_path)
    assert dkms_id, f"{ko} has no build-id note"

    # modprobe loads the module DKMS built: the loaded module's build-id is the
    # installed file's (build/kernel/mgcap.ko, built from the same sources in
    # another directory, normally has another: noted when it does not)
    sh("modprobe mgcap")
    assert Path("/sys/module/mgcap/version").read_text().strip() == VERSION
    assert loaded_build_id() == dkms_id
    if build_id(str(KO), tmp_path) == dkms_id:
        note(f"{KVER}: the DKMS build and build/kernel/mgcap.ko have the same build-id")
    sh("rmmod mgcap")

    # installed, not loaded: mgctl's family lookup makes the kernel request the
    # module by its genl alias
    assert not Path("/sys/module/mgcap").exists()
    p = run_mgctl("start dev lo")
    assert p.returncode == 0, p.stderr
    assert Path("/sys/module/mgcap").exists(), "mgctl start did not load the module"
    assert loaded_build_id() == dkms_id
    assert Path("/sys/class/mgcap/lo").exists()
    p = run_mgctl("stop dev lo")
    assert p.returncode == 0, p.stderr
    sh("rmmod mgcap")
    note(f"{KVER}: whole test: {time.monotonic() - t0:.0f} s")
