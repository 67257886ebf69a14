#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# mgcap's self-test in the style of the kernel's tools/testing/selftests/net:
# no Python, no mgctl, only the module, iproute2, ping and coreutils, so it
# runs on any machine (or VM) the module was built for, e.g. real hardware
# before a driver is trusted. TAP output; exit 0 pass, 1 fail, 4 skip.
#
#   sudo tests/selftest/mgcap.sh [path/to/mgcap.ko]
#
# In a network namespace of its own behind a veth pair, it loads the module
# with ifname= (capture from load), pings through the captured device, reads
# the records from /dev/mgcap/<dev> and checks the counters in sysfs, for mode
# mirror (the pings are answered) and mode drop (they are not), then unloads
# the module and checks that nothing is left. It touches no other device.

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

ko=${1:-$(dirname "$0")/../../kernel/mgcap.ko}
ns=mgks-$$
dev=mgksa
peer=mgksb
count=10
snaplen=96
# an echo request is 98 bytes (14 + 20 + 8 + 56): each record holds 96 of them,
# a PCAP-NG enhanced packet block of 28 + 96 + 4 bytes (uapi/mgcap.h)
record_len=128
tmp=$(mktemp -d)
nr=0
failed=0

ok() {
	nr=$((nr + 1))
	echo "ok $nr - $1"
}

not_ok() {
	nr=$((nr + 1))
	failed=1
	echo "not ok $nr - $1"
}

check() { # description, then a command that passes or fails
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

skip_all() {
	echo "1..0 # SKIP $1"
	exit $KSFT_SKIP
}

cleanup() {
	grep -q "^mgcap " /proc/modules && rmmod mgcap 2>/dev/null
	ip link del "$dev" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}

stat_of() {
	cat "/sys/class/mgcap/$dev/statistics/$1"
}

# every record in the rings, read without blocking until EAGAIN; prints bytes
drain() {
	dd if="/dev/mgcap/$dev" of="$tmp/records" bs=65536 iflag=nonblock status=none 2>/dev/null
	stat -c %s "$tmp/records"
}

# pings from the namespace to this side; prints the replies received
pings() {
	ip netns exec "$ns" ping -n -q -c "$count" -i 0.2 -W 1 10.254.77.1 2>/dev/null |
		sed -n 's/.* \([0-9]*\) received.*/\1/p'
}

gone() {
	[ ! -e "/dev/mgcap/$dev" ] && [ ! -e "/sys/class/mgcap/$dev" ]
}

wait_node() {
	local i
	for i in $(seq 50); do
		[ -c "/dev/mgcap/$dev" ] && return 0
		sleep 0.1
	done
	return 1
}

# one capture from load to unload in the given mode
run_mode() {
	local mode=$1 replies want_replies want_consumed bytes
	check "$mode: insmod ifname=$dev mode=$mode" insmod "$ko" ifname="$dev" mode="$mode" snaplen="$snaplen"
	check "$mode: /dev/mgcap/$dev appears" wait_node
	check "$mode: sysfs shows the mode" [ "$(cat "/sys/class/mgcap/$dev/mode" 2>/dev/null)" = "$mode" ]
	replies=$(pings)
	want_replies=$count
	want_consumed=0
	if [ "$mode" = drop ]; then
		want_replies=0
		want_consumed=$count
	fi
	check "$mode: $want_replies of $count echo requests answered (got ${replies:-none})" \
		[ "${replies:-x}" = "$want_replies" ]
	check "$mode: seen = captured = $count" \
		[ "$(stat_of seen_packets)/$(stat_of captured_packets)" = "$count/$count" ]
	check "$mode: no drops, no copy errors" \
		[ "$(stat_of ring_full_drops)/$(stat_of copy_errors)" = 0/0 ]
	bytes=$(drain)
	check "$mode: $count records of $record_len bytes read (got ${bytes:-none} bytes)" \
		[ "${bytes:-x}" = $((count * record_len)) ]
	check "$mode: each record is an enhanced packet block (type 6)" \
		[ "$(od -An -tu4 -N4 "$tmp/records" | tr -d ' ')" = 6 ]
	# consumed: the frames drop mode took from the stack
	check "$mode: consumed = $want_consumed" [ "$(stat_of consumed_packets)" = "$want_consumed" ]
	check "$mode: rmmod" rmmod mgcap
	check "$mode: nothing left in /dev and sysfs" gone
}

[ "$(id -u)" = 0 ] || skip_all "needs root"
for tool in ip ping dd od insmod rmmod; do
	command -v "$tool" >/dev/null || skip_all "$tool not found"
done
[ -f "$ko" ] || skip_all "no module at $ko (give its path)"
grep -q "^mgcap " /proc/modules && skip_all "mgcap is loaded: not touching its captures"
trap cleanup EXIT

ip netns add "$ns" || skip_all "cannot create a network namespace"
ip link add "$dev" type veth peer name "$peer" netns "$ns" || skip_all "no veth"
# only the test's frames: no IPv6 (router solicitations, MLD), static neighbours
sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$peer.disable_ipv6=1"
ip addr add 10.254.77.1/24 dev "$dev"
ip link set "$dev" up
ip netns exec "$ns" ip addr add 10.254.77.2/24 dev "$peer"
ip netns exec "$ns" ip link set "$peer" up
ip neigh replace 10.254.77.2 lladdr "$(ip netns exec "$ns" cat "/sys/class/net/$peer/address")" \
	dev "$dev" nud permanent
ip netns exec "$ns" ip neigh replace 10.254.77.1 \
	lladdr "$(cat "/sys/class/net/$dev/address")" dev "$peer" nud permanent

echo "TAP version 13"
echo "1..22"
run_mode mirror
run_mode drop
[ "$failed" = 0 ] && exit $KSFT_PASS
exit $KSFT_FAIL
