"""mgctl's command line without a kernel: grammar, prefixes, usage errors (exit 2)."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mgctl
from mgctl import api, cli, grammar, spec, uapi

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "usage_of"),
    [
        (["start", "help"], "mgctl start [dev] IF"),
        (["st", "help"], "mgctl start [dev] IF"),
        (["sto", "help"], "mgctl stop [dev] IF"),
        (["se", "help"], "mgctl set [dev] IF"),
        (["s", "help"], "mgctl [-s [-s]] [-j [-p]] show [[dev] IF]"),
        (["sh", "help"], "mgctl [-s [-s]] [-j [-p]] show"),
        (["hw", "s", "help"], "mgctl hwtstamp show [dev] IF"),
        (["hw", "se", "help"], "mgctl hwtstamp set [dev] IF"),
        (["start", "lo", "h"], "mgctl start [dev] IF"),
        (["help", "start"], "mgctl start [dev] IF"),
        (["help", "st"], "mgctl start [dev] IF"),
        (["he", "sto"], "mgctl stop [dev] IF"),
        (["help", "hwtstamp", "set"], "mgctl hwtstamp set [dev] IF"),
        (["hwtstamp", "help", "se"], "mgctl hwtstamp set [dev] IF"),
        (["start", "--help"], "mgctl start [dev] IF [mode drop|mirror] [snaplen N] [ring-size N]"),
        (["set", "-h"], "mgctl set [dev] IF [mode drop|mirror] [snaplen N] [filter EXPR|none]"),
        (["help"], "mgctl start [dev] IF [mode drop|mirror]"),
    ],
)
def test_prefixes_and_help(args: list[str], usage_of: str) -> None:
    r = runner.invoke(cli.app, args)
    assert r.exit_code == 0, r.output
    assert usage_of in r.output


def test_help_of_a_command_names_its_grammar_whole() -> None:
    """The usage line is the grammar, never wrapped, the same from --help and help."""
    outputs = [runner.invoke(cli.app, a).output for a in (["start", "--help"], ["help", "start"])]
    assert outputs[0] == outputs[1]
    assert outputs[0].splitlines()[0] == f"Usage: {cli.USAGES['start']}"
    assert "0: the whole frame" in outputs[0]


def run_main(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[object, str, str]:
    monkeypatch.setattr("sys.argv", ["mgctl", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_help_of_an_unknown_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_main(["help", "frob"], capsys, monkeypatch) == (
        2,
        "",
        'Error: unknown command "frob"; usage: mgctl help [COMMAND]\n',
    )


@pytest.mark.parametrize("option", ["--version", "-V"])
def test_version(
    option: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """mgctl's version first; the module's follows only when one is loaded (in the VM)."""
    code, out, err = run_main([option], capsys, monkeypatch)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"mgctl version {mgctl.__version__}"


GRAMMAR: grammar.Grammar = {
    "dev": grammar.ifname,
    "snaplen": grammar.snaplen,
    "mode": grammar.choice("mode", ["drop", "mirror"]),
    "ring-size": grammar.int_in("ring-size"),
}


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["dev", "eth0", "snaplen", "0x60", "mode", "drop"], {"snaplen": 96, "mode": "drop"}),
        (["eth0"], {}),  # like `ip link show eth0`
        (["eth0", "mode", "drop"], {"mode": "drop"}),
        (["mode", "drop", "eth0"], {"mode": "drop"}),
        (["eth0", "m", "d"], {"mode": "drop"}),  # keywords and values by unique prefix
        (["eth0", "mo", "mi", "sn", "128"], {"mode": "mirror", "snaplen": 128}),
        (["d", "eth0", "r", "65536"], {"ring-size": 65536}),
        (["eth0", "snaplen", "0"], {"snaplen": uapi.SNAPLEN_MAX}),  # tcpdump's -s 0
        (["eth0", "snaplen", str(uapi.SNAPLEN_MAX)], {"snaplen": uapi.SNAPLEN_MAX}),
    ],
)
def test_parse_keywords(args: list[str], expect: dict[str, object]) -> None:
    assert grammar.parse_keywords(args, GRAMMAR, ("dev",)) == {"dev": "eth0", **expect}


def test_device_keyword_optional_in_show() -> None:
    assert grammar.parse_keywords(["lo"], {"dev": grammar.ifname}) == {"dev": "lo"}
    assert grammar.parse_keywords([], {"dev": grammar.ifname}) == {}


def test_help_among_the_keywords() -> None:
    for args in (["help"], ["eth0", "help"], ["eth0", "he"]):
        with pytest.raises(grammar.HelpRequested):
            grammar.parse_keywords(args, GRAMMAR, ("dev",))


TOO_LONG = uapi.SNAPLEN_MAX + 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dev"], '"dev" needs a value'),
        (["snaplen", "96"], "a device is required"),
        (["dev", "a", "dev", "b"], '"dev" given twice'),
        (["dev", "a", "bogus", "1"], 'unknown argument "bogus"'),
        (["a", "b"], 'unknown argument "b"'),
        (["dev", "a", "snaplen", "x"], 'snaplen "x" is not a number'),
        (
            ["dev", "a", "snaplen", str(TOO_LONG)],
            f"snaplen {TOO_LONG} out of range (1 to {uapi.SNAPLEN_MAX}, or 0 for the whole frame)",
        ),
        (["a", "snaplen", "-1"], "snaplen -1 out of range"),
        (["dev", "a", "ring-size", "4096"], "ring-size 4096 out of range (65536 to 1073741824)"),
        (["dev", "a", "mode", "sideways"], 'mode "sideways" is not one of drop, mirror'),
        (["dev", "much-too-long-name0"], '"much-too-long-name0" is not a valid device name'),
        (["much-too-long-name0"], '"much-too-long-name0" is not a valid device name'),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(cli.Usage) as e:
        grammar.parse_keywords(args, GRAMMAR, ("dev",), usage="x")
    assert str(e.value).startswith(message)


def test_ambiguous_prefix() -> None:
    rules: grammar.Grammar = {"dev": grammar.ifname, "snaplen": grammar.snaplen}
    rules["sniff"] = grammar.ifname
    with pytest.raises(cli.Usage, match='"sn" is ambiguous: snaplen or sniff'):
        grammar.parse_keywords(["lo", "sn", "1"], rules)


def test_unknown_command_exits_2() -> None:
    r = runner.invoke(cli.app, ["frobnicate"])
    assert r.exit_code == 2


def test_usage_error_through_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["mgctl", "start", "dev", "lo", "mode", "sideways"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    assert capsys.readouterr().err == 'Error: mode "sideways" is not one of drop, mirror\n'


def test_hwtstamp_set_arguments() -> None:
    assert cli.hwtstamp_set_args(["dev", "eth1", "rx", "ptp"]) == {
        "dev": "eth1",
        "rx": "ptp-v2-event",
    }
    assert cli.hwtstamp_set_args(["tx", "on", "dev", "eth1", "rx", "ptp-v2-l4-event"]) == {
        "dev": "eth1",
        "rx": "ptp-v2-l4-event",
        "tx": "on",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dev", "eth1"], "nothing to set; usage: mgctl hwtstamp set [dev] IF"),
        (["rx", "all"], "a device is required"),
        (["dev", "eth1", "rx", "most"], 'rx "most" is not one of none, all, some, '),
        (["dev", "eth1", "tx", "maybe"], 'tx "maybe" is not one of off, on, '),
        (["dev", "eth1", "rx", "all", "rx", "none"], '"rx" given twice'),
    ],
)
def test_hwtstamp_set_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(cli.Usage) as e:
        cli.hwtstamp_set_args(args)
    assert str(e.value).startswith(message)


def test_hwtstamp_reply_and_dev_state_decoding() -> None:
    fam = spec.family()
    hw = api.to_hwtstamp(fam, {"ifindex": 3, "ifname": "eth1", "hwtstamp-rx": 12, "hwtstamp-tx": 1})
    assert hw == api.HwTstamp(ifindex=3, ifname="eth1", rx="ptp-v2-event", tx="on")
    assert hw.to_json() == {"ifindex": 3, "ifname": "eth1", "rx": "ptp-v2-event", "tx": "on"}
    # a filter newer than the spec: its number
    assert api.to_hwtstamp(fam, {"ifindex": 3, "ifname": "eth1", "hwtstamp-rx": 99}).rx == "99"
    base = {"ifindex": 3, "ifname": "eth1", "capturing": 1, "mode": 2, "chardev": "mgcap/eth1"}
    with_hw = api.to_state(fam, {**base, "hwtstamp-rx": 1, "hwtstamp-tx": 0}).to_json()
    assert with_hw["hwtstamp"] == {"rx": "all", "tx": "off"}
    assert "hwtstamp" not in api.to_state(fam, base).to_json()
    stats = api.to_state(fam, {**base, "stats": {"hw-stamped-packets": 5}}).to_json(1)
    assert stats["stats"]["hw_stamped_packets"] == 5


@pytest.mark.skipif(Path("/sys/module/mgcap").exists(), reason="the module is loaded here")
@pytest.mark.parametrize("installed", [True, False])
def test_without_the_module_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    installed: bool,
) -> None:
    """A real generic-netlink socket (pyroute2) asks the kernel for the family; the hint
    depends on whether the module is installed for this kernel (test_module_hint.py),
    here a fake /lib/modules."""
    release = tmp_path / os.uname().release
    release.mkdir()
    (release / "modules.dep").write_text("updates/dkms/mgcap.ko.xz:\n" if installed else "")
    monkeypatch.setattr(api, "MODULES_ROOT", tmp_path)
    hint = (
        "(modprobe mgcap)"
        if installed
        else f", and not installed for kernel {os.uname().release} (install it with DKMS"
    )
    code, out, err = run_main(["show", "lo"], capsys, monkeypatch)
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: mgcap module not loaded{' ' if installed else ''}{hint}")
    assert err.count("\n") == 1 and err.endswith(".\n")
