#!/bin/sh
# Inside the VM (run by capture-lo.sh): load mgcap, start capture on lo with
# mgctl, ping, save the records as PCAP-NG into the host-visible output
# directory, show the counters, stop, unload.
set -e
insmod "$MGCAP_BUILD/kernel/mgcap.ko"
mgctl start dev lo mode mirror
mgctl show
python -m mgctl.rawdump lo "$MGCAP_OUT/capture-lo.pcapng" --count 10 --timeout 30 &
dump=$!
sleep 1
ping -c 5 -i 0.2 127.0.0.1
wait $dump
mgctl -s show dev lo
mgctl stop dev lo
rmmod mgcap
