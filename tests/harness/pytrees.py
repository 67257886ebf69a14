"""Python's own files on read-only disk images, for the guest.

The guest sees the host's files over 9p without caching (virtme-ng's virtiofsd
needs the Rust daemon, which this machine kind does not have), so every import
is several round trips into qemu: under TCG a Python start-up that imports
pyroute2 took about 60 s, most of it waiting on 9p. The standard library and the
venv's site-packages change only when packages are installed, so the harness
copies them into two ext4 images (``mkfs.ext4 -d``, no mount needed on the host)
and the guest mounts them read-only over the same paths (tests/harness/guest.sh):
the same files, read through the guest's page cache. Measured on 6.12 under TCG:
``python -c pass`` 9 s -> 5 s, ``import pyroute2`` 61 s -> 13 s.

Images are rebuilt when any file of their tree changes (path, size, mtime).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# the interpreter's own tests and the base installation's packages (the venv
# does not see them) stay out of the standard library's image
STDLIB_SKIP = ("site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo")


@dataclass(frozen=True)
class Tree:
    name: str
    path: Path  # the directory the guest mounts the image over
    skip: tuple[str, ...] = ()  # top-level entries left out


def python_trees() -> list[Tree]:
    """The running interpreter's shared library (when it has one), its standard
    library and its venv's packages, in the order the guest mounts them."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    trees = []
    # a --enable-shared build (pyenv's) maps libpython (23 MiB) at every start:
    # over uncached 9p that was ~2.5 s of each guest start; its directory holds
    # the standard library too, which keeps its own image (mounted on top)
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "/nonexistent")
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
    if shared and stdlib.parent == libdir and (libdir / library).exists():
        trees.append(Tree("libpython", libdir, (stdlib.name,)))
    trees.append(Tree("stdlib", stdlib, STDLIB_SKIP))
    seen = {stdlib}
    for key in ("purelib", "platlib"):
        site = Path(sysconfig.get_paths()[key])
        # (without a venv the packages are under the standard library, whose
        # image keeps an empty directory to mount them on)
        if site not in seen and site.is_dir():
            trees.append(Tree(f"site{len(trees)}", site))
            seen.add(site)
    return trees


def fingerprint(tree: Tree) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(tree.path):
        if Path(dirpath) == tree.path:
            dirnames[:] = [d for d in dirnames if d not in tree.skip]
        dirnames.sort()
        for name in sorted(filenames):
            st = os.lstat(os.path.join(dirpath, name))
            h.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def build_image(tree: Tree, dest: Path) -> Path:
    """dest/<name>.ext4 holding tree.path (cached: rebuilt only when the tree changed)."""
    dest.mkdir(parents=True, exist_ok=True)
    image = dest / f"{tree.name}.ext4"
    stamp = dest / f"{tree.name}.stamp"
    key = f"{tree.path}\n{fingerprint(tree)}\n"
    if image.exists() and stamp.exists() and stamp.read_text() == key:
        return image
    source = tree.path
    staging = dest / f"{tree.name}.staging"
    if tree.skip:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(
            tree.path,
            staging,
            symlinks=True,
            ignore=lambda d, names: [n for n in names if Path(d) == tree.path and n in tree.skip],
        )
        for name in tree.skip:  # empty, to mount on (site-packages without a venv)
            if (tree.path / name).is_dir():
                (staging / name).mkdir()
        source = staging
    used = files = 0
    for d, dirnames, filenames in os.walk(source):
        files += len(dirnames) + len(filenames)
        used += sum(os.lstat(os.path.join(d, f)).st_size for f in filenames)
    size_mib = used * 13 // 10 // (1 << 20) + 64  # room for metadata and small files' blocks
    image.unlink(missing_ok=True)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-N", str(files * 2 + 1024),
         "-L", f"mgcap-{tree.name}", "-d", str(source), str(image), f"{size_mib}M"],
        check=True,
    )  # fmt: skip
    if staging.exists():
        shutil.rmtree(staging)
    stamp.write_text(key)
    return image


def precompile(root: Path) -> None:
    """Byte-compile the checkout's Python for the guest, which must not write into
    the host's tree (PYTHONDONTWRITEBYTECODE) and would otherwise compile mgctl and
    the tests at every start under TCG: compileall for the packages, a host-side
    collection for pytest's assertion-rewritten test modules (pytest reads its
    cache even when it may not write it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j0", "mgctl", "tests"],
        cwd=root, env=env, check=True,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
         "tests/vm"],
        cwd=root, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def prepare(dest: Path) -> str:
    """Build the images; the value of MGCAP_PYTREES for guest.sh ("IMAGE=DIR ...").

    Empty (the guest reads Python over 9p, only slower) when mkfs.ext4 is missing
    or a path has a space."""
    if shutil.which("mkfs.ext4") is None:
        print("== python trees stay on 9p: no mkfs.ext4 (apt install e2fsprogs)", flush=True)
        return ""
    trees = python_trees()
    # guest.sh splits the value at spaces and at the first "="
    if "=" in str(dest) or any(" " in str(p) for p in [dest, *(t.path for t in trees)]):
        return ""
    return " ".join(f"{build_image(tree, dest)}={tree.path}" for tree in trees)
