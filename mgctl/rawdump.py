"""Save what one capturing device records into a PCAP-NG file.

    python -m mgctl.rawdump lo out.pcapng [--count N] [--timeout S]

The smallest correct reader of /dev/mgcap/<ifname>: one unbound file, whole
records straight into the file after an SHB and the device's IDB.  mgdump is
the full data plane; this is the building block the demo and tests use.
"""

import argparse
import os
import sys
import time

from mgctl import pcapng, uapi
from mgctl.chardev import CaptureDevice, device_path
from mgctl.record import iter_records


def save(ifname: str, out: str, count: int | None, timeout: float) -> int:
    """Write records until count packets, timeout seconds, or the capture ends."""
    written = 0
    deadline = time.monotonic() + timeout
    with CaptureDevice(device_path(ifname), nonblock=True) as dev, open(out, "wb") as f:
        info = dev.info()
        iface = pcapng.Interface(
            name=info.ifname,
            link_type=pcapng.link_type_of(info.link_type),
            snaplen=info.snaplen,
            description=f"mgcap capture of {info.ifname}",
        )
        f.write(pcapng.file_header([iface]))
        while (count is None or written < count) and time.monotonic() < deadline:
            if not dev.wait(min(0.2, max(deadline - time.monotonic(), 0))):
                continue
            room = 1 << 20
            if count is not None:
                # only as many records as still wanted: the rest stay in the ring
                room = (count - written) * uapi.record_len(info.snaplen)
            try:
                data = dev.read(room)
            except BlockingIOError:
                continue
            if not data:
                break
            f.write(data)
            written += sum(1 for _ in iter_records(data))
        f.flush()
        os.fsync(f.fileno())
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("ifname")
    ap.add_argument("out")
    ap.add_argument("-c", "--count", type=int)
    ap.add_argument("-t", "--timeout", type=float, default=10.0)
    a = ap.parse_args()
    try:
        n = save(a.ifname, a.out, a.count, a.timeout)
    except OSError as e:
        sys.exit(f"rawdump: {e.filename or a.ifname}: {e.strerror}")
    print(f"{n} packets written to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
