"""The mgcap.capture ansible collection without a kernel: its documentation against
its argument specs (and ansible-doc's own validation), the capture module's decision
function, the dump module's packet count and timeout, the connection plugin's
command, the collection build, the example playbooks' syntax.

The modules run against the real kernel module in tests/vm/test_ansible_fleet.py."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from mgctl import pcapng
from mgctl.record import Record, build_record

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "ansible_collections" / "mgcap" / "capture"
PLUGINS = COLLECTION / "plugins"
BIN = Path(sys.executable).parent
MODULES = ("mgcap_capture", "mgcap_dump")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_collection_{path.stem}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


capture = load(PLUGINS / "modules" / "mgcap_capture.py")
dump = load(PLUGINS / "modules" / "mgcap_dump.py")
netns = load(PLUGINS / "connection" / "netns.py")


def ansible_env(tmp: Path) -> dict[str, str]:
    return dict(
        os.environ,
        HOME=str(tmp),
        ANSIBLE_LOCAL_TEMP=str(tmp / "local"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT),
        ANSIBLE_NOCOLOR="1",
    )


def ansible(
    tool: str, *args: str, tmp: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One of ansible's commands (ansible-doc, ansible-playbook, ...) from the venv, in
    ansible_env(tmp) plus env, its output captured."""
    return subprocess.run(
        [str(BIN / tool), *args],
        cwd=cwd,
        env=ansible_env(tmp) | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- documentation -------------------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name: str) -> None:
    """DOCUMENTATION, EXAMPLES and RETURN are YAML; the documented options are the
    argument spec's, with the same types, defaults, choices and required flags."""
    mod = {"mgcap_capture": capture, "mgcap_dump": dump}[name]
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["module"] == name
    assert isinstance(yaml.safe_load(mod.EXAMPLES), list)
    assert isinstance(yaml.safe_load(mod.RETURN), dict)
    spec: dict[str, dict[str, Any]] = mod.ARGUMENT_SPEC
    assert doc["options"].keys() == spec.keys()
    for opt, d in doc["options"].items():
        s = spec[opt]
        assert d["type"] == s["type"], opt
        assert d.get("required", False) == s.get("required", False), opt
        assert d.get("default") == s.get("default"), opt
        assert d.get("choices") == s.get("choices"), opt
        assert d["description"], opt
    for example in yaml.safe_load(mod.EXAMPLES):
        args = example.get(f"mgcap.capture.{name}")
        if args is not None:
            assert args.keys() <= spec.keys(), example


def test_connection_documentation() -> None:
    doc = yaml.safe_load(netns.DOCUMENTATION)
    assert doc["name"] == "netns"
    # the local connection's code reads these two: they must be defined here too
    assert {"netns", "ip_executable", "become_success_timeout", "become_strip_preamble"} <= set(
        doc["options"]
    )
    assert [v["name"] for v in doc["options"]["netns"]["vars"]][-1] == "ansible_netns_name"


def test_ansible_doc_validates(tmp_path: Path) -> None:
    """ansible-doc loads each plugin's documentation with ansible's own schema."""
    for kind, names in (
        ("module", [f"mgcap.capture.{m}" for m in MODULES]),
        ("connection", ["mgcap.capture.netns"]),
        ("role", ["mgcap.capture.bounded_capture"]),
    ):
        proc = ansible("ansible-doc", "--json", "-t", kind, *names, tmp=tmp_path)
        assert proc.returncode == 0, proc.stderr
        docs = json.loads(proc.stdout)
        assert set(docs) == set(names), docs.keys()
        assert "WARNING" not in proc.stderr, proc.stderr


def test_role_defaults_match_its_argument_spec() -> None:
    role = COLLECTION / "roles" / "bounded_capture"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert {k: v["default"] for k, v in options.items() if "default" in v} == defaults


def test_versions_and_runtime() -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert galaxy["version"] == (ROOT / "kernel" / "VERSION").read_text().strip()
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=")


# --- mgcap_capture's decision ----------------------------------------------------


def dev(**kw: Any) -> dict[str, Any]:
    """A device as `mgctl -j -s show dev eth1` prints it."""
    base: dict[str, Any] = {"ifindex": 3, "ifname": "eth1", "capturing": False}
    if kw:
        base |= {"capturing": True, "mode": "mirror", "snaplen": 96, "filter": None}
        base |= {"ring_size": 4194304, "nr_rings": 2, "stats": {"seen_packets": 5}}
    return base | kw


def want(**kw: Any) -> dict[str, Any]:
    base = {"dev": "eth1", "state": "started", "mode": None, "snaplen": None, "filter": None}
    return base | kw


def test_plan_start() -> None:
    step = capture.plan(dev(), want(mode="drop", snaplen=0, filter="udp  port 53"))
    assert step["action"] == "start"
    assert step["words"] == [
        "start", "dev", "eth1", "mode", "drop", "snaplen", "0", "filter", "udp port 53",
    ]  # fmt: skip
    assert step["before"] == {"capturing": False, "mode": None, "snaplen": None, "filter": None}
    assert step["after"] == {
        "capturing": True, "mode": "drop", "snaplen": 262144, "filter": "udp port 53",
    }  # fmt: skip


def test_plan_start_predicts_the_module_defaults() -> None:
    step = capture.plan(dev(), want(), {"mode": "drop", "snaplen": 128})
    assert step["words"] == ["start", "dev", "eth1"]
    assert step["after"] == {"capturing": True, "mode": "drop", "snaplen": 128, "filter": ""}
    # an empty filter starts without one
    assert capture.plan(dev(), want(filter=""))["words"] == ["start", "dev", "eth1"]


def test_plan_nothing_to_do() -> None:
    running = dev(mode="drop", snaplen=262144, filter={"expr": "udp port 53", "insns": 6})
    for w in (
        want(),
        want(mode="drop"),
        want(snaplen=0),  # 0 is SNAPLEN_MAX, which show reports
        want(snaplen=262144, filter=" udp   port 53 "),
    ):
        step = capture.plan(running, w)
        assert step["action"] == "none" and step["words"] == [], w
        assert step["before"] == step["after"]
    assert capture.plan(dev(), want(state="stopped"))["action"] == "none"


def test_plan_set_changes_only_what_differs() -> None:
    running = dev(mode="drop", filter={"expr": "udp", "insns": 4})
    step = capture.plan(running, want(mode="mirror", snaplen=96, filter="tcp"))
    assert step["action"] == "set"
    assert step["words"] == ["set", "dev", "eth1", "mode", "mirror", "filter", "tcp"]
    assert step["before"]["mode"] == "drop" and step["after"]["mode"] == "mirror"
    assert step["after"]["filter"] == "tcp" and step["after"]["snaplen"] == 96
    step = capture.plan(running, want(snaplen=0, filter=""))
    assert step["words"] == ["set", "dev", "eth1", "snaplen", "0", "filter", "none"]
    assert step["after"]["filter"] == "" and step["after"]["snaplen"] == 262144


def test_plan_program_without_expression() -> None:
    """A filter set through the API without an expression is a filter all the same."""
    running = dev(filter={"expr": "", "insns": 7})
    assert capture.settings(running)["filter"] == "<7 instructions>"
    assert capture.plan(running, want(filter=""))["words"][-2:] == ["filter", "none"]
    assert capture.plan(running, want())["action"] == "none"


def test_plan_stop() -> None:
    step = capture.plan(dev(mode="drop"), want(state="stopped", mode="mirror"))
    assert step["action"] == "stop" and step["words"] == ["stop", "dev", "eth1"]
    assert step["after"] == {"capturing": False, "mode": None, "snaplen": None, "filter": None}


def test_module_defaults_and_error_line(tmp_path: Path) -> None:
    assert capture.module_defaults(str(tmp_path)) == {"mode": None, "snaplen": None}
    (tmp_path / "mode").write_text("drop\n")
    (tmp_path / "snaplen").write_text("128\n")
    assert capture.module_defaults(str(tmp_path)) == {"mode": "drop", "snaplen": 128}
    assert capture.error_line("Error: no such device.\n") == "Error: no such device."
    assert capture.error_line("", "") == ""


# --- mgcap_dump ----------------------------------------------------------------


def capture_file(path: Path, n: int) -> Path:
    frame = bytes(range(60))
    recs = b"".join(build_record(Record(0, 1_700_000_000 + i, 60, frame)) for i in range(n))
    pcapng.write_file(str(path), [pcapng.Interface("eth1", snaplen=96)], recs)
    return path


def test_count_packets(tmp_path: Path) -> None:
    path = capture_file(tmp_path / "f.pcapng", 7)
    assert dump.file_packets(str(path)) == 7
    data = path.read_bytes()
    # other blocks are not packets; a second section counts too
    other = pcapng.block(0x0BAD, b"abcd")
    (tmp_path / "g").write_bytes(data + other + data)
    assert dump.file_packets(str(tmp_path / "g")) == 14
    # a cut-off last block is not counted
    (tmp_path / "h").write_bytes(data[:-5])
    assert dump.file_packets(str(tmp_path / "h")) == 6
    (tmp_path / "i").write_bytes(b"not a capture file")
    with pytest.raises(dump.NotPcapng):
        dump.file_packets(str(tmp_path / "i"))


def test_count_packets_big_endian() -> None:
    import io
    import struct

    def blk(t: int, body: bytes) -> bytes:
        return struct.pack(">II", t, len(body) + 12) + body + struct.pack(">I", len(body) + 12)

    shb = blk(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = blk(1, struct.pack(">HHI", 1, 0, 96))
    epb = blk(6, struct.pack(">IIIII", 0, 0, 0, 4, 4) + b"abcd")
    assert dump.count_packets(io.BytesIO(shb + idb + epb * 3)) == 3


FAKE_MGDUMP = """\
#!/bin/sh
# mgdump -i DEV -c N -w FILE --stats-json PATH: writes a partial file, then waits;
# SIGTERM ends it as mgdump ends, with its counters
cp "$FAKE_PARTIAL" "$6"
trap 'echo "{\\"reason\\": \\"signal\\", \\"written\\": 3}" > "$8"; exit 0' TERM
echo "mgdump: listening on $2" >&2
while :; do sleep 0.1; done
"""


def run_module(path: Path, args: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """The module as ansible runs it on a host, given its arguments directly."""
    argfile = tmp / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, str(path), str(argfile)],
        env=ansible_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_dump_timeout_and_creates(tmp_path: Path) -> None:
    """Fewer packets than count within the timeout: mgdump gets SIGTERM, the task
    fails saying how many came, no file is left. An existing file: nothing runs."""
    fake = tmp_path / "mgdump"
    fake.write_text(FAKE_MGDUMP)
    fake.chmod(0o755)
    os.environ["FAKE_PARTIAL"] = str(capture_file(tmp_path / "partial.pcapng", 3))
    dest = tmp_path / "out.pcapng"
    args = {"dev": "eth1", "dest": str(dest), "count": 10, "timeout": 2, "mgdump": str(fake)}
    try:
        res = run_module(PLUGINS / "modules" / "mgcap_dump.py", args, tmp_path)
    finally:
        del os.environ["FAKE_PARTIAL"]
    assert res["failed"] is True
    assert res["msg"] == f"only 3 of 10 packets arrived on eth1 within 2 s; {dest} not written"
    assert res["stats"]["written"] == 3
    assert not dest.exists() and not list(tmp_path.glob(".out.pcapng*"))

    capture_file(dest, 10)
    res = run_module(PLUGINS / "modules" / "mgcap_dump.py", args, tmp_path)
    assert res["changed"] is False and res["packets"] == 10 and "failed" not in res


def test_dump_failure_reason() -> None:
    """mgdump's reason line, not the counters printed after it."""
    err = (
        "mgdump: listening on eth1, link-type EN10MB (Ethernet), snapshot length 96 bytes\n"
        "mgdump: capture ended (device removed or capture stopped)\n"
        "3 packets written\n0 packets dropped by mgdump\n"
    )
    assert dump.reason(err) == "mgdump: capture ended (device removed or capture stopped)"
    assert dump.reason("Traceback\nOSError: x\n") == "OSError: x"
    assert dump.reason("") == ""


# --- the connection plugin -------------------------------------------------------


def test_netns_wraps_commands() -> None:
    assert netns.wrap("/bin/sh -c 'echo hi'", "ip", "blue") == (
        "ip netns exec blue /bin/sh -c 'echo hi'"
    )
    assert netns.wrap("true", "/sbin/ip", "a b") == "/sbin/ip netns exec 'a b' true"
    assert netns.wrap(["ls", "-l"], "ip", "blue") == ["ip", "netns", "exec", "blue", "ls", "-l"]


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace of this machine (root only), removed afterwards."""
    name = f"mgans{os.getpid()}"
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and ip to make a network namespace")
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"ip netns add: {made.stderr.decode().strip()}")
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=True)


def test_netns_connection_runs_in_the_namespace(namespace: str, tmp_path: Path) -> None:
    """A task of a host reached with mgcap.capture.netns runs in its namespace: a
    module (pipelined, as the fleet runs them) and the command it runs are in the
    namespace, and see only its devices (ip netns exec mounts its /sys)."""
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - hosts: all
              gather_facts: false
              tasks:
                - ansible.builtin.command: readlink /proc/self/ns/net
                  register: ns
                  changed_when: false
                - ansible.builtin.find:
                    paths: /sys/class/net
                    file_type: any
                  register: devices
                - ansible.builtin.debug:
                    msg: "{{ ns.stdout }} devices={{ names | sort | join(',') }}"
                  vars:
                    names: "{{ devices.files | map(attribute='path') | map('basename') }}"
            """
        )
    )
    proc = ansible(
        "ansible-playbook",
        "-i",
        f"{namespace},",
        "-c",
        "mgcap.capture.netns",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(playbook),
        tmp=tmp_path,
        env={"ANSIBLE_PIPELINING": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inode = os.stat(f"/run/netns/{namespace}").st_ino
    assert f"net:[{inode}] devices=lo" in proc.stdout, proc.stdout


# --- build and playbooks ---------------------------------------------------------


def test_collection_builds(tmp_path: Path) -> None:
    proc = ansible(
        "ansible-galaxy", "collection", "build", "--output-path", str(tmp_path),
        tmp=tmp_path, cwd=COLLECTION,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = (ROOT / "kernel" / "VERSION").read_text().strip()
    tarball = tmp_path / f"mgcap-capture-{version}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert {
        "plugins/modules/mgcap_capture.py",
        "plugins/modules/mgcap_dump.py",
        "plugins/connection/netns.py",
        "roles/bounded_capture/tasks/main.yml",
        "meta/runtime.yml",
        "README.md",
    } <= names
    assert not any("__pycache__" in n for n in names)
    assert manifest["collection_info"]["version"] == version


@pytest.mark.parametrize("playbook", ["fleet-capture.yml", "mgcap-playbook.yml"])
def test_example_playbooks_parse(playbook: str, tmp_path: Path) -> None:
    """The examples name modules, roles and options ansible finds in the collection."""
    proc = ansible(
        "ansible-playbook",
        "--syntax-check",
        "-i",
        str(ROOT / "docs" / "examples" / "fleet-inventory.ini"),
        str(ROOT / "docs" / "examples" / playbook),
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
