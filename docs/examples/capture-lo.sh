#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install what is needed, build
# mgcap.ko, boot Debian's 6.1 kernel in a VM, start capture on lo (mgctl),
# let mgdump -c write 10 packets of a ping into a PCAP-NG file, and show that
# file with tshark on the host.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash .ci/setup
export PATH="$PWD/.venv/bin:$PATH"
kernel=$(python -c 'from tests.harness import kernels; print(kernels.resolve(["6.1"])[0])')
out="build/$kernel/vm"
python -m tests.harness.vmrun --kernel "$kernel" --exec "sh docs/examples/capture-lo-guest.sh"
echo "== the capture, read by tshark on the host ($out/capture-lo.pcapng):"
capinfos -c -u "$out/capture-lo.pcapng"
tshark -n -r "$out/capture-lo.pcapng"
