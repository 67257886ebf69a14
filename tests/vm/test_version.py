"""The module's version (MODULE_VERSION, from kernel/VERSION) is mgctl's."""

from pathlib import Path

import mgctl
from tests.vm.conftest import KO, Module, sh


def test_module_version_is_mgctl_version(mgcap: Module) -> None:
    assert sh(f"modinfo -F version {KO}").stdout.strip() == mgctl.__version__
    mgcap.load()
    assert Path("/sys/module/mgcap/version").read_text().strip() == mgctl.__version__
