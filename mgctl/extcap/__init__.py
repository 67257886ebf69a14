"""mgcap-extcap: mgcap as a capture interface of Wireshark and tshark (extcap).

Wireshark runs the program in its extcap folder with --extcap-interfaces, then
--extcap-dlts and --extcap-config for each interface (mgcap:IF), and finally
--capture --fifo PATH, reading PCAP-NG from the fifo; it stops the capture with
SIGTERM. The capture itself is mgdump's Session (mgctl/dump/session.py). The
listing, config and filter-check calls import little: Wireshark runs them at every
start, once per interface.
"""
