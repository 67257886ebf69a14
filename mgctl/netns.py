"""`mgctl -n NETNS`: run in a named network namespace, as `ip -n NETNS` does.

The process joins the namespace (/run/netns/NAME, as `ip netns add` makes it, or a
path) before it opens any netlink socket, and gets a /sys of its own that describes
that namespace (a private mount namespace with sysfs mounted afresh), so what mgctl
reads there (a device's type) is the namespace's, as under `ip netns exec NAME`.
"""

import ctypes
import os

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MS_RDONLY = 1
MNT_DETACH = 2


class NetnsError(Exception):
    """The namespace cannot be entered: one line, exit status 1."""


def path_of(name: str) -> str:
    """/run/netns/NAME; a name with a slash is a path already (as ip takes it)."""
    if not name or name in (".", ".."):
        raise NetnsError(f'Cannot open network namespace "{name}": invalid name')
    return name if "/" in name else os.path.join(NETNS_RUN_DIR, name)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"{what}: {os.strerror(err)}")


def _fresh_sysfs(libc: ctypes.CDLL) -> None:
    """A private mount namespace whose /sys shows the current network namespace."""
    _check(libc.unshare(CLONE_NEWNS), "unshare of the mount namespace failed")
    # nothing mounted here may reach the parent's mount namespace
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), 'making "/" a slave failed')
    flags = 0
    if libc.umount2(b"/sys", MNT_DETACH) != 0 and os.path.ismount("/sys"):
        # still there: mount over it; a read-only /sys cannot be covered read-write
        flags = MS_RDONLY if os.statvfs("/sys").f_flag & os.ST_RDONLY else 0
    _check(libc.mount(b"sysfs", b"/sys", b"sysfs", flags, None), "mount of /sys failed")


def enter(name: str) -> None:
    """Join network namespace `name` (this process, before any netlink socket)."""
    path = path_of(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetnsError(f'Cannot open network namespace "{name}": {e.strerror}') from None
    libc = _libc()
    try:
        _check(
            libc.setns(fd, CLONE_NEWNET),
            f'setting the network namespace "{name}" failed',
        )
    finally:
        os.close(fd)
    _fresh_sysfs(libc)
