"""The monitor's reading of a netlink socket when the kernel drops messages for a full
receive buffer (ENOBUFS), with a real pair of NETLINK_USERSOCK sockets: multicast
between user sockets overruns a receiver exactly as the kernel's notifications do.
(The same with mgcap's own notifications runs in the VM: tests/vm/test_mgctl.py.)"""

import contextlib
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2.netlink import ctrlmsg

from mgctl import netlink

NETLINK_USERSOCK = 2
GROUP = 29  # an unused group of the user-socket protocol
SENT = 200
NLCTRL_NOTIFY = 16  # GENL_ID_CTRL's notify group: always the first id


def send(tx: socket.socket, number: int) -> None:
    """A netlink message of 20 bytes (type 0x10) to the group, carrying its number."""
    header = struct.pack("=IHHII", 20, 0x10, 0, number, 0)
    # the kernel multicasts it, then also unicasts it to port 0, which the user-socket
    # protocol has no kernel socket for: that part is refused
    with contextlib.suppress(ConnectionRefusedError):
        tx.sendto(header + struct.pack("=I", number), (0, 1 << (GROUP - 1)))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    try:
        rx = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_USERSOCK)
        tx = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_USERSOCK)
    except OSError as e:  # pragma: no cover (a kernel without it)
        pytest.skip(f"no NETLINK_USERSOCK: {e}")
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the smallest the kernel allows
    rx.bind((0, 0))
    rx.setsockopt(270, 1, GROUP)  # SOL_NETLINK, NETLINK_ADD_MEMBERSHIP
    tx.bind((0, 0))
    yield rx, tx
    rx.close()
    tx.close()


def test_lost_messages_counted_exactly_and_reading_goes_on(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    rx, tx = pair
    for i in range(SENT):
        send(tx, i)
    rx.settimeout(30)  # a bound, not a wait: every datagram below is already queued
    reader = netlink.datagrams(rx)
    got: list[int] = []
    lost: list[int] = []
    while len(got) + sum(lost) < SENT:
        item = next(reader)
        if isinstance(item, netlink.Overrun):
            lost.append(item.dropped)
        else:
            got.append(int.from_bytes(item[16:20], "little"))
    assert lost and all(n > 0 for n in lost)
    assert got and len(got) + sum(lost) == SENT
    assert got == sorted(got)  # what was queued arrives in order, the rest is counted
    # the socket goes on: a message sent now arrives, with nothing more lost
    send(tx, SENT)
    item = next(reader)
    assert not isinstance(item, netlink.Overrun)
    assert int.from_bytes(item[16:20], "little") == SENT


def test_subscribe_joins_with_pyroute2() -> None:
    """The monitor's socket set-up (pyroute2's bind and add_membership), here on the
    kernel's own nlctrl family and its "notify" group: the socket is a member, as
    /proc/net/netlink shows, blocking, with the buffer asked for."""
    with netlink.subscribe("nlctrl", ctrlmsg, ["notify"], rcvbuf=65536) as s:
        port = s.getsockname()[0]
        rows = [line.split() for line in Path("/proc/net/netlink").read_text().splitlines()[1:]]
        groups = [int(r[3], 16) for r in rows if int(r[1]) == 16 and int(r[2]) == port]
        assert groups == [1 << (NLCTRL_NOTIFY - 1)]
        assert s.getblocking()
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 65536
