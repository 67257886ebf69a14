"""What a plain `bash tests/run` boots and runs: the one place tests/run and the plan
(tests/harness/plan.py) both read, so that the plan cannot disagree with the run.

    python -m tests.harness.suite debug-tests   # the debug kernel's subset, one id a line
    python -m tests.harness.suite exports       # the opt-in switches, on unless set
"""

import argparse
import os

# the Debian kernels, in boot order: `vmrun --kernel all` boots the installed ones
# (.ci/setup installs these two), the i-th of n with MGCAP_SHARE=i/n
DEBIAN_KERNELS = ("6.1", "6.12")

# what runs the module's own code under stress or through its error paths on the
# debug kernel (KASAN, lockdep, kmemleak, UBSAN); the whole suite there takes hours
# (--full-debug), docs/testing.md has the times
DEBUG_TESTS = (
    "tests/vm/test_faults_under_load.py",
    "tests/vm/test_ring.py::test_overflow_captured_plus_drops_equals_sent",
    "tests/vm/test_ring.py::test_flood_two_rings_with_bound_readers",
    "tests/vm/test_ring.py::test_binding_is_exclusive_and_unbound_readers_skip_bound_rings",
    "tests/vm/test_ring.py::test_mmap_reader",
    "tests/vm/test_ring.py::test_mmap_data_pages_are_read_only",
    "tests/vm/test_chardev_files.py::test_an_impossible_consumer_pos_dies_with_its_mapping",
    "tests/vm/test_chardev_files.py::test_rename_follows_the_device",
    "tests/vm/test_cpu_hotplug.py",
    "tests/vm/test_lifecycle.py::test_device_deleted_while_reader_blocks",
    "tests/vm/test_lifecycle.py::test_records_left_in_ring_survive_device_removal",
    "tests/vm/test_lifecycle.py::test_rmmod_refused_while_a_reader_holds_the_device",
    "tests/vm/test_netlink_policy.py",
    "tests/vm/test_netlink_dump.py::test_extack_names_the_bad_or_missing_attribute",
    "tests/vm/test_security.py::test_bad_ioctls_and_mappings_get_errors",
    "tests/vm/test_filter.py::test_live_swap_under_flood_never_mixes_programs",
    "tests/vm/test_filter.py::test_bad_programs_refused_with_a_message",
    "tests/vm/test_cycles.py",
)

# opt-in switches of costly VM tests, on in a plain run (off: "0"): the .deb's
# install in the guest (test_dkms.py) and the ansible plays (test_ansible_fleet.py),
# each in one boot of a run over several kernels (their once marks)
SWITCHES = ("MGCAP_DKMS_VM", "MGCAP_ANSIBLE_VM")


def switches(env: dict[str, str] | None = None) -> dict[str, str]:
    """The switches' values for a run from env: as set there, else on."""
    env = dict(os.environ) if env is None else env
    return {name: env.get(name) or "1" for name in SWITCHES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=("debug-tests", "kernels", "exports"))
    what = ap.parse_args().what
    if what == "debug-tests":
        print("\n".join(DEBUG_TESTS))
    elif what == "kernels":
        print("\n".join(DEBIAN_KERNELS))
    else:
        print("export " + " ".join(f"{k}={v}" for k, v in switches().items()))


if __name__ == "__main__":
    main()
