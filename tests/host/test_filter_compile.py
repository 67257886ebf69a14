"""mgctl.filter: libpcap's programs, byte for byte tcpdump's, and its error messages."""

import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from mgctl import filter as bpf

EXPRS = ["tcp port 443", "udp and not port 53", "icmp or ip6", "len > 100", "ether[12:2] = 0x0806"]

needs_tcpdump = pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump not installed")


def tcpdump(*args: str) -> str:
    return subprocess.run(
        ["tcpdump", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@needs_tcpdump
@pytest.mark.parametrize("expr", EXPRS)
def test_program_is_tcpdumps_for_the_link_type(expr: str) -> None:
    prog = bpf.compile_filter(expr, 96)  # no device: for the link type alone
    for level, flag in ((1, "-d"), (2, "-dd"), (3, "-ddd")):
        assert prog.dump(level) == tcpdump(flag, "-y", "EN10MB", "-s", "96", expr)


@needs_tcpdump
def test_vlan_compiled_for_a_live_capture_on_lo() -> None:
    """As tcpdump -i lo: `vlan` also tests the tag held in metadata (needs root)."""
    prog = bpf.compile_filter("vlan and udp", 128, device="lo")
    if not prog.live:
        pytest.skip("no live handle here (not root)")
    assert prog.dump(3) == tcpdump("-ddd", "-i", "lo", "-s", "128", "vlan and udp")
    # for the link type alone, `vlan` only looks for a tag in the frame
    assert prog.insns != bpf.compile_filter("vlan and udp", 128).insns


def test_pack_unpack_roundtrip() -> None:
    prog = bpf.compile_filter("tcp", 0)
    data = prog.pack()
    assert len(data) == 8 * len(prog.insns)
    assert bpf.unpack(data) == prog.insns
    # snaplen 0: the whole frame, as tcpdump -s 0
    assert (6, 0, 0, bpf.MAX_SNAPLEN) in prog.insns


def test_bad_expression_carries_libpcaps_message() -> None:
    with pytest.raises(bpf.FilterError) as e:
        bpf.compile_filter("tcp port nosuchport", 96)
    assert e.value.message == "unknown port 'nosuchport'"
    with pytest.raises(bpf.FilterError, match="syntax error"):
        bpf.compile_filter("tcp and and", 96)


def test_mgctl_bad_filter_is_a_usage_error_before_anything() -> None:
    """Exit 2 with libpcap's message on one line; the module need not be loaded."""
    from mgctl import cli

    runner = CliRunner()
    for args in (
        ["start", "dev", "lo", "filter", "tcp port nosuchport"],
        ["set", "dev", "lo", "filter", "tcp port nosuchport"],
    ):
        try:
            r = runner.invoke(cli.app, args, catch_exceptions=True)
            exc = r.exception
        except cli.Usage as u:
            exc = u
        assert isinstance(exc, cli.Usage), r.output
        assert str(exc) == "filter \"tcp port nosuchport\": unknown port 'nosuchport'"
