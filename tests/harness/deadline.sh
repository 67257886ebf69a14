# The guest command's own deadline, for guest.sh (which sources this file; the host
# tests run it with fake commands, tests/host/test_harness.py).
#
# with_deadline CMD [ARG...] runs CMD and sets rc to its exit status. With
# MGCAP_GUEST_END set (seconds since the epoch by the host's clock, which the guest's
# is set from at boot; vmrun.py and budget.py put it minutes before the boot's own
# deadline), CMD runs under timeout(1): at the deadline its process group gets SIGUSR2
# (pytest: every thread's stack, the test under way fails and pytest writes its
# report: tests/conftest.py), and SIGKILL MGCAP_GUEST_GRACE seconds later. Then it
# says so, and writes the seconds it had into $MGCAP_OUT/timed-out for vmrun's verdict.
with_deadline() {
	limit=
	if [ -n "${MGCAP_GUEST_END:-}" ]; then
		left=$((MGCAP_GUEST_END - $(date +%s)))
		[ "$left" -gt 0 ] || left=1
		limit="timeout -s USR2 -k ${MGCAP_GUEST_GRACE:-60} $left"
		echo "mgcap-vm: the guest command's deadline: $left s"
	fi
	began=$(date +%s)
	$limit "$@"
	rc=$?
	# timeout(1)'s status when the deadline came: 124 (137 if it took SIGKILL)
	if [ -n "$limit" ] && { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } &&
		[ $(($(date +%s) - began)) -ge "$left" ]; then
		echo "mgcap-vm: FAILED: guest command timed out after $left s"
		echo "$left" >"$MGCAP_OUT/timed-out"
	fi
}
