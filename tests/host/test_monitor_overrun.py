"""The monitor's reading of a netlink socket when the kernel drops messages for a full
receive buffer (ENOBUFS), with a real pair of NETLINK_USERSOCK sockets: multicast
between user sockets overruns a receiver exactly as the kernel's notifications do.
(The same with mgcap's own notifications runs in the VM: tests/vm/test_mgctl.py.)"""

import contextlib
import socket
import struct
from collections.abc import Iterator

import pytest

from mgctl import netlink

NETLINK_USERSOCK = 2
GROUP = 29  # an unused group of the user-socket protocol
SENT = 200


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
