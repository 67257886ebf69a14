"""systemd/: the unit mgcap@.service, the example /etc/mgcap/IF.conf, the modules-load.d
entry.  systemd-analyze (no running systemd needed) verifies the unit as it stands and
rates its hardening; the example is plain shell assignments; the command line systemd
would run, with the unit's defaults and with the example, is one that mgdump's own
parser and checks accept (mgdump is stopped just before it would capture); the system
calls mgdump makes pass the unit's filter."""

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from mgctl import filter as bpf
from mgctl.api import MgcapError
from mgctl.dump import cli as dump_cli
from mgctl.dump import expression
from mgctl.dump.session import Options

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "mgcap@.service"
EXAMPLE = SYSTEMD / "mgcap" / "eth1.conf"
MODULES_LOAD = SYSTEMD / "modules-load.d" / "mgcap.conf"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="no systemd-analyze")
# where the unit's specifiers point for a system unit
STATE = "/var/lib"


def settings(text: str) -> Iterator[tuple[str, str, str]]:
    """(section, key, value) of each assignment of a unit file, in order."""
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), "no continued lines: the parsing here is simple"
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, value = line.split("=", 1)
        yield section, key, value


def unit_values(key: str) -> list[str]:
    return [v for s, k, v in settings(UNIT.read_text()) if s == "Service" and k == key]


def unescape(instance: str) -> str:
    r"""%I from %i: systemd-escape's \xNN undone, '-' is '/'."""
    out = instance.replace("-", "/")
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), out)


def specifiers(word: str, instance: str) -> str:
    """The % specifiers the unit uses, as systemd resolves them for a system unit."""
    table = {"i": instance, "I": unescape(instance), "S": STATE, "%": "%"}

    def one(m: re.Match[str]) -> str:
        assert m.group(1) in table, f"specifier %{m.group(1)} not handled here"
        return table[m.group(1)]

    return re.sub(r"%(.)", one, word)


def env_file(path: Path) -> dict[str, str]:
    """The variables of an EnvironmentFile as sh reads it (set -a; . FILE)."""
    done = subprocess.run(
        ["sh", "-c", 'set -a; . "$0"; exec env -0', str(path)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == ""
    pairs = (item.split("=", 1) for item in done.stdout.split("\0") if item)
    return {k: v for k, v in pairs if k.startswith("MGCAP_")}


def env_file_as_systemd(text: str) -> dict[str, str]:
    """The same for the subset of the format the example keeps to, read by systemd's
    rules (systemd.exec(5), EnvironmentFile=): NAME=value or NAME="value", where a
    double-quoted value has no escapes or expansions in it."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip()[0] in "#;":
            continue
        m = re.fullmatch(r'(MGCAP_[A-Z_]+)=(?:"([^"\\$`]*)"|([^"\'\\$`\s]*))', line)
        assert m, f"not a plain assignment: {line!r}"
        out[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def environment(conf: dict[str, str] | None, instance: str) -> dict[str, str]:
    """The unit's Environment= defaults, each replaced by the conf file's value."""
    env: dict[str, str] = {}
    for value in unit_values("Environment"):
        for assignment in shlex.split(value):
            name, val = assignment.split("=", 1)
            env[name] = specifiers(val, instance)
    env.update(conf or {})
    return env


def exec_start(env: dict[str, str], instance: str) -> list[str]:
    """ExecStart= as systemd expands it (systemd.service(5), "Command lines"): a word
    $NAME becomes the variable's words (quotes respected, then removed; none when
    empty or unset), ${NAME} within a word its value as it is."""
    (line,) = unit_values("ExecStart")
    assert not re.search("[\"'\\\\]", line), "no quoting on the line: split as sh would"
    argv: list[str] = []
    for word in shlex.split(line):
        word = specifiers(word, instance)
        m = re.fullmatch(r"\$([A-Za-z_]\w*)", word)
        if m:
            argv += shlex.split(env.get(m.group(1), ""))
        else:
            argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


def mgdump_options() -> set[str]:
    """Every option name of mgdump's parser."""
    command = typer.main.get_command(dump_cli.app)
    return {name for p in command.params for name in (*p.opts, *p.secondary_opts)}


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """mgdump's command function runs, up to the capture: run() only records what it
    was given.  Filters compile for Ethernet alone (no module, no live handle)."""
    calls: list[dict[str, Any]] = []

    def run(opts: Options, quiet: bool = False, stats_json: str | None = None) -> int:
        calls.append({"opts": opts, "quiet": quiet, "stats_json": stats_json})
        return 0

    def missing() -> None:
        raise MgcapError("mgcap module not loaded (modprobe mgcap)")

    monkeypatch.setattr(dump_cli, "run", run)
    monkeypatch.setattr(expression, "Mgcap", missing)
    monkeypatch.setattr(bpf, "_live_handle", lambda device, snaplen: None)
    yield calls


def parse(argv: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    assert Path(argv[0]).name == "mgdump"
    with pytest.raises(SystemExit) as ended:
        dump_cli.app(prog_name="mgdump", args=argv[1:], standalone_mode=False)
    assert ended.value.code == 0
    (call,) = calls
    return call


def test_example_is_shell_assignments_that_systemd_reads_alike() -> None:
    text = EXAMPLE.read_text()
    by_sh = env_file(EXAMPLE)
    assert by_sh == env_file_as_systemd(text)
    assert set(by_sh) == {
        "MGCAP_CAPTURE",
        "MGCAP_FILE",
        "MGCAP_ROTATE",
        "MGCAP_FILTER",
        "MGCAP_OPTIONS",
    }
    # every variable the example sets is one the command line uses
    (line,) = unit_values("ExecStart")
    assert set(re.findall(r"\$\{?(MGCAP_\w+)", line)) == set(by_sh)


def test_every_option_of_the_example_is_mgdumps() -> None:
    known = mgdump_options()
    conf = env_file(EXAMPLE)
    for name in ("MGCAP_CAPTURE", "MGCAP_ROTATE", "MGCAP_OPTIONS"):
        for word in shlex.split(conf[name]):
            if word.startswith("-"):
                assert word in known, f"{name}: {word} is no option of mgdump"
    argv = exec_start(environment(conf, "eth1"), "eth1")
    for word in argv[1 : argv.index("--")]:
        if word.startswith("-"):
            assert word in known, f"ExecStart: {word} is no option of mgdump"


def test_the_example_is_a_command_mgdump_takes(parsed: list[dict[str, Any]]) -> None:
    argv = exec_start(environment(env_file(EXAMPLE), "eth1"), "eth1")
    assert argv[0] == "/usr/local/bin/mgdump"
    call = parse(argv, parsed)
    opts = call["opts"]
    assert opts.interfaces == ["eth1"]
    assert opts.write == "eth1.pcapng"  # in the working directory, the state directory
    assert (opts.mode, opts.snaplen, opts.ring_size) == ("drop", 256, 16 << 20)
    assert (opts.rotate_bytes, opts.max_files, opts.rotate_seconds) == (100_000_000, 20, None)
    assert opts.filter == "not (tcp port 22)"
    assert opts.buffer_bytes == 262144 * 1024
    assert call["stats_json"] == "stats.json"
    assert not call["quiet"]  # the listening line goes to the journal


def test_without_a_conf_file_the_defaults_are_a_bounded_mirror_capture(
    parsed: list[dict[str, Any]],
) -> None:
    """EnvironmentFile=- : no /etc/mgcap/IF.conf is no error."""
    assert any(v.startswith("-/etc/mgcap/") for v in unit_values("EnvironmentFile"))
    opts = parse(exec_start(environment(None, "eth1"), "eth1"), parsed)["opts"]
    assert (opts.write, opts.rotate_bytes, opts.max_files) == ("eth1.pcapng", 100_000_000, 10)
    assert (opts.mode, opts.snaplen, opts.ring_size, opts.filter) == (None, None, None, None)


def test_an_escaped_instance_is_the_device_name(parsed: list[dict[str, Any]]) -> None:
    """mgcap@br\\x2dlan.service (systemd-escape --template) captures br-lan."""
    opts = parse(exec_start(environment(None, r"br\x2dlan"), r"br\x2dlan"), parsed)["opts"]
    assert (opts.interfaces, opts.write) == (["br-lan"], "br-lan.pcapng")


@pytest.mark.parametrize(
    ("conf", "says"),
    [
        ({"MGCAP_OPTIONS": "--snaplen 96"}, "No such option"),
        ({"MGCAP_ROTATE": "-W 3"}, "-W needs -C or -G"),
        ({"MGCAP_CAPTURE": "--mode fast"}, "is not mirror or drop"),
        ({"MGCAP_FILTER": "udp prt 53"}, "syntax error"),
    ],
)
def test_a_wrong_conf_is_refused_by_mgdumps_checks(
    parsed: list[dict[str, Any]], conf: dict[str, str], says: str
) -> None:
    """What the two tests above pass is what mgdump would refuse with exit status 2."""
    argv = exec_start(environment(conf, "eth1"), "eth1")
    with pytest.raises(Exception) as refused:
        dump_cli.app(prog_name="mgdump", args=argv[1:], standalone_mode=False)
    assert says in str(refused.value) or says in getattr(refused.value, "message", "")
    assert not parsed


def test_modules_load_entry_names_the_module() -> None:
    lines = [ln for ln in MODULES_LOAD.read_text().splitlines() if ln and ln[0] not in "#;"]
    assert lines == ["mgcap"]
    assert "obj-m := mgcap.o" in (ROOT / "kernel" / "Kbuild").read_text()


def offline_root(tmp: Path) -> Path:
    """A root for systemd-analyze --root: the host's own units (for the targets the
    unit names), the unit, and an executable where ExecStart= looks."""
    root = tmp / "root"
    units = Path("/usr/lib/systemd/system")
    if not (units / "sysinit.target").exists():
        pytest.skip("no systemd units on this host")
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system")
    (line,) = unit_values("ExecStart")
    exe = root / line.split()[0].lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return root


def analyze(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    man = tmp / "man" / "man8"
    man.mkdir(parents=True, exist_ok=True)
    for page in ("mgctl.8", "mgdump.8"):  # Documentation=man:...: the pages of the tree
        if not (man / page).exists():
            (man / page).symlink_to(ROOT / "man" / page)
    has_man = shutil.which("man") is not None
    return subprocess.run(
        [ANALYZE, *args, *([] if has_man else ["--man=no"])],
        env={**os.environ, "MANPATH": str(tmp / "man"), "SYSTEMD_LOG_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_analyze
@pytest.mark.parametrize("instance", ["eth1", r"br\x2dlan"])
def test_systemd_analyze_verify_is_silent(tmp_path: Path, instance: str) -> None:
    """verify prints every setting it ignores (a typo, a bad value) but exits 0 for
    them, so its output must be empty too."""
    root = offline_root(tmp_path)
    done = analyze("verify", f"--root={root}", f"mgcap@{instance}.service", tmp=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@needs_analyze
def test_escaped_instance_is_what_systemd_escape_makes() -> None:
    escape = shutil.which("systemd-escape")
    if escape is None:
        pytest.skip("no systemd-escape")
    done = subprocess.run(
        [escape, "--template=mgcap@.service", "br-lan"], capture_output=True, text=True
    )
    assert done.stdout == "mgcap@br\\x2dlan.service\n"


# what systemd-analyze security (252) finds open in the unit, and why it stays open
OPEN = {
    "SystemCallFilter=~@resources": "sched_setaffinity pins the ring readers, setpriority",
    "RootDirectory=/RootImage=": "mgdump runs from the host's venv",
    "User=/DynamicUser=": "root: /dev/mgcap/IF is root's, mode 0600",
    "PrivateDevices=": "would hide /dev/mgcap",
    "DeviceAllow=": "char-mgcap exists only once the module is loaded",
    "ProtectClock=": "implies a DeviceAllow=, which would hide /dev/mgcap",
    "MemoryDenyWriteExecute=": "libpcap through ctypes, not tried under it",
    "RestrictAddressFamilies=~AF_PACKET": "libpcap's live handle for vlan filters",
    "RestrictAddressFamilies=~AF_NETLINK": "the mgcap family",
    "RestrictAddressFamilies=~AF_UNIX": "(a local socket: the C library's name service)",
    "RestrictAddressFamilies=~AF_(INET|INET6)": "the timestamp ioctls (AF_INET only)",
    "CapabilityBoundingSet=~CAP_NET_ADMIN": "starting the capture",
    "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)": "CAP_NET_RAW: libpcap",
    "ProcSubset=": "not tried: libpcap and pyroute2 may read /proc/net",
    "PrivateNetwork=": "it captures the host's devices",
    "PrivateUsers=": "CAP_NET_ADMIN over the host's network namespace",
}


@needs_analyze
def test_hardening_is_all_that_mgcap_allows(tmp_path: Path) -> None:
    """systemd-analyze security rates the unit offline: every check it finds open is
    one mgcap needs open (OPEN); a protection removed from the unit fails this."""
    root = offline_root(tmp_path)
    done = analyze(
        "security", "--offline=yes", f"--root={root}", "mgcap@eth1.service", tmp=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    failed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("✗")}
    assert failed, done.stdout  # the table was read
    assert failed <= set(OPEN), failed - set(OPEN)


def syscall_group(name: str, seen: set[str] | None = None) -> set[str]:
    """The system calls of a systemd filter group, its groups expanded."""
    assert ANALYZE is not None
    seen = seen if seen is not None else set()
    seen.add(name)
    out = subprocess.run(
        [ANALYZE, "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            if word not in seen:
                calls |= syscall_group(word, seen)
        else:
            calls.add(word)
    return calls


@needs_analyze
def test_mgdumps_system_calls_pass_the_filter() -> None:
    calls: set[str] = set()
    for value in unit_values("SystemCallFilter"):  # an allow list, then what it denies
        groups = set().union(*(syscall_group(g) for g in value.lstrip("~").split()))
        calls = calls - groups if value.startswith("~") else calls | groups
    # beyond what any Python program makes: pinning the readers, the writer's nice,
    # the chardev's ioctls and readv, the ring's mmap, netlink, truncating a file, and
    # what `strace -f mgdump -i lo -d 'vlan and udp port 53'` showed (libpcap's live
    # handle, ctypes running ldconfig -p)
    needed = {"sched_setaffinity", "setpriority", "ioctl", "readv", "mmap", "socket"}
    needed |= {"bind", "setsockopt", "sendto", "recvfrom", "ftruncate", "lseek", "dup"}
    needed |= {"getsockopt", "socketpair", "vfork", "execve", "wait4", "prctl", "pipe2"}
    assert needed <= calls, needed - calls
