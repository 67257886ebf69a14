"""mgcap user space: the record format, the character device reader, mgctl and mgdump."""

__version__ = "0.1.0"
