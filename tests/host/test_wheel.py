"""The wheel `pip install .` and pipx install: what is in it, and that its scripts
run from it.

The wheel is built from a copy of the tracked files (pip builds in the tree it is
given and would leave build/ and mgcap.egg-info/ in the checkout), with pip's
isolated build (setuptools>=77 from the package index, as `pip install .` does).
It is then installed with --no-deps into a fresh venv whose scripts find the
dependencies through PYTHONPATH (this venv's site-packages, which hold no copy of
mgctl: the checkout is installed in editable mode, through a .pth file that
PYTHONPATH does not read), so the scripts run the wheel's code, not the
checkout's."""

import email.parser
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "kernel" / "VERSION").read_text().strip()
SCRIPTS = {
    "mgctl": "mgctl.cli:main",
    "mgdump": "mgctl.dump.cli:main",
    "mgcap-extcap": "mgctl.extcap.cli:main",
}
DATA = f"mgcap-{VERSION}.data/data/share"
SHARED = {
    f"{DATA}/man/man8/mgctl.8": "man/mgctl.8",
    f"{DATA}/man/man8/mgdump.8": "man/mgdump.8",
    f"{DATA}/bash-completion/completions/mgctl": "completions/mgctl",
    f"{DATA}/bash-completion/completions/mgdump": "completions/mgdump",
    # the family's spec, which mgctl loads at run time
    "mgctl/data/mgcap.yaml": "netlink-spec/mgcap.yaml",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("*.whl")
    return built


def test_wheel_holds_the_tools_pages_completions_and_spec(wheel: Path) -> None:
    assert wheel.name == f"mgcap-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for inside, tracked in SHARED.items():
            assert inside in names, f"{inside} is not in {wheel.name}"
            assert z.read(inside) == (ROOT / tracked).read_bytes(), f"{inside} != {tracked}"
        info = f"mgcap-{VERSION}.dist-info"
        points = ConfigParser()
        points.read_string(z.read(f"{info}/entry_points.txt").decode())
        assert dict(points["console_scripts"]) == SCRIPTS
        meta = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "GPL-2.0-only"
    requires = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert sorted(requires) == [
        "construct>=2.10.57",
        "pyroute2>=0.7.1",
        "pyyaml>=6.0.1",
        "rich>=13.8.0",
        "typer>=0.27.2",
    ]
    assert "mgctl/py.typed" in names
    # the tools and nothing of the repository's other parts
    tops = {n.split("/")[0] for n in names}
    assert tops == {"mgctl", f"mgcap-{VERSION}.dist-info", f"mgcap-{VERSION}.data"}, tops


def test_wheel_scripts_run_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        timeout=300,
    )
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])

    def run(*args: str) -> str:
        # from tmp_path, not the checkout: `python -c` puts the cwd first on sys.path
        proc = subprocess.run(
            args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False
        )
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc.stdout

    for script in ("mgctl", "mgdump"):
        out = run(str(env_dir / "bin" / script), "--version")
        assert VERSION in out, out
    code = "import mgctl.spec as s; print(s.__file__); print(s.spec_path())"
    where = run(str(py), "-c", code).split()
    assert all(p.startswith(str(env_dir)) for p in where), where
    assert Path(where[1]).read_bytes() == (ROOT / "netlink-spec" / "mgcap.yaml").read_bytes()
    share = env_dir / "share"
    for page in ("mgctl.8", "mgdump.8"):
        assert (share / "man" / "man8" / page).is_file()
    for comp in ("mgctl", "mgdump"):
        assert (share / "bash-completion" / "completions" / comp).is_file()
