"""mgcap user space: the record format, the character device reader, mgctl and mgdump."""

# before any module here imports pyroute2 (see its docstring)
from mgctl import pyroute2_core  # noqa: F401
from mgctl.version import version

__version__: str = version()
