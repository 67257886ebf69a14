"""mgdump: the data plane that writes what mgcap captures into PCAP-NG files.

One reader thread per (device, ring), pinned to the ring's CPU, drains the
kernel rings into a large in-memory buffer; one writer thread moves the buffer
to the output files, so a slow disk never stalls the rings (Gulp's design).
"""
