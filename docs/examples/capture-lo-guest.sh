#!/bin/sh
# Inside the VM (run by capture-lo.sh): load mgcap capturing lo, ping, save the
# records as PCAP-NG into the host-visible output directory, unload.
set -e
insmod "$MGCAP_BUILD/kernel/mgcap.ko" ifname=lo
ls -l /dev/mgcap/
python -m mgctl.rawdump lo "$MGCAP_OUT/capture-lo.pcapng" --count 10 --timeout 30 &
dump=$!
sleep 1
ping -c 5 -i 0.2 127.0.0.1
wait $dump
echo "kernel counters of lo:"
grep . /sys/class/mgcap/lo/statistics/*
rmmod mgcap
