"""mgcap user space: the record format, the character device reader, mgctl and mgdump."""

from mgctl.version import version

__version__: str = version()
