"""mgdump without -w: one line per packet on standard output, as tcpdump prints them.

    03:40:01.123456 lo In length 98: IP 127.0.0.1 > 127.0.0.1: ICMP echo request, id 5,
    seq 1, length 64    (one line)

Local time to the microsecond, the device, the direction (mgcap sees received
frames only: always In), the frame's length on the wire, then tcpdump -nn -S's
summary (mgctl.dump.decode). Each batch of records becomes one write(). When the
reader of the pipe goes away (mgdump | head), OutputClosed ends the capture
quietly: mgdump stops what it started and exits 0, as tcpdump does on SIGPIPE.
"""

import errno
import os
import time
from collections.abc import Sequence

from mgctl import pcapng
from mgctl.dump import decode
from mgctl.dump.output import Output, OutputError, StatsFn
from mgctl.record import iter_records


class OutputClosed(OutputError):
    """Standard output's reader went away (EPIPE): the end of the capture, not a failure."""


def line(ifname: str, link_type: int, timestamp_ns: int, origlen: int, frame: bytes) -> str:
    sec, ns = divmod(timestamp_ns, 1_000_000_000)
    clock = time.strftime("%H:%M:%S", time.localtime(sec))
    what = decode.summary(frame, link_type, origlen)
    return f"{clock}.{ns // 1000:06d} {ifname} In length {origlen}: {what}\n"


class LineOutput(Output):
    """An Output that prints packets instead of writing PCAP-NG (standard output)."""

    def __init__(self, interfaces: Sequence[pcapng.Interface], isb: StatsFn, fd: int = 1) -> None:
        super().__init__(None, interfaces, isb)
        self.out_fd = fd
        self.names = [i.name for i in interfaces]
        self.link_types = [i.link_type for i in interfaces]
        self.path = "standard output"

    def _interface(self, interface_id: int) -> tuple[str, int]:
        if interface_id < len(self.names):
            return self.names[interface_id], self.link_types[interface_id]
        return str(interface_id), pcapng.LINKTYPE_ETHERNET

    def _open(self) -> None:
        self.fd = self.out_fd
        self.size = 0

    def _finish(self) -> None:
        self.fd = -1  # no statistics blocks: the summary on stderr says it all

    def write_records(self, data: bytes | memoryview, packets: int) -> None:
        if self.fd < 0:
            self._open()
        text = "".join(
            line(*self._interface(r.interface_id), r.timestamp_ns, r.origlen, r.frame)
            for r in iter_records(data)
        )
        if text:
            try:
                self._write(text.encode())
            except OutputError as e:
                if e.code == errno.EPIPE:
                    raise OutputClosed(str(e), e.code) from None
                raise
        self.packets += packets

    def close(self) -> None:
        self._finish()


def ignore_sigpipe_at_exit() -> None:
    """After EPIPE, make later writes to stdout (interpreter shutdown) harmless."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
