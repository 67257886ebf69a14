"""netlink-spec/mgcap.yaml: valid against the kernel's genetlink schema, the seed's
numbers kept, the generated uapi header fresh, messages encoded as the spec says."""

import struct

import jsonschema
import pytest
import yaml

from mgctl import spec
from mgctl.netlink import decode, message_class
from tests.harness import kernel_tools


@pytest.fixture(scope="module")
def fam() -> spec.Family:
    return spec.family()


def test_valid_against_the_kernel_genetlink_schema(fam: spec.Family) -> None:
    try:
        schema_path = kernel_tools.schema("genetlink")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    schema = yaml.safe_load(schema_path.read_text())
    jsonschema.Draft7Validator(schema).validate(fam.raw)


def test_generated_uapi_header_is_fresh() -> None:
    try:
        text = kernel_tools.generate_uapi()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    assert kernel_tools.UAPI.read_text() == text, "run: python -m tests.harness.kernel_tools regen"


def test_seed_numbering_kept(fam: spec.Family) -> None:
    ops = fam.operations
    assert (ops["dev-start"].value, ops["dev-stop"].value, ops["dev-set"].value) == (1, 2, 3)
    dev = fam.attr_sets["dev"]
    assert (dev["ifindex"].value, dev["ifindex"].type) == (1, "u32")
    assert (dev["mode"].value, dev["mode"].type) == (2, "u32")
    assert fam.enums["mode"] == {"drop": 1, "mirror": 2}


def test_hwtstamp_enums_match_linux_net_tstamp(fam: spec.Family) -> None:
    # enum hwtstamp_rx_filters / hwtstamp_tx_types, linux/net_tstamp.h
    rx = fam.enums["hwtstamp-rx"]
    assert (rx["none"], rx["all"], rx["some"], rx["ptp-v2-event"], rx["ntp-all"]) == (
        0,
        1,
        2,
        12,
        15,
    )
    assert fam.enums["hwtstamp-tx"] == {"off": 0, "on": 1, "onestep-sync": 2, "onestep-p2p": 3}


def test_dev_start_message_encoding(fam: spec.Family) -> None:
    cls = message_class(fam)
    msg = cls()
    msg["cmd"] = fam.operations["dev-start"].value
    msg["version"] = 1
    msg["attrs"] = [["ifname", "lo"], ["mode", 1], ["snaplen", 128]]
    msg.encode()
    data = bytes(msg.data)
    # nlmsghdr(16) genlmsghdr(4) then the attributes
    assert data[16:20] == bytes([1, 1, 0, 0])
    attrs = data[20:]
    assert attrs[:8] == struct.pack("=HH", 7, 3) + b"lo\x00\x00"  # ifname: NUL-terminated
    assert attrs[8:16] == struct.pack("=HHI", 8, 2, 1)  # mode drop
    assert attrs[16:24] == struct.pack("=HHI", 8, 5, 128)  # snaplen


def test_reply_decoding_with_nested_stats(fam: spec.Family) -> None:
    cls = message_class(fam)
    msg = cls()
    msg["cmd"] = fam.operations["dev-get"].value
    msg["attrs"] = [
        ["ifindex", 1],
        ["ifname", "lo"],
        ["capturing", 1],
        ["stats", {"attrs": [["seen-packets", 10], ["ring-full-drops", 2]]}],
        ["cpu-stats", {"attrs": [["cpu", 0], ["seen-packets", 4]]}],
        ["cpu-stats", {"attrs": [["cpu", 1], ["seen-packets", 6]]}],
    ]
    msg.encode()
    back = cls(msg.data)
    back.decode()
    d = decode(fam, "dev", back)
    assert d["ifname"] == "lo" and d["capturing"] == 1
    assert d["stats"] == {"seen-packets": 10, "ring-full-drops": 2}
    assert [c["seen-packets"] for c in d["cpu-stats"]] == [4, 6]
