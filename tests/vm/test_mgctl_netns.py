"""`mgctl -n NETNS` against the real module: it captures in that namespace, and says
what `ip netns exec NETNS mgctl` says.

`-n` makes the whole process join the namespace (and a mount namespace of its own),
so mgctl's main() runs in a forked child here: the test process stays where it is,
and no Python start-up is paid but the one `ip netns exec ... mgctl` run.
"""

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path

import pytest

from tests.vm.conftest import CliResult, Module, VethPair, mgctl


def forked_mgctl(*args: str) -> CliResult:
    """mgctl's main() with these arguments, in a forked child of this process."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run main(), send (code, stdout, stderr) back, never return
        os.close(rd)
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            from mgctl import cli

            sys.argv = ["mgctl", *args]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            code, err = 99, io.StringIO(traceback.format_exc())
        with os.fdopen(wr, "w") as f:
            json.dump([code, out.getvalue(), err.getvalue()], f)
        os._exit(0)
    os.close(wr)
    with os.fdopen(rd) as f:
        code, out, err = json.load(f)
    os.waitpid(pid, 0)
    return CliResult(code, out, err)


@pytest.mark.once(
    slot=0,
    why="mgctl -n's setns (user space); netns isolation of the family is tested in every boot",
)
def test_netns_option_captures_in_that_namespace(mgcap: Module, veth: VethPair) -> None:
    mgcap.load()
    inum = os.stat(f"/run/netns/{veth.ns}").st_ino
    p = forked_mgctl("-n", veth.ns, "start", "dev", veth.peer, "filter", "icmp")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert Path(f"/dev/mgcap/netns-{inum}/{veth.peer}").exists()
    veth.ns_run(f"ping -c 3 -i 0.2 {veth.addr}")

    p = forked_mgctl("-n", veth.ns, "-j", "-s", "show")
    assert p.returncode == 0, p.stderr
    listing = json.loads(p.stdout)
    assert [d["ifname"] for d in listing] == [veth.peer]
    assert listing[0]["chardev"] == f"/dev/mgcap/netns-{inum}/{veth.peer}"
    # mgcap sees what the device receives: the 3 replies, the filter passing only icmp
    assert listing[0]["stats"]["captured_packets"] == 3

    # the same words as ip netns exec NS mgctl (one real process, one real netns exec)
    p = forked_mgctl("-n", veth.ns, "-j", "show")
    q = mgctl("-j show", ns=veth.ns)
    assert (p.returncode, q.returncode) == (0, 0), (p.stderr, q.stderr)
    assert json.loads(p.stdout) == json.loads(q.stdout)
    assert json.loads(p.stdout)[0]["ifname"] == veth.peer

    # the initial namespace captures nothing, and has no such device
    assert json.loads(forked_mgctl("-j", "show").stdout) == []
    p = forked_mgctl("-n", veth.ns, "stop", "dev", veth.peer)
    assert (p.returncode, p.stderr) == (0, "")
    assert json.loads(forked_mgctl("-n", veth.ns, "-j", "show").stdout) == []


def test_netns_option_unknown_namespace(mgcap: Module) -> None:
    mgcap.load()
    p = forked_mgctl("-n", "mgNoSuch", "show")
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == (
        'Error: Cannot open network namespace "mgNoSuch": No such file or directory\n'
    )
