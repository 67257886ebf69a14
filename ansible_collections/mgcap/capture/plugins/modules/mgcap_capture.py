"""Ansible module mgcap_capture: keep mgcap capture on a device in the wanted state."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mgcap_capture
short_description: Start, change and stop mgcap capture on a network device
description:
  - Keeps mgcap capture on one device of the managed host in the wanted state, with
    C(mgctl), mgcap's command line, which must be installed there.
  - Reads the device with C(mgctl -j -s show dev DEV) and changes it with
    C(mgctl start), C(mgctl set) or C(mgctl stop), each run as a list of arguments
    (never through a shell). With I(state=started) outside check mode C(mgctl start)
    is tried first, since it is idempotent (it starts a device that does not
    capture and changes nothing on one that captures exactly that); only when it
    refuses a capture with other settings are C(show) and C(set) run. So the usual
    task runs mgctl once.
  - A device that does not capture is started with the options given (mgcap's module
    parameters give the others). A device that captures with other settings is
    changed live with C(mgctl set), which changes I(mode), I(snaplen) and I(filter)
    atomically per frame; the capture, its rings and its readers stay. So no option
    of this module stops and restarts a capture (the ring size is not managed here, as
    changing it would take a stop and a start).
  - Idempotent. An option left out is not managed; on a device that does not
    capture it takes mgcap's default (mgcap module parameters C(mode) and
    C(snaplen), no filter).
  - Check mode runs only the C(show) and reports what would change. With C(--diff)
    the before and after settings (C(capturing), C(mode), C(snaplen), C(filter)) are
    shown.
  - The managed host needs the mgcap kernel module loaded and the rights to change
    captures (CAP_NET_ADMIN, as root). mgctl's one-line error (an unknown device, the
    module not loaded, no permission) is the failure's message.
author: mgcap developers
options:
  dev:
    description: The network device, as C(ip link) names it.
    type: str
    required: true
  state:
    description:
      - C(started) captures, with the given settings; C(stopped) does not capture.
      - Stopping a device ends its capture; readers of C(/dev/mgcap/DEV) get what is
        left in the rings, then end of file.
    type: str
    choices: [started, stopped]
    default: started
  mode:
    description:
      - What happens to a frame after the copy. C(mirror) passes it on to the
        network stack, C(drop) consumes it (the device is deaf to the stack).
      - Left out, a running capture keeps its mode and a new one takes mgcap's
        default (the module parameter C(mode), C(mirror) unless set).
      - Ignored with I(state=stopped).
    type: str
    choices: [mirror, drop]
  snaplen:
    description:
      - Bytes kept of each frame, 1 to 262144; C(0) is the whole frame (262144, as
        C(tcpdump -s 0)).
      - A running capture is changed live (C(mgctl set snaplen)); its filter is
        recompiled for the new length.
      - Left out, a running capture keeps its snaplen and a new one takes mgcap's
        default (96 unless the module parameter says otherwise).
      - Ignored with I(state=stopped).
    type: int
  filter:
    description:
      - A capture filter in tcpdump's syntax (C(udp port 53)), compiled by libpcap on
        the managed host and run by the kernel before the copy. C("") means no
        filter (a running filter is removed).
      - Left out, a running capture keeps its filter and a new one has none.
      - Expressions are compared as text with spaces normalized; C(mgctl set)
        decides whether the program really changed, so an expression written
        differently but compiling to the same program reports changed in check
        mode only.
      - Ignored with I(state=stopped).
    type: str
  mgctl:
    description: The mgctl executable on the managed host, a name looked up in PATH or a path.
    type: str
    default: mgctl
  netns:
    description:
      - Act on a device of another network namespace, as C(mgctl -n NETNS) (a name
        in C(/run/netns), as C(ip netns add) makes it, or a path).
      - Not needed on hosts reached with the C(mgcap.capture.netns) connection,
        whose tasks already run in their namespace.
    type: str
notes:
  - Supports check mode and diff mode.
  - The returned counters are mgcap's monotonic counters (C(mgctl -s show)); for a
    capture this task stopped, they are those read just before the stop.
seealso:
  - module: mgcap.capture.mgcap_dump
requirements:
  - mgctl on the managed host, and the mgcap kernel module loaded there.
"""

EXAMPLES = r"""
- name: Capture on eth1 in drop mode, whole frames, UDP only
  mgcap.capture.mgcap_capture:
    dev: eth1
    mode: drop
    snaplen: 0
    filter: udp

- name: Let the frames through to the stack again (mgctl set, the capture goes on)
  mgcap.capture.mgcap_capture:
    dev: eth1
    mode: mirror

- name: Remove the capture filter
  mgcap.capture.mgcap_capture:
    dev: eth1
    filter: ""

- name: Read the counters without changing anything
  mgcap.capture.mgcap_capture:
    dev: eth1
  check_mode: true
  register: eth1_capture

- name: Stop capture on a device of network namespace blue
  mgcap.capture.mgcap_capture:
    dev: veth0
    netns: blue
    state: stopped
"""

RETURN = r"""
dev:
  description:
    - The device after the task (in check mode, as it is), as
      C(mgctl -j -s show dev DEV) prints it (docs/mgctl.md); without C(stats).
  returned: success
  type: dict
  sample:
    ifindex: 3
    ifname: eth1
    capturing: true
    mode: drop
    snaplen: 96
    ring_size: 4194304
    nr_rings: 2
    link_type: 1
    chardev: /dev/mgcap/eth1
    filter: {expr: udp, insns: 4}
stats:
  description:
    - mgcap's counters of the capture (C(mgctl -s)). Empty when the device does not
      capture and did not before the task.
  returned: success
  type: dict
  sample:
    seen_packets: 1520
    seen_bytes: 97280
    captured_packets: 1520
    captured_bytes: 97280
    filtered_packets: 0
    ring_full_drops: 0
    copy_errors: 0
    consumed_packets: 1500
    hw_stamped_packets: 0
commands:
  description:
    - The mgctl commands that changed the device, or in check mode would have
      changed it (each an argument list); empty when nothing changed.
  returned: always
  type: list
  elements: list
  sample: [[mgctl, -j, -s, set, dev, eth1, mode, mirror]]
"""

import json
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

# mgctl.uapi.SNAPLEN_MAX: `snaplen 0` means this many bytes, and `show` reports it
SNAPLEN_MAX = 262144
SETTINGS = ("capturing", "mode", "snaplen", "filter")


def normalize_filter(expr: str) -> str:
    """One line, words separated by single spaces (libpcap reads them the same)."""
    return " ".join(expr.split())


def settings(dev: dict[str, Any]) -> dict[str, Any]:
    """The managed settings of a device, from its object in mgctl's JSON: the diff's
    before and after. filter: the expression, "" for none; a program installed
    without an expression (through the API) shows as "<N instructions>"."""
    if not dev.get("capturing"):
        return {"capturing": False, "mode": None, "snaplen": None, "filter": None}
    prog = dev.get("filter")
    if prog is None:
        expr = ""
    elif prog.get("expr"):
        expr = normalize_filter(prog["expr"])
    else:
        expr = f"<{prog.get('insns', 0)} instructions>"
    return {"capturing": True, "mode": dev["mode"], "snaplen": dev["snaplen"], "filter": expr}


def plan(
    dev: dict[str, Any], want: dict[str, Any], defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What to do to make the device (its object in `mgctl -j show`) what `want`
    asks (the module's parameters: state, mode, snaplen, filter; None: not managed).

    Returns {"action": "none"|"start"|"set"|"stop", "words": mgctl's command words
    (after its global options), "before": settings, "after": settings predicted}.
    defaults: mgcap's module parameters (mode, snaplen), to predict what a start
    takes for the options left out (None where unknown)."""
    before = settings(dev)
    name = dev.get("ifname") or want["dev"]
    if want["state"] == "stopped":
        if not before["capturing"]:
            return {"action": "none", "words": [], "before": before, "after": before}
        after = settings({"capturing": False})
        return {"action": "stop", "words": ["stop", "dev", name], "before": before, "after": after}

    mode, snaplen, expr = want.get("mode"), want.get("snaplen"), want.get("filter")
    full = SNAPLEN_MAX if snaplen == 0 else snaplen
    expr = None if expr is None else normalize_filter(expr)
    if not before["capturing"]:
        defaults = defaults or {}
        words = ["start", "dev", name]
        if mode is not None:
            words += ["mode", mode]
        if snaplen is not None:
            words += ["snaplen", str(snaplen)]
        if expr:
            words += ["filter", expr]
        after = {
            "capturing": True,
            "mode": mode if mode is not None else defaults.get("mode"),
            "snaplen": full if full is not None else defaults.get("snaplen"),
            "filter": expr or "",
        }
        return {"action": "start", "words": words, "before": before, "after": after}

    words = ["set", "dev", name]
    after = dict(before)
    if mode is not None and mode != before["mode"]:
        words += ["mode", mode]
        after["mode"] = mode
    if full is not None and full != before["snaplen"]:
        words += ["snaplen", str(snaplen)]
        after["snaplen"] = full
    if expr is not None and expr != before["filter"]:
        words += ["filter", expr or "none"]
        after["filter"] = expr
    if after == before:
        return {"action": "none", "words": [], "before": before, "after": before}
    return {"action": "set", "words": words, "before": before, "after": after}


def module_defaults(root: str = "/sys/module/mgcap/parameters") -> dict[str, Any]:
    """mgcap's defaults for a start (its module parameters), None where unreadable."""
    out: dict[str, Any] = {"mode": None, "snaplen": None}
    try:
        out["mode"] = Path(root, "mode").read_text().strip() or None
        out["snaplen"] = int(Path(root, "snaplen").read_text())
    except (OSError, ValueError):
        pass
    return out


def error_line(stderr: str, stdout: str = "") -> str:
    """mgctl's message: the last line of its stderr ("Error: ...")."""
    lines = [line for line in (stderr or stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


class Mgctl:
    """Runs mgctl with JSON output on the managed host; fails the task with mgctl's
    message when it refuses."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        exe = module.params["mgctl"]
        if "/" not in exe:
            exe = module.get_bin_path(exe, required=True)
        self.base = [exe, *(["-n", module.params["netns"]] if module.params["netns"] else [])]

    def argv(self, words: list[str]) -> list[str]:
        return [*self.base, "-j", "-s", *words]

    def run(self, words: list[str], refused: str | None = None) -> Any:
        """mgctl's JSON answer; None if it refused with a message containing
        `refused` (the caller has another way), any other refusal fails the task."""
        argv = self.argv(words)
        rc, out, err = self.module.run_command(argv)
        if rc != 0 and refused is not None and refused in err:
            return None
        if rc != 0:
            self.module.fail_json(
                msg=error_line(err, out) or f"mgctl failed with exit status {rc}",
                rc=rc,
                cmd=argv,
                stdout=out,
                stderr=err,
            )
        try:
            return json.loads(out)
        except ValueError:
            self.module.fail_json(msg="mgctl printed no JSON", cmd=argv, stdout=out, stderr=err)


def without_stats(dev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dev.items() if k not in ("stats", "cpu_stats")}


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "dev": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["started", "stopped"], "default": "started"},
    "mode": {"type": "str", "choices": ["mirror", "drop"]},
    "snaplen": {"type": "int"},
    "filter": {"type": "str"},
    "mgctl": {"type": "str", "default": "mgctl"},
    "netns": {"type": "str"},
}


def try_start(mgctl: Mgctl, want: dict[str, Any]) -> dict[str, Any] | None:
    """The task's result if `mgctl start` settles it, else None.

    mgctl start is idempotent: it starts a device that does not capture (changed),
    and changes nothing on one that captures exactly what it would start. A capture
    with other settings (in what is managed, or in what is left out and the start
    would take from mgcap's defaults) it refuses ("already captures with ..."); that
    case goes through show and plan. One mgctl run instead of two in the usual
    cases, a second Python start saved on a slow machine."""
    words = plan({"capturing": False}, want)["words"]
    done = mgctl.run(words, refused="already captures with")
    if done is None:
        return None
    after: dict[str, Any] = done["dev"]
    before = settings({"capturing": False}) if done["changed"] else settings(after)
    return {
        "changed": bool(done["changed"]),
        "dev": without_stats(after),
        "stats": after.get("stats", {}),
        "commands": [mgctl.argv(words)] if done["changed"] else [],
        "diff": {"before": before, "after": settings(after)},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if p["snaplen"] is not None and not 0 <= p["snaplen"] <= SNAPLEN_MAX:
        module.fail_json(msg=f"snaplen must be 0 (the whole frame) to {SNAPLEN_MAX}")
    mgctl = Mgctl(module)
    want = {k: p[k] for k in ("dev", "state", "mode", "snaplen", "filter")}
    if p["state"] == "started" and not module.check_mode:
        started = try_start(mgctl, want)
        if started is not None:
            module.exit_json(**started)
    shown = mgctl.run(["show", "dev", p["dev"]])
    current: dict[str, Any] = shown[0]
    step = plan(current, want, module_defaults() if not current.get("capturing") else None)
    result: dict[str, Any] = {
        "changed": step["action"] != "none",
        "dev": without_stats(current),
        "stats": current.get("stats", {}),
        "commands": [mgctl.argv(step["words"])] if step["words"] else [],
        "diff": {"before": step["before"], "after": step["after"]},
    }
    if step["action"] == "none" or module.check_mode:
        module.exit_json(**result)
    done = mgctl.run(step["words"])
    after: dict[str, Any] = done["dev"]
    result.update(
        changed=bool(done["changed"]),
        dev=without_stats(after),
        diff={"before": step["before"], "after": settings(after)},
    )
    if after.get("capturing"):
        result["stats"] = after.get("stats", {})
    if not done["changed"]:
        result["commands"] = []
    module.exit_json(**result)


if __name__ == "__main__":
    main()
