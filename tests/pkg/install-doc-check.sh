#!/bin/bash
# Run the commands of docs/install.md on this host as an operator would, in a
# private mount namespace whose /usr, /etc, /var, /opt and /root are throw-away
# overlays: the host keeps none of it.  Not part of tests/run: it needs root,
# the network (apt, pip) and several minutes (DKMS builds the module four
# times, make once).  The transcript goes to stdout; the exit status is 1 if
# any check marked "expect" failed.
#   sudo bash tests/pkg/install-doc-check.sh > install-doc-check.log
# Step 5 reads MGCAP_CAPTURE, else the capture docs/examples/capture-lo.sh left
# in build/ (skipped without one).
# Loading the module, a running systemd and UEFI are not here (see the end of
# docs/install.md): those steps are left out or expected to fail as they say.
set -u
cd "$(dirname "$0")/../.."
if [ "${MGCAP_IN_NS:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || { echo "install-doc-check: needs root" >&2; exit 1; }
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT
	# a copy of the checkout: dpkg-buildpackage writes beside it, pip builds in it
	mkdir "$scratch/run"
	git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$scratch/run" --one-top-level=mgcap
	git describe --always --dirty > "$scratch/describe"
	MGCAP_IN_NS=1 MGCAP_ORIG=$PWD unshare -m --propagation private bash "$0" "$scratch"
	rc=$?
	left=$(find /lib/modules /usr/src /var/lib/dkms -name 'mgcap*' 2>/dev/null
		ls -d /opt/mgcap /opt/pipx /usr/local/bin/mgctl /etc/mgcap /etc/systemd/system/mgcap@.service 2>/dev/null)
	if [ -n "$left" ]; then
		echo "install-doc-check: FAILED: the host has these after the check: $left" >&2
		exit 1
	fi
	exit "$rc"
fi

scratch=$1
ov=$scratch/overlay
mkdir -p "$ov"
mount -t tmpfs tmpfs "$ov"
for d in usr etc var opt root; do
	mkdir -p "$ov/$d/upper" "$ov/$d/work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$ov/$d/upper,workdir=$ov/$d/work" "/$d"
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
export DEBIAN_FRONTEND=noninteractive
cd "$scratch/run/mgcap"
version=$(cat kernel/VERSION)
# the running kernel, or (a machine running a kernel without headers) the first
# one whose headers are installed
kernel=$(uname -r)
[ -d "/lib/modules/$kernel/build" ] || kernel=$(basename "$(dirname "$(ls -d /lib/modules/*/build | head -1)")")
fail=0

run() {  # run a command line, show it and its status
	echo "\$ $*"
	bash -c "$*" 2>&1
	local rc=$?
	echo "[status $rc]"
	return $rc
}
expect() {  # expect STATUS COMMAND...: the command must end with that status
	local want=$1
	shift
	run "$@"
	local got=$?
	if [ "$got" != "$want" ]; then
		echo "install-doc-check: FAILED: expected status $want" >&2
		fail=1
	fi
}
section() { echo; echo "=== $*"; }

section "1. packages (kernel $kernel for \$(uname -r) $(uname -r))"
expect 0 "apt-get update -q >/dev/null"
expect 0 "apt-get install -y -q sudo >/dev/null"
expect 0 "sudo apt install -y dkms linux-headers-$kernel debhelper dh-dkms python3-venv tshark >/dev/null 2>&1"
expect 0 "sudo apt install -y mokutil pipx bash-completion >/dev/null 2>&1"
run "dpkg -l dkms systemd man-db bash-completion sudo pipx mokutil | grep ^ii"

section "2. the .deb, built by DKMS"
expect 0 "dpkg-buildpackage -us -uc -b >/dev/null 2>&1 && ls ../mgcap-dkms_${version}_all.deb"
expect 0 "sudo apt install -y ../mgcap-dkms_\$(cat kernel/VERSION)_all.deb 2>&1 | grep -E 'Sign command|Signing key|Public certificate|Certificate or key|Building module|Signing module|Installing|Error|rror!'; exit \${PIPESTATUS[0]}"
expect 0 "dkms status mgcap"
expect 0 "modinfo -k $kernel -n mgcap"
expect 0 "modinfo -k $kernel -F signer mgcap"
expect 0 "ls -l /var/lib/dkms/mok.key /var/lib/dkms/mok.pub && openssl x509 -inform DER -in /var/lib/dkms/mok.pub -noout -subject"

section "3. the tools"
expect 1 "python3 -m pip install . 2>&1 | head -3; exit \${PIPESTATUS[0]}"
expect 0 "sudo python3 -m venv /opt/mgcap/venv && sudo /opt/mgcap/venv/bin/pip install -q . 2>&1 | grep -v '^WARNING: Location'; exit \${PIPESTATUS[0]}"
expect 1 "sudo mgctl --version"
expect 0 "sudo env PATH=/opt/mgcap/venv/bin:\$PATH mgctl --version"
expect 0 "sudo ln -s /opt/mgcap/venv/bin/mgctl /opt/mgcap/venv/bin/mgdump /opt/mgcap/venv/bin/mgcap-extcap /usr/local/bin/"
expect 0 "sudo mgctl --version && sudo mgdump --version"
expect 0 "grep secure_path /etc/sudoers"
expect 1 "sudo mgctl show"
expect 0 "/opt/mgcap/venv/bin/python -c 'from mgctl import api; print(api.module_missing(\"$kernel\"))' | grep -F '(modprobe mgcap)'"

section "5. reading a capture (one mgdump wrote in the test VM, if there is one)"
cap=${MGCAP_CAPTURE:-$(ls "$MGCAP_ORIG"/build/*/vm/capture-lo.pcapng 2>/dev/null | head -1)}
if [ -n "$cap" ]; then
	cp "$cap" first.pcapng
	expect 0 "capinfos first.pcapng | grep -E 'Number of packets|Capture application|Description' && tshark -r first.pcapng -c 5 2>/dev/null"
fi

section "man pages and completion"
expect 0 "PATH=/opt/mgcap/venv/bin:\$PATH manpath"
expect 16 "man -w mgctl"
expect 0 "sudo mkdir -p /usr/local/share/man/man8 /usr/local/share/bash-completion/completions"
expect 0 "sudo ln -s /opt/mgcap/venv/share/man/man8/mgctl.8 /opt/mgcap/venv/share/man/man8/mgdump.8 /usr/local/share/man/man8/"
expect 0 "sudo ln -s /opt/mgcap/venv/share/bash-completion/completions/mgctl /opt/mgcap/venv/share/bash-completion/completions/mgdump /usr/local/share/bash-completion/completions/"
expect 0 "man -w mgctl mgdump"
expect 0 "bash -c '. /usr/share/bash-completion/bash_completion; __load_completion mgctl && __load_completion mgdump && complete -p mgctl mgdump'"

section "pipx"
expect 0 "sudo PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx install --force . 2>&1 | grep -v '^WARNING: Location'; exit \${PIPESTATUS[0]}"
expect 0 "ls -l /usr/local/bin/mgctl && ls /opt/pipx/venvs/mgcap/share/man/man8"
expect 0 "sudo PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx uninstall mgcap"
expect 0 "sudo rm -f /usr/local/bin/mgctl /usr/local/bin/mgdump /usr/local/bin/mgcap-extcap && sudo ln -s /opt/mgcap/venv/bin/mgctl /opt/mgcap/venv/bin/mgdump /opt/mgcap/venv/bin/mgcap-extcap /usr/local/bin/"

section "a capture that survives a reboot"
expect 0 "sudo install -m644 systemd/mgcap@.service /etc/systemd/system/"
expect 0 "sudo install -d -m700 /etc/mgcap && sudo install -m600 systemd/mgcap/eth1.conf /etc/mgcap/eth1.conf"
expect 0 "sudo systemd-analyze verify mgcap@eth1.service"
expect 1 "sudo systemctl daemon-reload"
expect 0 "sudo systemctl enable mgcap@eth1"
expect 0 "ls /etc/systemd/system/multi-user.target.wants/mgcap@eth1.service /etc/systemd/system/sys-subsystem-net-devices-eth1.device.wants/mgcap@eth1.service"
expect 0 "systemd-escape --template mgcap@.service br-lan"
expect 0 "sudo install -m644 systemd/modules-load.d/mgcap.conf /etc/modules-load.d/mgcap.conf"
expect 0 "echo 'options mgcap ring_size=16777216' | sudo tee /etc/modprobe.d/mgcap.conf"

section "Secure Boot"
expect 1 "mokutil --sb-state"
expect 0 "make -C kernel KDIR=/lib/modules/$kernel/build >/dev/null 2>&1 && ls kernel/mgcap.ko"
sign=/usr/lib/linux-kbuild-${kernel%.*}/scripts/sign-file
[ -x "$sign" ] || sign=/lib/modules/$kernel/build/scripts/sign-file
expect 1 "modinfo -F signer kernel/mgcap.ko | grep ."
expect 0 "sudo $sign sha256 /var/lib/dkms/mok.key /var/lib/dkms/mok.pub kernel/mgcap.ko"
expect 0 "modinfo -F signer kernel/mgcap.ko"
expect 1 "mokutil --test-key /var/lib/dkms/mok.pub"
expect 0 "python3 -c 'import errno, os; print(os.strerror(errno.EKEYREJECTED))'"

section "uninstall (the package), then DKMS by hand"
expect 0 "sudo systemctl disable mgcap@eth1"
expect 0 "sudo rm -r /etc/systemd/system/mgcap@.service /etc/mgcap /etc/modules-load.d/mgcap.conf /etc/modprobe.d/mgcap.conf"
expect 0 "sudo apt purge -y mgcap-dkms >/dev/null 2>&1 && dkms status mgcap"
expect 1 "modinfo -k $kernel -n mgcap"
expect 0 "sudo make -C kernel install-src >/dev/null && ls /usr/src/mgcap-$version"
if [ "$kernel" != "$(uname -r)" ]; then
	expect 1 "sudo dkms install mgcap/$version 2>&1 | grep -E 'Error|cannot be found'; exit \${PIPESTATUS[0]}"
fi
expect 0 "sudo dkms install mgcap/$version -k $kernel 2>&1 | tail -3; exit \${PIPESTATUS[0]}"
other=$(ls -d /lib/modules/*/build | sed 's,/lib/modules/,,; s,/build,,' | grep -vx "$kernel" | head -1)
if [ -n "$other" ]; then
	expect 0 "sudo dkms autoinstall -k $other 2>&1 | tail -2; exit \${PIPESTATUS[0]}"
fi
expect 0 "dkms status mgcap"
expect 0 "sudo dkms remove mgcap/$version --all 2>&1 | tail -2 && sudo rm -r /usr/src/mgcap-$version && dkms status mgcap"

section "uninstall (the tools)"
expect 0 "sudo rm /usr/local/bin/mgctl /usr/local/bin/mgdump /usr/local/bin/mgcap-extcap"
expect 0 "sudo rm /usr/local/share/man/man8/mgctl.8 /usr/local/share/man/man8/mgdump.8"
expect 0 "sudo rm /usr/local/share/bash-completion/completions/mgctl /usr/local/share/bash-completion/completions/mgdump"
expect 0 "sudo rm -r /opt/mgcap"

section "for a report"
run "gcc --version | head -1; dpkg -l 'linux-image-*' 'linux-headers-*' | grep ^ii | cut -c1-90; cat $scratch/describe"

echo
[ "$fail" = 0 ] && echo "install-doc-check: ok" || echo "install-doc-check: FAILED" >&2
exit "$fail"
