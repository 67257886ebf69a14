#!/bin/sh
# Install mgcap-dkms on this host as a user would (dpkg -i: DKMS builds and
# installs the module for every kernel with headers, here the 6.1 and 6.12 of
# .ci/setup), check what DKMS installed, and purge it, all in a private mount
# namespace whose /usr, /var and /etc are throw-away overlays: the host's own
# stay as they were.  Loading needs the VM (tests/vm/test_dkms.py).
#   sudo sh tests/pkg/install-check.sh [path/to/mgcap-dkms_<version>_all.deb]
set -eu
cd "$(dirname "$0")/../.."
if [ "${MGCAP_IN_NS:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || { echo "install-check: needs root" >&2; exit 1; }
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT
	deb=${1:-$(python3 -m tests.pkg.deb "$scratch/deb")}
	MGCAP_IN_NS=1 unshare -m --propagation private sh "$0" "$(realpath "$deb")" "$scratch"
	if find /lib/modules /usr/src /var/lib/dkms -name 'mgcap*' | grep -q .; then
		echo "install-check: FAILED: the host has mgcap files after the check" >&2
		exit 1
	fi
	exit 0
fi

deb=$1
ov=$2/overlay
version=$(cat kernel/VERSION)
mkdir -p "$ov"
mount -t tmpfs tmpfs "$ov"
for d in usr var etc; do
	mkdir -p "$ov/$d/upper" "$ov/$d/work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$ov/$d/upper,workdir=$ov/$d/work" "/$d"
done
start=$(date +%s)
if ! dpkg -i "$deb" >"$ov/dpkg.log" 2>&1; then
	cat "$ov/dpkg.log"
	echo "install-check: FAILED: dpkg -i $deb" >&2
	exit 1
fi
echo "install-check: dpkg -i took $(($(date +%s) - start)) s"
fail=0
for k in $(ls /lib/modules); do
	[ -d "/lib/modules/$k/build" ] || continue
	path=$(modinfo -k "$k" -n mgcap 2>/dev/null) || path=none
	ver=$(modinfo -k "$k" -F version mgcap 2>/dev/null) || ver=none
	alias=$(modinfo -k "$k" -F alias mgcap 2>/dev/null) || alias=none
	echo "install-check: $k: $path version $ver alias $alias"
	case "$path" in
	"/lib/modules/$k/updates/dkms/mgcap.ko"*) ;;
	*) fail=1 ;;
	esac
	[ "$ver" = "$version" ] || fail=1
	[ "$alias" = net-pf-16-proto-16-family-mgcap ] || fail=1
done
dpkg --purge mgcap-dkms >"$ov/purge.log" 2>&1 || { cat "$ov/purge.log"; fail=1; }
for k in $(ls /lib/modules); do
	if modinfo -k "$k" -n mgcap >/dev/null 2>&1; then
		echo "install-check: $k: mgcap still installed after dpkg --purge" >&2
		fail=1
	fi
done
[ "$fail" = 0 ] && echo "install-check: ok" || echo "install-check: FAILED" >&2
exit "$fail"
