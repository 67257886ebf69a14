"""What a plain `bash tests/run` (and so CI) boots, in which order, with which tests.

One place for the composition, read by vmrun.py (`--suite`) and by the plan
(tests/harness/plan.py), so that the two cannot disagree.

The boots run in two lanes side by side: a TCG guest keeps one to one and a half
host cores busy (qemu sampled at 1.1-1.4 cores alone, ~1.0 beside another guest),
and the machine has two. CI's run (`bash tests/run`):

    lane A: Debian 6.1 (the whole VM suite)
    lane B: Debian 6.12 (the whole VM suite)

`bash tests/run --debug` adds the debug kernel, whose build (begun by tests/run
before the host tests) takes a core for as long as a Debian boot:

    lane A: Debian 6.1, then the debug kernel (DEBUG_TESTS)
    lane B: the debug kernel's build, then Debian 6.12

It fits CI's time now (about 52 minutes projected), but the debug boot's test_cycles
fails its memory bound under KASAN (docs/testing.md): not in CI's run yet.
A test marked once(slot=k) runs in the boot whose share is k of 2: slot 0 in 6.1,
slot 1 in 6.12 (tests/vm/conftest.py). The debug boot runs named tests only.
"""

import argparse
import os
from dataclasses import dataclass, field

# the tests that put the module's own code under stress or through its error paths:
# what the debug kernel's detectors (KASAN, lockdep, kmemleak, UBSAN, KFENCE) must see
DEBUG_TESTS = (
    "tests/vm/test_faults_under_load.py",
    "tests/vm/test_ring.py::test_overflow_captured_plus_drops_equals_sent",
    "tests/vm/test_ring.py::test_flood_two_rings_with_bound_readers",
    "tests/vm/test_ring.py::test_binding_is_exclusive_and_unbound_readers_skip_bound_rings",
    "tests/vm/test_ring.py::test_mmap_reader",
    "tests/vm/test_ring.py::test_mmap_data_pages_are_read_only",
    "tests/vm/test_chardev_files.py::test_an_impossible_consumer_pos_dies_with_its_mapping[beyond]",
    "tests/vm/test_chardev_files.py::test_an_impossible_consumer_pos_dies_with_its_mapping[inside]",
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
# the costly plays of the whole suite, on unless set to "0" (then left out of a quick
# local run): the .deb's install in the guest (test_dkms.py) and the ansible plays
# (test_ansible_fleet.py), each in one Debian boot (their once marks); vmrun.wanted()
SWITCHES = ("MGCAP_DKMS_VM", "MGCAP_ANSIBLE_VM")
# netlink start/stop cycles on the debug kernel (KASAN and lockdep make each one slow;
# kmemleak needs only a few to name a per-cycle leak)
DEBUG_CYCLES = "100"


@dataclass(frozen=True)
class Boot:
    kernel: str  # a selector for kernels.resolve(): "6.1", "6.12", "debug"
    share: str  # "i/n" for the once(slot) marks
    tests: tuple[str, ...] = ()  # test paths or ids; none: the whole VM suite
    env: dict[str, str] = field(default_factory=dict)


def lanes(debug: bool = False) -> tuple[tuple[Boot, ...], ...]:
    """The boots of a run, lane by lane: the Debian kernels, and with debug the debug
    kernel's subset after 6.1."""
    if not debug:
        return ((Boot("6.1", "0/2"),), (Boot("6.12", "1/2"),))
    return (
        (
            Boot("6.1", "0/2"),
            Boot("debug", "0/2", DEBUG_TESTS, {"MGCAP_CYCLES": DEBUG_CYCLES}),
        ),
        (Boot("6.12", "1/2"),),
    )


# with the debug kernel, the lane whose first boot waits for its build (the other
# core is the build's until then)
BUILD_LANE = 1


def switches(env: dict[str, str] | None = None) -> dict[str, str]:
    """The switches' values for a whole run from env: "0" where set so, else "1"."""
    env = dict(os.environ) if env is None else env
    return {name: "0" if env.get(name) == "0" else "1" for name in SWITCHES}


def describe(debug: bool = False) -> list[str]:
    """The lanes, one line each."""
    lines = []
    for i, lane in enumerate(lanes(debug)):
        first = "the debug kernel's build, then " if debug and i == BUILD_LANE else ""
        lines.append(f"lane {'AB'[i]}: {first}" + ", then ".join(b.kernel for b in lane))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=("lanes", "debug-tests"))
    ap.add_argument("--debug", action="store_true", help="with the debug kernel")
    args = ap.parse_args()
    if args.what == "lanes":
        print("\n".join(describe(args.debug)))
    else:
        print("\n".join(DEBUG_TESTS))


if __name__ == "__main__":
    main()
