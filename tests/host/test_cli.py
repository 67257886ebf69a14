"""mgctl's command line without a kernel: grammar, prefixes, usage errors (exit 2)."""

import pytest
from typer.testing import CliRunner

from mgctl import api, cli, spec

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "usage_of"),
    [
        (["start", "help"], "mgctl start dev IF"),
        (["st", "help"], "mgctl start dev IF"),
        (["sto", "help"], "mgctl stop dev IF"),
        (["se", "help"], "mgctl set dev IF"),
        (["s", "help"], "mgctl [-s [-s]] [-j [-p]] show"),
        (["sh", "help"], "mgctl [-s [-s]] [-j [-p]] show"),
        (["hw", "s", "help"], "mgctl hwtstamp show dev IF"),
        (["hw", "se", "help"], "mgctl hwtstamp set dev IF"),
    ],
)
def test_prefixes_and_help(args: list[str], usage_of: str) -> None:
    r = runner.invoke(cli.app, args)
    assert r.exit_code == 0, r.output
    assert usage_of in r.output


def test_parse_keywords() -> None:
    grammar = {
        "dev": cli._ifname,
        "snaplen": cli._int_in("snaplen"),
        "mode": cli._choice("mode", ["drop", "mirror"]),
    }
    kw = cli.parse_keywords(["dev", "eth0", "snaplen", "0x60", "mode", "drop"], grammar, ("dev",))
    assert kw == {"dev": "eth0", "snaplen": 96, "mode": "drop"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dev"], '"dev" needs a value'),
        (["snaplen", "96"], '"dev" is required'),
        (["dev", "a", "dev", "b"], '"dev" given twice'),
        (["dev", "a", "bogus", "1"], 'unknown argument "bogus"'),
        (["dev", "a", "snaplen", "x"], 'snaplen "x" is not a number'),
        (["dev", "a", "snaplen", "0"], "snaplen 0 out of range (1 to 262144)"),
        (["dev", "a", "snaplen", "262145"], "snaplen 262145 out of range (1 to 262144)"),
        (["dev", "a", "ring-size", "4096"], "ring-size 4096 out of range (65536 to 1073741824)"),
        (["dev", "a", "mode", "sideways"], 'mode "sideways" is not one of drop, mirror'),
        (["dev", "much-too-long-name0"], '"much-too-long-name0" is not a valid device name'),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    grammar = {
        "dev": cli._ifname,
        "mode": cli._choice("mode", ["drop", "mirror"]),
        "snaplen": cli._int_in("snaplen"),
        "ring-size": cli._int_in("ring-size"),
    }
    with pytest.raises(cli.Usage, match=message.replace("(", r"\(").replace(")", r"\)")):
        cli.parse_keywords(args, grammar, ("dev",), usage="x")


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
        (["dev", "eth1"], "nothing to set; usage: mgctl hwtstamp set dev IF"),
        (["rx", "all"], '"dev" is required'),
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
