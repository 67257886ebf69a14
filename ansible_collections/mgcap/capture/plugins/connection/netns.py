"""Ansible connection plugin netns: a host of the inventory is a network namespace of
the controller, its tasks run under `ip netns exec NAME`."""

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks in a network namespace of the controller
description:
  - Each host of the inventory is a named network namespace of the machine that runs
    ansible (C(/run/netns/NAME), as C(ip netns add NAME) makes it). Every command of
    a task runs under C(ip netns exec NAME), which also mounts a C(/sys) of that
    namespace (so C(/sys/class/net) lists its devices), as mgctl and mgdump expect.
  - Everything else is the C(ansible.builtin.local) connection's. The file system is
    the controller's, so copying a file to or from the host is a local copy, and a
    fetched file and its source are on the same disk.
  - Uses are a fleet of capture "hosts" that are namespaces (tests, labs, a capture
    box whose ports sit in one namespace each), reached with no sshd in them.
  - C(ip netns exec) needs root (CAP_SYS_ADMIN), so ansible runs as root. C(become) is
    not supported (the namespace is entered before the become command would run).
author: mgcap developers
options:
  netns:
    description:
      - The network namespace, a name in C(/run/netns).
      - The host's name in the inventory, unless C(ansible_host) or
        C(ansible_netns_name) says otherwise (the last of these that is set wins).
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_name
  ip_executable:
    description: The C(ip) command (iproute2) that enters the namespace.
    type: str
    default: ip
    vars:
      - name: ansible_netns_ip_executable
  become_success_timeout:
    description: How long C(become) may take to succeed (used by the local connection's code).
    type: int
    default: 10
    vars:
      - name: ansible_local_become_success_timeout
  become_strip_preamble:
    description: Remove the become command's own output (used by the local connection's code).
    type: bool
    default: true
    vars:
      - name: ansible_local_become_strip_preamble
extends_documentation_fragment:
  - connection_pipelining
notes:
  - Pipelining (C(ANSIBLE_PIPELINING=1)) saves the temporary module files and the
    commands that make and remove them, a good part of a task's time on a small
    machine.
"""

EXAMPLES = r"""
# inventory.ini: three namespaces made with `ip netns add cap1` ...
# [capture_boxes]
# cap1
# cap2
# cap3
# [capture_boxes:vars]
# ansible_connection=mgcap.capture.netns
#
# A host whose inventory name is not its namespace:
# probe-a ansible_connection=mgcap.capture.netns ansible_netns_name=blue
"""

import shlex
from typing import Any

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

display = Display()


def wrap(cmd: Any, ip: str, netns: str) -> Any:
    """cmd (a shell command line, or an argument list) run in network namespace netns."""
    if isinstance(cmd, (str, bytes)):
        return f"{shlex.quote(ip)} netns exec {shlex.quote(netns)} {to_text(cmd)}"
    return [ip, "netns", "exec", netns, *cmd]


class Connection(LocalConnection):  # type: ignore[misc]  # ansible is untyped
    """The local connection, each command run under `ip netns exec NETNS`."""

    transport = "mgcap.capture.netns"
    has_pipelining = True

    def _netns(self) -> str:
        name = self.get_option("netns")
        if not name:
            raise AnsibleError("mgcap.capture.netns: no network namespace named for this host")
        return str(name)

    def _connect(self) -> Connection:
        if not self._connected:
            display.vvv(f"ENTER NETWORK NAMESPACE {self._netns()}", host=self._netns())
        super()._connect()
        return self

    def exec_command(
        self, cmd: Any, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        wrapped = wrap(cmd, self.get_option("ip_executable"), self._netns())
        rc, out, err = super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)
        return int(rc), bytes(out), bytes(err)
