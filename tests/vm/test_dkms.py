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
The test fails if the postinst compiles anyway: its output must not say so, and
the build-id of the module DKMS installed (`modinfo -n mgcap`, `readelf -n`) and
of the loaded module (/sys/module/mgcap/notes) must be the build-id of the module
built on the host, in the tarball. The postinst also builds for
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
import struct
import subprocess
import tarfile
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
NT_GNU_BUILD_ID = 3


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


def plain_module(ko: Path, scratch: Path) -> Path:
    """The module file itself, uncompressed into scratch if DKMS or depmod compressed it."""
    tool = UNPACK.get(ko.suffix)
    if not tool:
        return ko
    plain = scratch / ko.stem
    with plain.open("wb") as f:
        subprocess.run([tool, "-dc", str(ko)], stdout=f, check=True, timeout=120)
    return plain


def build_id(ko: Path, scratch: Path) -> str:
    """The GNU build-id of a module file, in hex, as `readelf -n` reads its
    NT_GNU_BUILD_ID note."""
    out = sh(f"readelf -n {plain_module(ko, scratch)}").stdout
    ids: list[str] = re.findall(r"^\s*Build ID: ([0-9a-f]+)$", out, re.MULTILINE)
    assert len(ids) == 1, f"{ko}: not one build-id note:\n{out}"
    return ids[0]


def note_build_id(note: bytes) -> str:
    """The build-id in a raw ELF note section (/sys/module/*/notes/.note.gnu.build-id):
    namesz, descsz, type, the name "GNU" padded to 4 bytes, then the id."""
    namesz, descsz, kind = struct.unpack_from("=III", note)
    name = note[12 : 12 + namesz]
    assert (kind, name) == (NT_GNU_BUILD_ID, b"GNU\0"), note
    start = 12 + (namesz + 3) // 4 * 4
    return note[start : start + descsz].hex()


def loaded_build_id() -> str:
    return note_build_id(Path("/sys/module/mgcap/notes/.note.gnu.build-id").read_bytes())


def tarball_build_id(tarball: Path, scratch: Path) -> str:
    """The build-id of the module built on the host for this kernel, as the DKMS tarball
    holds it (dkms mktarball: dkms_main_tree/KERNEL/ARCH/module/mgcap.ko*)."""
    pattern = re.compile(rf"(\./)?dkms_main_tree/{re.escape(KVER)}/[^/]+/module/mgcap\.ko\S*")
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and pattern.fullmatch(m.name)]
        assert len(members) == 1, f"{tarball}: {[m.name for m in tar.getmembers()]}"
        data = tar.extractfile(members[0])
        assert data is not None
        ko = scratch / "host" / Path(members[0].name).name
        ko.parent.mkdir()
        ko.write_bytes(data.read())
    return build_id(ko, scratch)


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
    # the guest did not compile: the module DKMS installed is, bit for bit as far as
    # the linker's build-id tells, the one DKMS built on the host and put in the
    # tarball (a compile in the guest, in another directory at another time, would
    # give another id; the log check above catches the compile itself)
    dkms_id = build_id(Path(ko), tmp_path)
    host_id = tarball_build_id(tarball, tmp_path)
    note(f"{KVER}: build-id of {ko}: {dkms_id}; of the host's build in the tarball: {host_id}")
    assert dkms_id == host_id, f"{ko} is not the host's build: {dkms_id} != {host_id}"

    # modprobe loads the module DKMS installed: the loaded module's build-id is the
    # installed file's, the host's build (build/kernel/mgcap.ko, built from the same
    # sources in another directory, normally has another: noted when it does not)
    sh("modprobe mgcap")
    assert Path("/sys/module/mgcap/version").read_text().strip() == VERSION
    assert loaded_build_id() == dkms_id == host_id
    if build_id(KO, tmp_path) == dkms_id:
        note(f"{KVER}: the DKMS build and build/kernel/mgcap.ko have the same build-id")
    sh("rmmod mgcap")

    # installed, not loaded: mgctl's family lookup makes the kernel request the
    # module by its genl alias
    assert not Path("/sys/module/mgcap").exists()
    p = run_mgctl("start dev lo")
    assert p.returncode == 0, p.stderr
    assert Path("/sys/module/mgcap").exists(), "mgctl start did not load the module"
    assert loaded_build_id() == dkms_id == host_id
    assert Path("/sys/class/mgcap/lo").exists()
    p = run_mgctl("stop dev lo")
    assert p.returncode == 0, p.stderr
    sh("rmmod mgcap")
    note(f"{KVER}: whole test: {time.monotonic() - t0:.0f} s")
