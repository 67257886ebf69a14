"""mgdump's capture filter on the host: the expression as tcpdump takes it (trailing
words, -F), -d printing what tcpdump -d prints, usage errors, and the filter in the
file (IDB if_filter, ISB isb_filteraccept) read back by independent readers."""

import shutil
import subprocess
import sys
from pathlib import Path

import pcapng as independent  # python-pcapng, not mgctl.pcapng
import pytest

from mgctl import filter as bpf
from mgctl import pcapng, uapi
from mgctl.api import MgcapError
from mgctl.dump import cli, expression
from mgctl.record import Record, build_record

needs_tcpdump = pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump not installed")

EXPRESSIONS = ["udp and port 53", "icmp or arp", "tcp[tcpflags] & tcp-syn != 0"]


@pytest.fixture
def no_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """As without the module, and without a live handle: the program for the link type
    alone, which is what `tcpdump -y EN10MB` compiles."""

    def missing() -> None:
        raise MgcapError("mgcap module not loaded (modprobe mgcap)")

    monkeypatch.setattr(expression, "Mgcap", missing)
    monkeypatch.setattr(bpf, "_live_handle", lambda device, snaplen: None)


def mgdump(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    argv = sys.argv
    sys.argv = ["mgdump", *args]
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err


def tcpdump(args: list[str]) -> str:
    return subprocess.run(
        ["tcpdump", "-y", "EN10MB", "-s", "96", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_trailing_words_are_joined_like_tcpdump() -> None:
    assert expression.expression(["udp", "and", "port", "53"], None) == "udp and port 53"
    assert expression.expression(["udp and", " port  53 "], None) == "udp and port 53"
    assert expression.expression([], None) is None
    assert expression.expression(None, " \n") is None


def test_filter_file_comments_and_lines(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("# DNS only\nudp   # not TCP\n\tand port 53\n")
    assert expression.expression(None, expression.from_file(str(f))) == "udp and port 53"


@needs_tcpdump
@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_d_prints_what_tcpdump_d_prints(
    no_module: None, capsys: pytest.CaptureFixture[str], expr: str, level: int
) -> None:
    code, out, err = mgdump(["-i", "lo", "-" + "d" * level, expr], capsys)
    assert code == 0, err
    assert out == tcpdump(["-" + "d" * level, expr])
    # several trailing words: the same program
    code, words, _ = mgdump(["-i", "lo", "-" + "d" * level, *expr.split()], capsys)
    assert code == 0 and words == out


@needs_tcpdump
def test_d_without_expression_snaplen_and_F(
    no_module: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = mgdump(["-i", "lo", "-d"], capsys)
    assert code == 0 and out == tcpdump(["-d"]) == "(000) ret      #96\n"
    code, out, _ = mgdump(["-i", "lo", "-ddd", "-s", "200", "udp"], capsys)
    assert code == 0
    assert out == subprocess.run(
        ["tcpdump", "-y", "EN10MB", "-s", "200", "-ddd", "udp"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    f = tmp_path / "filter"
    f.write_text("# DNS\nudp # over UDP\nand port 53\n")
    code, out, _ = mgdump(["-i", "lo", "-F", str(f), "-ddd"], capsys)
    assert code == 0 and out == tcpdump(["-ddd", "-F", str(f)])


def test_d_on_a_live_handle_is_the_same_program(capsys: pytest.CaptureFixture[str]) -> None:
    """With whatever handle this machine gives (a live one on lo as root): the same
    program for an expression without vlan."""
    code, out, _ = mgdump(["-i", "lo", "-ddd", "udp and port 53"], capsys)
    assert code == 0
    assert out == bpf.compile_filter("udp and port 53", 96).dump(3)


def test_F_and_a_trailing_expression_exclude_each_other(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "f"
    f.write_text("udp\n")
    code, out, err = mgdump(["-i", "lo", "-w", str(tmp_path / "x"), "-F", str(f), "tcp"], capsys)
    assert code == 2 and out == ""
    assert err == "mgdump: -F and a trailing expression exclude each other (mgdump --help)\n"
    code, _, err = mgdump(["-i", "lo", "-d", "-F", str(tmp_path / "nosuch")], capsys)
    assert code == 2 and "No such file or directory" in err


def test_a_filter_libpcap_refuses_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "x.pcapng"
    code, stdout, err = mgdump(["-i", "lo", "-w", str(out), "udp", "prt", "53"], capsys)
    assert code == 2 and stdout == ""
    with pytest.raises(bpf.FilterError) as refused:
        bpf.compile_filter("udp prt 53", 96, device="lo")
    assert "syntax error" in refused.value.message  # libpcap's words vary by version
    assert err == f'mgdump: filter "udp prt 53": {refused.value.message}\n'
    assert not out.exists()
    code, _, err = mgdump(["-i", "lo", "-d", "port 99999"], capsys)
    assert code == 2 and err == 'mgdump: filter "port 99999": illegal port number 99999 > 65535\n'


def test_usage_without_w_and_i(capsys: pytest.CaptureFixture[str]) -> None:
    """Without -w mgdump prints lines; rotation still needs a file name, and -i a device."""
    code, _, err = mgdump(["-i", "lo", "-C", "1", "udp"], capsys)
    assert (code, err) == (2, "mgdump: -C, -G and --per-ring need -w FILE (mgdump --help)\n")
    code, _, err = mgdump(["-w", "x.pcapng"], capsys)
    assert code == 2 and "-i IF is required (mgdump -D lists the devices)" in err


def test_s_0_is_the_whole_frame(no_module: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = mgdump(["-i", "lo", "-d", "-s", "0"], capsys)
    assert code == 0 and out == f"(000) ret      #{uapi.SNAPLEN_MAX}\n"
    code, _, err = mgdump(["-i", "lo", "-s", "-1", "-w", "x"], capsys)
    assert code == 2 and f"-s must be 0 (whole frames) or 1 to {uapi.SNAPLEN_MAX}" in err


def test_filter_in_the_idb_and_filteraccept_in_the_isb(tmp_path: Path) -> None:
    """if_filter and isb_filteraccept as an independent reader decodes them (and
    capinfos shows the filter string)."""
    path = tmp_path / "f.pcapng"
    ifaces = [
        pcapng.Interface("eth9", snaplen=96, filter="udp and port 53"),
        pcapng.Interface("eth8", snaplen=96),
    ]
    ts = 1_700_000_000_000_000_000
    isbs = [
        pcapng.InterfaceStatistics(0, ts, ts, ts, 100, 3, 1, 6, "c", filteraccept=10),
        pcapng.InterfaceStatistics(1, ts, ts, ts, 5, 0, 0, 5, None, filteraccept=5),
    ]
    frame = bytes(60)
    data = pcapng.file_header(ifaces) + build_record(Record(0, ts, 60, frame))
    path.write_bytes(data + b"".join(pcapng.interface_statistics(s) for s in isbs))
    with open(path, "rb") as f:
        blocks = list(independent.FileScanner(f))
    idbs = [b for b in blocks if isinstance(b, independent.blocks.InterfaceDescription)]
    assert idbs[0].options["if_filter"] == (0, b"udp and port 53")
    assert "if_filter" not in idbs[1].options
    keys = ("isb_ifrecv", "isb_filteraccept", "isb_ifdrop", "isb_osdrop", "isb_usrdeliv")
    got = [
        {k: b.options[k] for k in keys}
        for b in blocks
        if isinstance(b, independent.blocks.InterfaceStatistics)
    ]
    assert got == [
        {"isb_ifrecv": 100, "isb_filteraccept": 10, "isb_ifdrop": 3, "isb_osdrop": 1,
         "isb_usrdeliv": 6},
        {"isb_ifrecv": 5, "isb_filteraccept": 5, "isb_ifdrop": 0, "isb_osdrop": 0,
         "isb_usrdeliv": 5},
    ]  # fmt: skip
    if shutil.which("capinfos"):
        info = subprocess.run(
            ["capinfos", "-M", str(path)], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        assert "Filter string = udp and port 53" in info
        assert "Number of packets:   1" in info
