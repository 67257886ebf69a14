"""The benchmark of mgcap against its peers (tcpdump, dumpcap, netsniff-ng, xdpdump).

`python -m tests.bench` boots the test VM once and prints a table; see docs/performance.md.
"""
