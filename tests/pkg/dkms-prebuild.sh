#!/bin/sh
# Install mgcap-dkms on this host as a user would (dpkg -i: the package's
# postinst makes DKMS build and install the module for every kernel with
# headers), then keep what DKMS built as a DKMS tarball (sources and the
# module per kernel, `dkms mktarball`'s format) for the VM test
# (tests/vm/test_dkms.py): a `dpkg -i` in the guest finds it where the
# package's postinst looks for prebuilt modules (/usr/share/mgcap-dkms/) and
# installs them without compiling (a DKMS compile under TCG takes minutes).
# All of it happens in a private mount namespace whose /usr, /var and /etc are
# throw-away overlays: the host's own stay as they were.
#   sudo sh tests/pkg/dkms-prebuild.sh DEB OUTDIR
set -eu
deb=$(realpath "$1")
out=$(realpath "$2")
if [ "${MGCAP_IN_NS:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || { echo "dkms-prebuild: needs root" >&2; exit 1; }
	exec env MGCAP_IN_NS=1 unshare -m --propagation private sh "$0" "$deb" "$out"
fi
name=mgcap
version=$(dpkg-deb -f "$deb" Version)
ov=$(mktemp -d)
mount -t tmpfs tmpfs "$ov"
for d in usr var etc; do
	mkdir -p "$ov/$d/upper" "$ov/$d/work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$ov/$d/upper,workdir=$ov/$d/work" "/$d"
done
if ! dpkg -i "$deb" >"$out/dpkg.log" 2>&1; then
	cat "$out/dpkg.log" >&2
	echo "dkms-prebuild: dpkg -i $deb failed" >&2
	exit 1
fi
kernels=$(dkms status "$name/$version" | sed -n "s|^$name/$version, \([^,]*\), [^:]*: installed.*|\1|p")
[ -n "$kernels" ] || { echo "dkms-prebuild: DKMS installed $name for no kernel" >&2; exit 1; }
# one tarball per kernel: dkms 3.0.10's mktarball and ldtarball handle only the
# first of several kernels (a readonly local in their loops)
for k in $kernels; do
	dkms mktarball "$name/$version" -k "$k" --archive "$name-$version-$k.dkms.tar.gz" >>"$out/dpkg.log" 2>&1
	cp "/var/lib/dkms/$name/$version/tarball/$name-$version-$k.dkms.tar.gz" "$out/"
	tar -tzf "$out/$name-$version-$k.dkms.tar.gz" | grep -q "dkms_main_tree/$k/.*/module/" ||
		{ echo "dkms-prebuild: no module for $k in its tarball" >&2; exit 1; }
done
cp "$deb" "$out/"
echo "dkms-prebuild: $out/$name-$version-<kernel>.dkms.tar.gz for" $kernels
