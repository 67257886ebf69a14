"""mgctl imports pyroute2's netlink core without the package's __init__, and the
rest of pyroute2 still works in the same process (mgctl/pyroute2_core.py)."""

import subprocess
import sys

PROBE = """
import sys
import mgctl.cli, mgctl.dump.cli, mgctl.api  # the commands import the API when they run
before = sorted(k for k in sys.modules if k.startswith("pyroute2"))
assert "pyroute2.ndb" not in sys.modules and "pyroute2.iproute" not in sys.modules, before
from pyroute2 import IPRoute, config
from pyroute2.netlink.generic import GenericNetlinkSocket
assert IPRoute.__name__ == "IPRoute" and config.__name__ == "pyroute2.config"
print(len(before), sum(k.startswith("pyroute2") for k in sys.modules))
"""


def test_core_only_then_whole_package_on_demand() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    core, whole = map(int, proc.stdout.split())
    assert core < 40 < whole  # 16 against 163 with pyroute2 0.9, 7 against 166 with 0.7
