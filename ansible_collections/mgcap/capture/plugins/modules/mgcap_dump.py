"""Ansible module mgcap_dump: write a bounded capture (mgdump -c N -w DEST) once."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mgcap_dump
short_description: Write N packets of an mgcap capture to a PCAP-NG file, once
description:
  - Runs C(mgdump -i DEV -c COUNT -w DEST [FILTER]) on the managed host, a bounded
    capture of exactly I(count) packets into a PCAP-NG file.
  - Idempotent as C(ansible.builtin.command)'s C(creates) is. When I(dest) exists
    nothing runs and the task is ok (not changed); the packets the file holds are
    returned all the same.
  - mgdump writes to a hidden file beside I(dest) that is renamed to I(dest) only
    once all I(count) packets are in it, so I(dest) is either complete or absent. If
    fewer packets arrive within I(timeout) seconds, mgdump is stopped (SIGTERM, as
    C(timeout) would), the partial file is removed and the task fails, saying how
    many packets arrived.
  - If the device is not capturing, mgdump starts the capture (C(mirror) mode, the
    default snaplen) and stops it when it ends; start it first with
    M(mgcap.capture.mgcap_capture) for other settings (the role
    C(mgcap.capture.bounded_capture) does both).
author: mgcap developers
options:
  dev:
    description: The network device to capture, as C(mgdump -i).
    type: str
    required: true
  dest:
    description:
      - The PCAP-NG file to write on the managed host. Its directory must exist.
      - When it exists, nothing is done.
    type: path
    required: true
  count:
    description: The number of packets to write (C(mgdump -c)); exactly this many.
    type: int
    required: true
  timeout:
    description:
      - Seconds to wait for I(count) packets, counted from mgdump's start (its
        start-up included, a few seconds on a slow machine). Fewer packets by
        then fail the task.
    type: int
    default: 60
  filter:
    description:
      - A capture filter in tcpdump's syntax, given to mgdump as its expression. On
        a device that already captures, it must be the filter installed there
        (mgdump never changes a capture it did not start); leave it out to use the
        capture as it is.
    type: str
  mgdump:
    description: The mgdump executable on the managed host, a name looked up in PATH or a path.
    type: str
    default: mgdump
  netns:
    description:
      - Capture a device of another network namespace, by running mgdump under
        C(ip netns exec NETNS). Not needed on hosts reached with the
        C(mgcap.capture.netns) connection.
    type: str
notes:
  - Supports check mode (reports whether it would capture, runs nothing).
  - The managed host needs the mgcap kernel module loaded and the rights to capture
    (root).
seealso:
  - module: mgcap.capture.mgcap_capture
requirements:
  - mgdump on the managed host, and the mgcap kernel module loaded there.
"""

EXAMPLES = r"""
- name: 1000 packets of UDP port 53 on eth1, within two minutes
  mgcap.capture.mgcap_dump:
    dev: eth1
    count: 1000
    dest: /var/tmp/dns.pcapng
    filter: udp port 53
    timeout: 120
  register: dns_capture

- name: Bring the file home
  ansible.builtin.fetch:
    src: /var/tmp/dns.pcapng
    dest: captures/{{ inventory_hostname }}.pcapng
    flat: true
"""

RETURN = r"""
dest:
  description: The file written, or found.
  returned: always
  type: str
  sample: /var/tmp/dns.pcapng
packets:
  description:
    - The packets in I(dest), counted in the file (its PCAP-NG packet blocks). Equal
      to I(count) after a capture; whatever the file holds when it existed already.
      Absent in check mode when the file does not exist.
  returned: success
  type: int
  sample: 1000
stats:
  description:
    - mgdump's final counters (C(mgdump --stats-json), docs/mgdump.md) when it ran;
      also returned on failure.
  returned: when mgdump ran
  type: dict
  sample:
    reason: count
    seen: 1004
    written: 1000
    kernel_drops: 0
    mgdump_drops: 0
    not_written: 4
    filtered: 12
    files: [/var/tmp/.dns.pcapng.mgdump.part]
cmd:
  description: The command that ran (in check mode, would run), with its temporary output file.
  returned: when mgdump ran or would run
  type: list
  elements: str
"""

import contextlib
import json
import os
import signal
import struct
import subprocess
from pathlib import Path
from typing import IO, Any

from ansible.module_utils.basic import AnsibleModule

SHB = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D
PACKET_BLOCKS = (2, 3, 6)  # obsolete Packet Block, Simple and Enhanced Packet Blocks
GRACE = 30  # seconds mgdump has to finish its file after SIGTERM


class NotPcapng(ValueError):
    pass


def count_packets(f: IO[bytes]) -> int:
    """The packet blocks of a PCAP-NG stream (every section; each header's byte order).
    A cut-off last block is not counted. Raises NotPcapng if it does not start with
    a Section Header Block."""
    count = 0
    order = ""
    while True:
        head = f.read(12)
        if len(head) < 12:
            return count
        if struct.unpack_from("<I", head)[0] == SHB:
            magic = head[8:12]
            if magic == struct.pack("<I", BYTE_ORDER_MAGIC):
                order = "<"
            elif magic == struct.pack(">I", BYTE_ORDER_MAGIC):
                order = ">"
            else:
                raise NotPcapng("bad byte-order magic in a Section Header Block")
        elif not order:
            raise NotPcapng("not a PCAP-NG file (no Section Header Block first)")
        btype, length = struct.unpack_from(order + "II", head)
        if length < 12 or length % 4:
            raise NotPcapng(f"bad block length {length}")
        rest = f.read(length - 12)
        if len(rest) < length - 12:
            return count
        if btype in PACKET_BLOCKS:
            count += 1


def file_packets(path: str) -> int:
    with open(path, "rb") as f:
        return count_packets(f)


def reason(stderr: str) -> str:
    """mgdump's own words on what went wrong: its last line that starts "mgdump:"
    (the counters it prints at the end come without it), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("mgdump:")]
    return (said or lines or [""])[-1]


def failure(
    stats: dict[str, Any] | None, rc: int, stderr: str, timed_out: bool, p: dict[str, Any]
) -> str:
    """Why the capture did not give count packets, in one sentence."""
    written = (stats or {}).get("written", 0)
    if timed_out:
        return (
            f"only {written} of {p['count']} packets arrived on {p['dev']} within "
            f"{p['timeout']} s; {p['dest']} not written"
        )
    why = reason(stderr) or f"mgdump ended with exit status {rc}"
    if stats is None:  # it never captured
        return why
    return f"{why} ({written} of {p['count']} packets written; {p['dest']} not written)"


def run(argv: list[str], timeout: int) -> tuple[int, str, bool]:
    """Run argv until it ends, or SIGTERM it after timeout seconds (SIGKILL if it
    has not ended GRACE seconds later). Returns exit status, stderr, timed out."""
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            _, err = proc.communicate(timeout=timeout)
            return proc.returncode, err, False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            return proc.returncode, err, True


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "dev": {"type": "str", "required": True},
    "dest": {"type": "path", "required": True},
    "count": {"type": "int", "required": True},
    "timeout": {"type": "int", "default": 60},
    "filter": {"type": "str"},
    "mgdump": {"type": "str", "default": "mgdump"},
    "netns": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if p["count"] < 1:
        module.fail_json(msg="count must be at least 1")
    if p["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")
    dest = Path(p["dest"])
    if dest.exists():
        try:
            packets = file_packets(str(dest))
        except (OSError, NotPcapng) as e:
            module.fail_json(msg=f"{dest} exists but is no PCAP-NG file: {e}", dest=str(dest))
        module.exit_json(changed=False, dest=str(dest), packets=packets, msg=f"{dest} exists")

    exe = p["mgdump"]
    if "/" not in exe:
        exe = module.get_bin_path(exe, required=True)
    pre = ["ip", "netns", "exec", p["netns"]] if p["netns"] else []
    if pre:
        pre[0] = module.get_bin_path("ip", required=True)
    part = str(dest.with_name(f".{dest.name}.mgdump.part"))
    stats_path = os.path.join(module.tmpdir, "mgdump-stats.json")
    argv = [*pre, exe, "-i", p["dev"], "-c", str(p["count"]), "-w", part]
    argv += ["--stats-json", stats_path]
    if p["filter"]:
        argv.append(p["filter"])
    if module.check_mode:
        module.exit_json(changed=True, dest=str(dest), cmd=argv)
    if not dest.parent.is_dir():
        module.fail_json(msg=f"{dest.parent} is not a directory", dest=str(dest))

    try:
        rc, err, timed_out = run(argv, p["timeout"])
    except OSError as e:
        module.fail_json(msg=f"cannot run {exe}: {e}", cmd=argv)
    stats: dict[str, Any] | None = None
    # absent if mgdump ended before it could write them (usage error, signal at start-up)
    with contextlib.suppress(OSError, ValueError):
        stats = json.loads(Path(stats_path).read_text())
    # all there, even if the timeout's SIGTERM crossed the last packet
    complete = rc == 0 and (stats or {}).get("written") == p["count"]
    if not complete:
        Path(part).unlink(missing_ok=True)
        module.fail_json(
            msg=failure(stats, rc, err, timed_out, p),
            rc=rc,
            cmd=argv,
            stderr=err,
            stats=stats,
            dest=str(dest),
        )
    os.replace(part, dest)
    module.exit_json(
        changed=True,
        dest=str(dest),
        packets=file_packets(str(dest)),
        stats=stats,
        cmd=argv,
        stderr=err,
    )


if __name__ == "__main__":
    main()
