"""dev-get dumps on the wire (ifindex order, resume after the last ifindex, the request's
device honoured, NLM_F_DUMP_INTR after a change) and the extack of refused requests (the
bad attribute, the missing one), read with a bare netlink socket."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from mgctl.api import Mgcap
from tests.vm.conftest import Module, sh
from tests.vm.rawgenl import (
    GENL_HDR,
    HDR,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    RawGenl,
    dev_ifindex,
    string,
    u32,
)

# enough captures for a dump of several parts: a part is at most 32 KiB (the kernel
# sizes it by the largest recv buffer the socket used, capped there), a few hundred
# bytes per device
N = 150


@pytest.fixture
def dummies(tmp_path: Path) -> Iterator[list[str]]:
    names = [f"mgn{i}" for i in range(N)]
    sh("modprobe dummy")
    add, delete = tmp_path / "add", tmp_path / "del"
    add.write_text("".join(f"link add {n} type dummy\n" for n in names))
    delete.write_text("".join(f"link del {n}\n" for n in names))
    sh(f"ip -batch {add}")
    yield names
    sh(f"ip -force -batch {delete}", check=False)


def ifindex(name: str) -> int:
    return int(Path(f"/sys/class/net/{name}/ifindex").read_text())


def test_dump_resumes_after_the_last_ifindex_and_flags_a_change(
    mgcap: Module, dummies: list[str]
) -> None:
    mgcap.load()
    with Mgcap() as m:
        for name in dummies:
            m.start(name, ring_size=64 << 10)
    want = sorted(ifindex(n) for n in dummies)
    with RawGenl() as g:
        ifx = g.dev_attr("ifindex")
        g.send(g.family_id, g.op("dev-get"), b"", NLM_F_DUMP)
        first = g.recv_part()
        assert not first.done, "the dump fits one part: make N larger"
        got = [dev_ifindex(msg, ifx) for msg in first.messages]
        assert got == want[: len(got)]
        # stop a capture the dump has already sent: nothing after it may be skipped
        with Mgcap() as m:
            m.stop(_name_of(dummies, got[0]))
        flags = 0
        while True:
            part = g.recv_part()
            flags |= part.flags
            got += [dev_ifindex(msg, ifx) for msg in part.messages]
            if part.done:
                assert part.ack is None or part.ack.error == 0
                break
        assert got == want
        assert flags & NLM_F_DUMP_INTR
    with Mgcap() as m:
        for c in m.captures():
            m.stop(c.ifname)


def _name_of(names: list[str], idx: int) -> str:
    return next(n for n in names if ifindex(n) == idx)


def test_dump_honours_the_device_it_names(mgcap: Module) -> None:
    mgcap.load(ifname="lo")
    sh("ip link add mgn-x type dummy")
    try:
        with Mgcap() as m:
            m.start("mgn-x", ring_size=64 << 10)
        with RawGenl() as g:
            ifx = g.dev_attr("ifindex")
            for body in (u32(ifx, 1), string(g.dev_attr("ifname"), "lo")):
                g.send(g.family_id, g.op("dev-get"), body, NLM_F_DUMP)
                part = g.recv_part()
                msgs = list(part.messages)
                while not part.done:
                    part = g.recv_part()
                    msgs += part.messages
                assert [dev_ifindex(msg, ifx) for msg in msgs] == [1]
            g.send(
                g.family_id, g.op("dev-get"), string(g.dev_attr("ifname"), "nonesuch"), NLM_F_DUMP
            )
            part = g.recv_part()
            while not part.done:
                part = g.recv_part()
            assert part.ack is not None and part.ack.error == -19  # ENODEV
            assert part.ack.message == "no such device"
    finally:
        sh("ip link del mgn-x", check=False)


def test_extack_names_the_bad_or_missing_attribute(mgcap: Module) -> None:
    mgcap.load(ring_size=64 << 10)
    with RawGenl() as g:
        base = HDR.size + GENL_HDR.size
        dev = string(g.dev_attr("ifname"), "lo")
        # snaplen 65535 with a 64 KiB ring: the ring is too small, ring-size is at fault
        ring = u32(g.dev_attr("ring-size"), 64 << 10)
        _, ack = g.request("dev-start", dev + u32(g.dev_attr("snaplen"), 65535) + ring)
        assert ack.error == -22 and ack.message and "two records" in ack.message
        assert ack.bad_offset == base + len(dev) + 8
        # without ring-size (the module's default is 64 KiB here), the snaplen is at fault
        _, ack = g.request("dev-start", dev + u32(g.dev_attr("snaplen"), 65535))
        assert ack.error == -22 and ack.bad_offset == base + len(dev)
        # no device at all: the missing attribute is named
        _, ack = g.request("dev-start", b"")
        assert ack.error == -22
        assert ack.missing_type == g.dev_attr("ifindex")
        # a device that does not capture: the attribute that named it
        _, ack = g.request("dev-stop", dev)
        assert ack.error == -2 and ack.bad_offset == base
