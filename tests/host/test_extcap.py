"""mgcap-extcap without a kernel: the extcap protocol's sentences parse and say what
they should, the options are all offered, the capture filter check answers as
Wireshark reads it, bad arguments get one line and a non-zero status, and the
install command puts an executable where the real tshark finds it."""

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mgctl import __version__, api, uapi
from mgctl.extcap import cli, config, devices

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = re.compile(r"^(extcap|interface|dlt|arg|value) ((?:\{[a-z]+=[^{}\n]*\})+)$")
FIELD = re.compile(r"\{([a-z]+)=([^{}]*)\}")

needs_tshark = pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")


def extcap(*args: str) -> tuple[int, str, str]:
    """mgcap-extcap's main() in this process: status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:  # --capture installs its own
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    return code, out.getvalue(), err.getvalue()


def parse(text: str) -> list[tuple[str, dict[str, str]]]:
    """Each line as (kind, fields); fails on a line the grammar does not allow."""
    out = []
    for line in text.splitlines():
        m = SENTENCE.match(line)
        assert m, f"not an extcap sentence: {line!r}"
        fields = dict(FIELD.findall(m.group(2)))
        out.append((m.group(1), fields))
    return out


def test_interfaces_list_every_device_with_the_version_first() -> None:
    code, out, err = extcap("--extcap-interfaces", "--extcap-version=4.0")
    assert (code, err) == (0, "")
    sentences = parse(out)
    kind, head = sentences[0]
    assert kind == "extcap"
    assert head["version"] == __version__
    assert head["help"]
    listed = {f["value"]: f["display"] for k, f in sentences[1:] if k == "interface"}
    assert all(k == "interface" for k, _ in sentences[1:])
    names = {name for _, name in socket.if_nameindex()}
    assert set(listed) == {f"mgcap:{n}" for n in names}
    assert listed["mgcap:lo"] == "mgcap: lo"


def test_version_alone_lists_the_interfaces_too() -> None:
    """The version handshake: Wireshark 2.9+ passes it with --extcap-interfaces; a bare
    --extcap-version is answered the same way."""
    code, out, _ = extcap("--extcap-version")
    assert code == 0
    assert parse(out)[0][0] == "extcap"


def test_dlts_of_lo() -> None:
    code, out, err = extcap("--extcap-interface", "mgcap:lo", "--extcap-dlts")
    assert (code, err) == (0, "")
    assert parse(out) == [("dlt", {"number": "1", "name": "EN10MB", "display": "Ethernet"})]


def test_config_offers_mode_snaplen_ring_size_and_timestamps() -> None:
    code, out, err = extcap("--extcap-interface", "mgcap:lo", "--extcap-config")
    assert (code, err) == (0, "")
    sentences = parse(out)
    args = {f["number"]: f for k, f in sentences if k == "arg"}
    assert {a["call"] for a in args.values()} == {"--mode", "--snaplen", "--ring-size", "--hwts"}
    assert all(a["display"] and a["type"] for a in args.values())
    by_call = {a["call"]: a for a in args.values()}
    assert by_call["--snaplen"]["range"] == f"0,{uapi.SNAPLEN_MAX}"
    assert by_call["--ring-size"]["range"] == f"{uapi.RING_SIZE_MIN},{uapi.RING_SIZE_MAX}"
    values: dict[str, list[dict[str, str]]] = {}
    for k, f in sentences:
        if k == "value":
            assert f["arg"] in args, f
            values.setdefault(f["arg"], []).append(f)
    for number, a in args.items():
        if a["type"] == "selector":
            # a selector needs its values, exactly one of them the default
            assert [v["default"] for v in values[number]].count("true") == 1, values[number]
    mode = [v["value"] for v in values[by_call["--mode"]["number"]]]
    assert mode == ["auto", "mirror", "drop"]
    hwts = [v["value"] for v in values[by_call["--hwts"]["number"]]]
    assert hwts[0] == "off" and "all" in hwts


def test_capture_filter_check_as_wireshark_reads_it() -> None:
    """Wireshark's check runs --extcap-capture-filter without --capture: status 0 and
    nothing printed is a good filter, status 0 and a line printed is a bad one (the
    line is the message it shows)."""
    good = extcap(
        "--extcap-capture-filter", "icmp or udp port 53", "--extcap-interface", "mgcap:lo"
    )
    assert good == (0, "", "")
    code, out, err = extcap("--extcap-interface", "mgcap:lo", "--extcap-capture-filter", "tcp port")
    assert (code, err) == (0, "")
    assert out.count("\n") == 1 and "syntax error" in out


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--bogus"], 2, "unrecognized arguments: --bogus"),
        ([], 2, "give --extcap-interfaces"),
        (["--extcap-interface", "mgcap:lo"], 2, "give --extcap-dlts"),
        (["--extcap-interface", "lo", "--extcap-dlts"], 1, '"lo" is not an mgcap interface'),
        (["--extcap-interface", "mgcap:nosuchdev0", "--extcap-dlts"], 1, "nosuchdev0: no such"),
        (["--extcap-interface", "mgcap:lo", "--capture"], 2, "--capture needs --fifo"),
        (
            ["--extcap-interface", "mgcap:lo", "--capture", "--fifo", "f", "--mode", "x"],
            2,
            "--mode",
        ),
        (["--extcap-interface", "mgcap:lo", "--capture", "--fifo", "f", "--snaplen", "-1"], 2, "0"),
        (
            ["--extcap-interface", "mgcap:lo", "--capture", "--fifo", "f", "--snaplen", "x"],
            2,
            "int",
        ),
        (
            ["--extcap-interface", "mgcap:lo", "--capture", "--fifo", "f", "--ring-size", "1000"],
            2,
            "power of two",
        ),
        (["--install", "--uninstall"], 2, "exclude each other"),
        (["--install", "--global", "--dir", "d"], 2, "exclude each other"),
        (["--global"], 2, "go with --install"),
    ],
)
def test_bad_arguments_get_one_line(args: list[str], code: int, says: str) -> None:
    got, out, err = extcap(*args)
    assert got == code, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("mgcap-extcap: "), err
    assert says in err


def test_capture_without_the_module_is_one_line(tmp_path: Path) -> None:
    """No module on the host: the capture cannot begin, one line, status 1, and the
    fifo is never opened (nothing is created)."""
    fifo = tmp_path / "fifo"
    code, out, err = extcap("--extcap-interface", "mgcap:lo", "--capture", "--fifo", str(fifo))
    assert (code, out) == (1, "")
    assert err == f"mgcap-extcap: {api.module_missing()}\n"  # test_module_hint.py
    assert not fifo.exists()


def test_settings_leave_a_running_capture_as_it_is() -> None:
    s = config.settings("auto", None, None, "off")
    assert (s.mode, s.hwts) == (None, None)
    assert s.snaplen_for(running=False) == uapi.SNAPLEN_MAX  # whole frames, as dumpcap
    assert s.snaplen_for(running=True) is None  # as found
    assert config.settings(None, 0, None, None).snaplen_for(running=True) == uapi.SNAPLEN_MAX
    assert config.settings("drop", 128, None, "all") == config.Settings("drop", 128, None, "all")


def test_device_display_says_it_captures() -> None:
    d = devices.Device("eth1", 1, devices.Capture("drop", 96, "udp"))
    assert d.value == "mgcap:eth1"
    assert d.display == "mgcap: eth1, capturing already (drop, snaplen 96, capture filter udp)"


def test_install_and_uninstall_in_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "extcap"
    code, out, err = extcap("--install", "--dir", str(folder))
    assert (code, err) == (0, "")
    exe = folder / "mgcap-extcap"
    assert out == f"mgcap-extcap: installed {exe}, running {sys.executable}\n"
    assert os.access(exe, os.X_OK)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(exe), "--extcap-interfaces"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "interface {value=mgcap:lo}" in proc.stdout
    assert extcap("--uninstall", "--dir", str(folder)) == (
        0,
        f"mgcap-extcap: removed {exe}\n",
        "",
    )
    assert not exe.exists()
    code, _, err = extcap("--uninstall", "--dir", str(folder))
    assert code == 1 and "not installed" in err


def test_uninstall_leaves_a_foreign_file_alone(tmp_path: Path) -> None:
    exe = tmp_path / "mgcap-extcap"
    exe.write_text("#!/bin/sh\necho mine\n")
    code, _, err = extcap("--uninstall", "--dir", str(tmp_path))
    assert code == 1 and "not written by mgcap-extcap --install; left alone" in err
    assert exe.exists()


@needs_tshark
def test_tshark_lists_mgcap_interfaces_after_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--install without --dir: the personal extcap folder that `tshark -G folders`
    names for a scratch HOME; the real tshark then lists mgcap:lo, its link type and
    its options (as preferences extcap.mgcap_lo.*)."""
    for key in [k for k in os.environ if k.startswith("XDG_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the wrapper's Python imports this checkout
    code, out, err = extcap("--install")
    assert (code, err) == (0, "")
    exe = tmp_path / ".config" / "wireshark" / "extcap" / "mgcap-extcap"
    assert exe.exists(), out
    listing = subprocess.run(
        ["tshark", "-D"], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    assert re.search(r"^\d+\. mgcap:lo \(mgcap: lo\)$", listing, re.M), listing
    dlts = subprocess.run(
        ["tshark", "-i", "mgcap:lo", "-L"], capture_output=True, text=True, timeout=300
    ).stdout
    assert "EN10MB (Ethernet)" in dlts
    prefs = subprocess.run(
        ["tshark", "-G", "defaultprefs"], capture_output=True, text=True, timeout=300
    ).stdout
    for pref in ("mode", "snaplen", "ringsize", "hwts"):
        assert f"#extcap.mgcap_lo.{pref}:" in prefs
