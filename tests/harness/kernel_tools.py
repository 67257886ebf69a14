"""Tools from the kernel tree, out of Debian's linux-source-6.12 tarball, extracted
once into build/linux-tools/: checkpatch.pl, the YNL tools (ynl-gen-c.py, cli.py)
and the genetlink schemas.

    python -m tests.harness.kernel_tools regen   # rewrite kernel/uapi/mgcap_netlink.h
    python -m tests.harness.kernel_tools check   # fail if it is stale

The generator wants the spec inside a kernel tree, so the spec is copied to
Documentation/netlink/specs/ of the extracted tree before each run.
"""

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
TREE = ROOT / "build" / "linux-tools"
SPEC = ROOT / "netlink-spec" / "mgcap.yaml"
UAPI = ROOT / "kernel" / "uapi" / "mgcap_netlink.h"
WANTED = (
    "tools/net/ynl/",
    "Documentation/netlink/",
    "scripts/checkpatch.pl",
    "scripts/spelling.txt",
    "scripts/const_structs.checkpatch",
)


def tree() -> Path:
    """The extracted part of the tree."""
    done = TREE / ".extracted"
    if done.exists():
        return TREE
    if not TARBALL.exists():
        raise FileNotFoundError(f"{TARBALL} missing: apt-get install linux-source-6.12")
    TREE.mkdir(parents=True, exist_ok=True)
    with tarfile.open(TARBALL) as tar:
        for member in tar:
            name = member.name.split("/", 1)[-1]
            if name.startswith(WANTED):
                member.name = name
                tar.extract(member, TREE, filter="data")
    (TREE / "MAINTAINERS").touch()  # ynl-gen-c.py finds the tree's root by it
    done.touch()
    return TREE


def schema(protocol: str = "genetlink") -> Path:
    return tree() / "Documentation" / "netlink" / f"{protocol}.yaml"


def checkpatch() -> Path:
    return tree() / "scripts" / "checkpatch.pl"


def cli() -> Path:
    return tree() / "tools" / "net" / "ynl" / "cli.py"


def generate_uapi() -> str:
    t = tree()
    spec = t / "Documentation" / "netlink" / "specs" / SPEC.name
    shutil.copyfile(SPEC, spec)
    out = t / "mgcap_netlink.h"
    subprocess.run(
        [sys.executable, "ynl-gen-c.py", "--mode", "uapi", "--header", "--spec", str(spec),
         "-o", str(out)],
        cwd=t / "tools" / "net" / "ynl", check=True, timeout=120,
    )  # fmt: skip
    text = out.read_text()
    return text.replace("Documentation/netlink/specs/mgcap.yaml", "netlink-spec/mgcap.yaml")


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "check"
    text = generate_uapi()
    if what == "regen":
        UAPI.write_text(text)
        print(f"wrote {UAPI.relative_to(ROOT)}")
    elif UAPI.read_text() != text:
        sys.exit(f"{UAPI.relative_to(ROOT)} is stale: python -m tests.harness.kernel_tools regen")


if __name__ == "__main__":
    main()
