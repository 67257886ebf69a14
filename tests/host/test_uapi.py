"""mgctl/uapi.py must agree with kernel/uapi/mgcap.h: compiled and compared, field by field."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mgctl import uapi

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
#include <stdio.h>
#include <stddef.h>
#include "mgcap.h"
#define F(s, f) printf("\"%s.%s\": [%zu, %zu],\n", #s, #f, offsetof(struct s, f), \
                       sizeof(((struct s *)0)->f))
#define C(x) printf("\"%s\": %llu,\n", #x, (unsigned long long)(x))
int main(void)
{
	printf("{\n");
	F(mgcap_epb, block_type); F(mgcap_epb, block_len); F(mgcap_epb, interface_id);
	F(mgcap_epb, ts_high); F(mgcap_epb, ts_low); F(mgcap_epb, caplen);
	F(mgcap_epb, origlen);
	F(mgcap_consumer_page, consumer_pos);
	F(mgcap_producer_page, producer_pos); F(mgcap_producer_page, ring_size);
	F(mgcap_producer_page, data_offset); F(mgcap_producer_page, cpu);
	F(mgcap_producer_page, seen_packets); F(mgcap_producer_page, seen_bytes);
	F(mgcap_producer_page, captured_packets); F(mgcap_producer_page, captured_bytes);
	F(mgcap_producer_page, ring_full_drops); F(mgcap_producer_page, consumed_packets);
	F(mgcap_producer_page, copy_errors); F(mgcap_producer_page, hw_stamped_packets);
	F(mgcap_producer_page, filtered_packets);
	F(mgcap_info, ifindex); F(mgcap_info, mode); F(mgcap_info, snaplen);
	F(mgcap_info, ring_size); F(mgcap_info, nr_rings); F(mgcap_info, bound_ring);
	F(mgcap_info, interface_id); F(mgcap_info, link_type); F(mgcap_info, ifname);
	F(mgcap_stats, seen_packets); F(mgcap_stats, seen_bytes);
	F(mgcap_stats, captured_packets); F(mgcap_stats, captured_bytes);
	F(mgcap_stats, ring_full_drops); F(mgcap_stats, consumed_packets);
	F(mgcap_stats, copy_errors); F(mgcap_stats, hw_stamped_packets);
	F(mgcap_stats, filtered_packets);
	C(sizeof(struct mgcap_epb)); C(sizeof(struct mgcap_producer_page));
	C(sizeof(struct mgcap_info)); C(sizeof(struct mgcap_stats));
	C(MGCAP_EPB_TYPE); C(MGCAP_EPB_HDR_LEN); C(MGCAP_EPB_TRAILER_LEN);
	C(MGCAP_SNAPLEN_DEFAULT); C(MGCAP_SNAPLEN_MIN); C(MGCAP_SNAPLEN_MAX);
	C(MGCAP_RECORD_LEN(96)); C(MGCAP_RECORD_LEN(1)); C(MGCAP_RECORD_MAX);
	C(MGCAP_RING_SIZE_DEFAULT); C(MGCAP_RING_SIZE_MIN); C(MGCAP_RING_SIZE_MAX);
	C(MGCAP_MODE_DROP); C(MGCAP_MODE_MIRROR); C(MGCAP_RING_UNBOUND);
	C(MGCAP_IOC_BIND_RING); C(MGCAP_IOC_GET_INFO); C(MGCAP_IOC_GET_STATS);
	C(MGCAP_IOC_SET_IFID);
	printf("\"end\": 0}\n");
	return 0;
}
"""


@pytest.fixture(scope="module")
def header(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("uapi")
    (d / "probe.c").write_text(PROBE)
    subprocess.run(
        [cc, "-Wall", "-Werror", "-I", str(ROOT / "kernel" / "uapi"), "-o", str(d / "probe"),
         str(d / "probe.c")],
        check=True,
    )  # fmt: skip
    out = subprocess.run([str(d / "probe")], capture_output=True, text=True, check=True).stdout
    result: dict[str, object] = json.loads(out)
    return result


def _layout(struct: object) -> list[tuple[str, int, int]]:
    fields = []
    off = 0
    for sc in struct.subcons:  # type: ignore[attr-defined]
        size = sc.sizeof()
        if sc.name:
            fields.append((sc.name, off, size))
        off += size
    return fields


@pytest.mark.parametrize(
    ("cname", "pystruct"),
    [
        ("mgcap_producer_page", uapi.ProducerPage),
        ("mgcap_consumer_page", uapi.ConsumerPage),
        ("mgcap_info", uapi.Info),
        ("mgcap_stats", uapi.Stats),
    ],
)
def test_struct_layouts_match(header: dict[str, object], cname: str, pystruct: object) -> None:
    for name, off, size in _layout(pystruct):
        if name == "reserved":
            continue
        assert header[f"{cname}.{name}"] == [off, size], name
    if cname != "mgcap_consumer_page":
        assert header[f"sizeof(struct {cname})"] == pystruct.sizeof()  # type: ignore[attr-defined]


def test_constants_match(header: dict[str, object]) -> None:
    assert header["MGCAP_EPB_TYPE"] == uapi.EPB_TYPE
    assert header["MGCAP_EPB_HDR_LEN"] == uapi.EPB_HDR_LEN == header["sizeof(struct mgcap_epb)"]
    assert header["MGCAP_EPB_TRAILER_LEN"] == uapi.EPB_TRAILER_LEN
    assert header["MGCAP_SNAPLEN_DEFAULT"] == uapi.SNAPLEN_DEFAULT
    assert header["MGCAP_SNAPLEN_MIN"] == uapi.SNAPLEN_MIN
    assert header["MGCAP_SNAPLEN_MAX"] == uapi.SNAPLEN_MAX
    assert header["MGCAP_RECORD_LEN(96)"] == uapi.record_len(96) == 128
    assert header["MGCAP_RECORD_LEN(1)"] == uapi.record_len(1) == 36
    assert header["MGCAP_RECORD_MAX"] == uapi.RECORD_MAX
    assert header["MGCAP_RING_SIZE_DEFAULT"] == uapi.RING_SIZE_DEFAULT
    assert header["MGCAP_RING_SIZE_MIN"] == uapi.RING_SIZE_MIN
    assert header["MGCAP_RING_SIZE_MAX"] == uapi.RING_SIZE_MAX
    assert header["MGCAP_MODE_DROP"] == uapi.MODE_DROP
    assert header["MGCAP_MODE_MIRROR"] == uapi.MODE_MIRROR
    assert header["MGCAP_RING_UNBOUND"] == uapi.RING_UNBOUND


def test_ioctl_numbers_match(header: dict[str, object]) -> None:
    assert header["MGCAP_IOC_BIND_RING"] == uapi.IOC_BIND_RING
    assert header["MGCAP_IOC_GET_INFO"] == uapi.IOC_GET_INFO
    assert header["MGCAP_IOC_GET_STATS"] == uapi.IOC_GET_STATS
    assert header["MGCAP_IOC_SET_IFID"] == uapi.IOC_SET_IFID
    # the sizes in the numbers are written as numbers (uapi builds its construct
    # layouts on first use only): they are the layouts' sizes
    assert (uapi.Info.sizeof(), uapi.Stats.sizeof()) == (uapi.INFO_SIZE, uapi.STATS_SIZE)


def test_appended_counter_keeps_the_older_offsets(header: dict[str, object]) -> None:
    """hw_stamped_packets, then filtered_packets came last: every older field stays
    where it was, and the older ioctl numbers are those of the shorter structs."""
    assert header["mgcap_producer_page.copy_errors"] == [72, 8]
    assert header["mgcap_producer_page.hw_stamped_packets"] == [80, 8]
    assert header["mgcap_producer_page.filtered_packets"] == [88, 8]
    assert header["mgcap_stats.copy_errors"] == [48, 8]
    assert header["mgcap_stats.hw_stamped_packets"] == [56, 8]
    assert header["mgcap_stats.filtered_packets"] == [64, 8]
    assert uapi.IOC_GET_STATS_V1 == uapi.IOC_GET_STATS - (16 << 16)
    assert uapi.IOC_GET_STATS_V2 == uapi.IOC_GET_STATS - (8 << 16)


def test_epb_header_fields(header: dict[str, object]) -> None:
    names = ["block_type", "block_len", "interface_id", "ts_high", "ts_low", "caplen", "origlen"]
    assert [header[f"mgcap_epb.{n}"] for n in names] == [[4 * i, 4] for i in range(7)]
