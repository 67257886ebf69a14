#!/bin/sh
# Runs inside the VM (see vmrun.py): the guest command, then the verdict and
# the kernel log into $MGCAP_OUT, which is on the host.
# "pytest ARGS" runs the VM test suite; anything else runs as a shell command.
cmd="$1"
# with_deadline: the guest command's own deadline (MGCAP_GUEST_END)
. "$(dirname "$0")/deadline.sh"
ip link set lo up
# Python's trees from read-only disk images (vmrun.py, pytrees.py): the same
# files, read through the page cache instead of uncached 9p
if [ -n "$MGCAP_PYTREES" ]; then
	modprobe -q loop
	modprobe -q ext4
	for pair in $MGCAP_PYTREES; do
		img=${pair%%=*}
		dir=${pair#*=}
		mnt=/run/mgcap-pytrees/$(basename "$img" .ext4)
		if mkdir -p "$mnt" && mount -o loop,ro "$img" "$mnt" && mount --bind "$mnt" "$dir"; then
			echo "mgcap-vm: $dir from $img"
		else
			echo "mgcap-vm: $dir stays on 9p (slower): $img did not mount"
		fi
	done
fi
# The system's programs and libraries from the host's root exported a second time
# (vmrun.py's SYSTEM_SHARE) and mounted with caching: virtme-ng's root is 9p without
# a cache, every lookup and read a trip into qemu (tshark's first start 81 s, 9.5 s
# cached). Only directories the tests read and never write: /usr and /lib/modules
# stay virtme-ng's writable overlays (test_dkms.py installs there).
sysroot=/run/mgcap-sys
if mkdir -p "$sysroot" &&
	mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose mgcap-sys "$sysroot" 2>/dev/null; then
	for dir in /usr/bin /usr/sbin /usr/lib/x86_64-linux-gnu /usr/share/wireshark \
		"/usr/lib/modules/$(uname -r)/kernel"; do
		if [ -d "$sysroot$dir" ] && [ -d "$dir" ]; then
			mount --bind "$sysroot$dir" "$dir" || echo "mgcap-vm: $dir stays uncached: bind failed"
		fi
	done
	echo "mgcap-vm: system directories from the cached share"
else
	echo "mgcap-vm: system directories stay on uncached 9p (no mgcap-sys share)"
fi
echo "mgcap-vm: guest command begins" > /dev/kmsg
case "$cmd" in
pytest*)
	# the arguments were quoted for a shell by vmrun.py; without a test path
	# among them the whole VM suite runs
	paths=tests/vm
	case " ${cmd#pytest} " in
	*" tests/"* | *" 'tests/"*) paths= ;;
	esac
	eval "with_deadline python -m pytest -p no:cacheprovider -m vm $paths -v -rs \
		--junitxml=\"\$MGCAP_OUT/junit.xml\" ${cmd#pytest}"
	;;
*)
	with_deadline sh -c "$cmd"
	;;
esac
# scan for leaks the tests left (kmemleak is only there on debug kernels)
# (an object is reported once it was unreferenced for 5 s: scan, wait, scan again)
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan > /sys/kernel/debug/kmemleak
	sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak > "$MGCAP_OUT/kmemleak.txt"
fi
dmesg > "$MGCAP_OUT/dmesg.txt"
echo "$rc" > "$MGCAP_OUT/rc"
