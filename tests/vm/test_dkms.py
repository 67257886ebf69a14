"""mgcap-dkms in the guest: dpkg -i installs the module with DKMS for the
running kernel, modprobe loads that module, and with it installed but not
loaded, `mgctl start` loads it through the genl family alias.

The compile is the one part not done in the guest: under TCG a DKMS build took
over 8 minutes. Before the boot, vmrun installs the same .deb on the host
(tests/pkg/dkms-prebuild.sh: dpkg -i in throw-away overlays, so its postinst
makes DKMS build the module for both kernels from the packaged sources) and
keeps DKMS's result as a DKMS tarball. The guest puts that tarball where the
package's postinst (DKMS's common.postinst) looks for prebuilt modules,
/usr/share/mgcap-dkms/mgcap-<version>.dkms.tar.gz, and runs `dpkg -i`: the
postinst loads it (`dkms ldtarball`) and runs `dkms install` and depmod for
the guest's kernel (and the newest installed one) as it would after a build.
The test fails if the postinst compiles anyway. The postinst also builds for
the newest installed kernel when that is not the running one (6.12 in the 6.1
guest): the other kernels' headers are hidden for the test (in the guest's
overlay of /lib), as on a host that has only the running kernel's headers.
dkms 3.0.10 loads only the first kernel of a DKMS tarball, hence one tarball
per kernel.

The guest's /usr (with /lib, /sbin, /bin: merged /usr) and /var are throw-away
overlays of the host's (virtme-ng's rw overlays): the install changes nothing
on the host, which the test checks before it installs anything.  It removes the
package again at the end, so the later tests, which insmod build/kernel/mgcap.ko
and expect "module not loaded" without it, find no installed mgcap.
"""

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mgctl
from tests.harness.build import DEBUG
from tests.pkg import prebuilt
from tests.pkg.deb import PACKAGE
from tests.vm.conftest import BUILD, KO, Module, run_mgctl, sh

KVER = os.uname().release
VERSION = mgctl.__version__
# where dpkg, dkms and depmod write: each must be a guest-only overlay
WRITTEN = ("/usr/src", f"/lib/modules/{KVER}", "/var/lib/dkms", "/var/lib/dpkg")
DKMS_KO = re.compile(
    rf"/(usr/)?lib/modules/{re.escape(KVER)}/updates/dkms/mgcap\.ko(\.xz|\.zst|\.gz)?"
)
# DKMS's record of the module's versions and builds (gone after a purge)
DKMS_TREE = Path("/var/lib/dkms/mgcap")
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
    t0 = time.monotonic()
    proc = sh(f"dpkg --purge {PACKAGE}", check=False, timeout=600)
    note(f"{KVER}: dpkg --purge: rc {proc.returncode}, {time.monotonic() - t0:.0f} s")
    sh(f"rm -rf /usr/share/{PACKAGE}", check=False)  # the prebuilt tarball
    if proc.returncode == 0 and installed_path() is None and not DKMS_TREE.exists():
        return
    # whatever dpkg left (a failed postinst or prerm): no mgcap stays installed for
    # the later tests (dkms and depmod cost minutes under TCG: only then)
    sh(f"dkms remove mgcap/{VERSION} --all", check=False, timeout=600)
    sh(f"rm -f /lib/modules/{KVER}/updates/dkms/mgcap.ko*; depmod -a {KVER}", timeout=600)


@pytest.fixture
def throwaway_install(mgcap: Module) -> Iterator[Module]:
    for path in WRITTEN:
        kind = fstype(path)
        if kind != "overlay":
            pytest.fail(f"{path} is {kind}, not a guest-only overlay: installing would change it")
    assert installed_path() is None, "mgcap is installed in the guest before the test"
    hidden = [
        build
        for build in Path("/lib/modules").glob("*/build")
        if build.parent.name != KVER and build.is_symlink()
    ]
    for build in hidden:
        if fstype(str(build.parent)) != "overlay":
            pytest.fail(f"{build.parent} is no guest-only overlay: hiding headers would change it")
        build.rename(build.with_name("build.mgcap-hidden"))
    try:
        yield mgcap
    finally:
        for build in hidden:
            build.with_name("build.mgcap-hidden").rename(build)
        if Path("/sys/module/mgcap").exists():
            run_mgctl("stop dev lo")
            sh("rmmod mgcap", check=False)
        remove_package()
        assert installed_path() is None, "mgcap is still installed after dpkg --purge"


def prebuilt_files() -> tuple[Path, Path]:
    """The .deb and the DKMS tarball vmrun made on the host (tests/pkg/prebuilt.py)."""
    where = os.environ.get("MGCAP_DKMS_PREBUILT")
    if not where:
        pytest.fail("MGCAP_DKMS_PREBUILT is not set: run the VM tests with tests.harness.vmrun")
    deb, tarball = prebuilt.deb(Path(where)), prebuilt.tarball(Path(where), KVER)
    for path in (deb, tarball):
        assert path.is_file(), f"{path} missing: vmrun's tests/pkg/prebuilt.py did not make it"
    return deb, tarball


@pytest.mark.skipif(
    os.environ.get("MGCAP_DKMS_VM") != "1",
    reason="the .deb in the guest (~8 min under TCG) runs when named or with MGCAP_DKMS_VM=1",
)
@pytest.mark.skipif(
    BUILD.name == DEBUG,
    reason="the debug kernel has no headers package for DKMS to build against",
)
@pytest.mark.once(
    slot=0,
    why="dpkg -i and --purge take ~8 min under TCG: one kernel's boot of a run installs the .deb",
)
def test_deb_dkms_modprobe_and_autoload(throwaway_install: Module, tmp_path: Path) -> None:
    t0 = time.monotonic()
    deb, tarball = prebuilt_files()
    # where the package's postinst (common.postinst NAME VERSION TARBALL_ROOT)
    # looks for modules built elsewhere
    root = Path(f"/usr/share/{PACKAGE}")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(tarball, root / f"mgcap-{VERSION}.dkms.tar.gz")

    proc = sh(f"dpkg -i {deb}", check=False, timeout=1200)
    t1 = time.monotonic()
    note(f"{KVER}: dpkg -i (postinst: dkms ldtarball + install under TCG): {t1 - t0:.0f} s")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Building initial module" not in out, f"the postinst compiled in the guest:\n{out}"
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
