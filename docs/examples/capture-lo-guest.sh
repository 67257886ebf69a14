#!/bin/sh
# Inside the VM (run by capture-lo.sh): load mgcap, start capture on lo with
# mgctl, let mgdump write 10 packets of a ping as PCAP-NG into the host-visible
# output directory, show the counters, stop, unload.
set -e
insmod "$MGCAP_BUILD/kernel/mgcap.ko"
mgctl start dev lo mode mirror
mgctl show
mgdump -i lo -w "$MGCAP_OUT/capture-lo.pcapng" -c 10 &
dump=$!
sleep 3
# one CPU, so that all packets are in one ring (docs/mgdump.md: order of packets)
taskset -c 0 ping -c 5 -i 0.2 127.0.0.1
wait $dump
mgctl -s show dev lo
mgctl stop dev lo
rmmod mgcap
