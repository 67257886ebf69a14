"""--capture: mgdump's Session writing PCAP-NG into Wireshark's fifo.

Wireshark stops an extcap on Linux with SIGTERM (and SIGKILL 30 s later if it is
still there); tshark -c N closes the fifo after N packets, so the next write fails
with EPIPE. Either way the Session stops the capture it started (one it found
running is left as it was), takes what is still in the rings and ends the stream
with its statistics blocks, as far as the reader still reads. Nothing is printed
on stderr unless something went wrong: Wireshark shows any of it as an error.
"""

import errno
import signal
import sys

from mgctl.extcap import devices
from mgctl.extcap.config import Settings

EXIT_SETUP = 1
# why the Session stopped -> exit status (mgdump's numbers)
EXIT_STATUS = {"signal": 0, "count": 0, "files": 0, "ended": 3, "error": 4, "read-error": 5}


def run(ifname: str, fifo: str, settings: Settings, capture_filter: str | None) -> int:
    from mgctl.dump.output import OutputError
    from mgctl.dump.session import Options, Session, SetupError

    opts = Options(
        interfaces=[ifname],
        write=fifo,
        mode=settings.mode,
        snaplen=settings.snaplen_for(devices.running_capture(ifname) is not None),
        ring_size=settings.ring_size,
        hwts=settings.hwts,
        filter=capture_filter,
    )
    session = Session(opts)

    def on_signal(signum: int, _frame: object) -> None:
        session.request_stop("signal")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        session.open()
    except (SetupError, OutputError) as e:
        print(f"mgcap-extcap: {e}", file=sys.stderr)
        return EXIT_SETUP
    session.run(0.5)
    writer_error = session.writer.error if session.writer else None
    if writer_error is not None and writer_error.code == errno.EPIPE:
        return 0  # Wireshark stopped reading: its way of ending the capture
    for r in session.readers:
        if r.error is not None:
            print(f"mgcap-extcap: ring {r.ring}: {r.error.strerror}", file=sys.stderr)
    if writer_error is not None:
        print(f"mgcap-extcap: {writer_error}", file=sys.stderr)
    elif session.reason == "ended":
        print(
            f"mgcap-extcap: {ifname}: the capture ended (device removed or capture stopped)",
            file=sys.stderr,
        )
    return EXIT_STATUS.get(session.reason, 1)
