"""`mgctl -n NETNS` without a namespace to enter: the name's path, the one-line errors
(exit status 1, as ip's), and that the namespace is entered before mgctl connects.
Entering one for real is tests/vm/test_mgctl_netns.py's."""

from pathlib import Path

import pytest

from mgctl import api, netns
from tests.host.test_cli import run_main


def test_path_of_a_name_and_of_a_path() -> None:
    assert netns.path_of("blue") == "/run/netns/blue"
    assert netns.path_of("/proc/1/ns/net") == "/proc/1/ns/net"
    for bad in ("", ".", ".."):
        with pytest.raises(netns.NetnsError, match="Cannot open network namespace"):
            netns.path_of(bad)


def test_unknown_namespace_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_main(["-n", "mgNoSuchNs", "-j", "show"], capsys, monkeypatch) == (
        1,
        "",
        'Error: Cannot open network namespace "mgNoSuchNs": No such file or directory\n',
    )
    assert run_main(["--netns", "mgNoSuchNs", "start", "lo"], capsys, monkeypatch)[0] == 1


def test_a_file_that_is_no_namespace_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    code, out, err = run_main(["-n", str(plain), "show"], capsys, monkeypatch)
    assert (code, out) == (1, "")
    assert err == f'Error: setting the network namespace "{plain}" failed: Invalid argument\n'


def test_netns_needs_a_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_main(["-n"], capsys, monkeypatch)
    assert code == 2
    assert "-n" in err


def test_namespace_is_entered_before_connecting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []

    def no_module() -> None:
        steps.append("connect")
        raise api.MgcapError("mgcap module not loaded")

    monkeypatch.setattr(netns, "enter", lambda name: steps.append(f"enter {name}"))
    monkeypatch.setattr(api, "Mgcap", no_module)
    code, _, err = run_main(["-n", "blue", "-s", "show", "lo"], capsys, monkeypatch)
    assert steps == ["enter blue", "connect"]
    assert (code, err) == (1, "Error: mgcap module not loaded.\n")
    # a usage error of the command: exit status 2, no connection (entered first, as ip -n)
    steps.clear()
    assert run_main(["-n", "blue", "start"], capsys, monkeypatch)[0] == 2
    assert steps == ["enter blue"]
