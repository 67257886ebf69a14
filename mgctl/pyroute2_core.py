"""pyroute2's netlink core without its package ``__init__``.

``import pyroute2.netlink.generic`` runs ``pyroute2/__init__.py`` first, which
imports IPRoute, NDB, IPDB, conntrack and more: about 160 modules, 200 ms on a
server and 10 s in the project's emulated test VMs, at every mgctl and mgdump
start, for classes mgctl never uses. Importing this module first registers the
``pyroute2`` package with its ``__init__`` deferred: its submodules import as
usual, and the first use of a name the ``__init__`` defines (``from pyroute2
import IPRoute``) runs it then, so nothing else in the process sees a difference.
"""

import importlib
import importlib.util
import sys
import types
from typing import Any


class _DeferredPackage(types.ModuleType):
    """The pyroute2 package; its ``__init__`` runs at the first missing name that
    is not a submodule (``from pyroute2 import config`` imports the submodule)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or self.__dict__.get("_mgctl_loaded"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{self.__name__}.{name}") is not None:
            return importlib.import_module(f"{self.__name__}.{name}")
        self.__dict__["_mgctl_loaded"] = True
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(self)
        return getattr(self, name)


def _register() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not installed: the import that follows reports it
    package = _DeferredPackage(spec.name)
    package.__spec__ = spec
    package.__loader__ = spec.loader
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = spec.name
    sys.modules[spec.name] = package


_register()
