"""What a run of capture cycles (netlink start/stop, module load/unload) keeps of
the kernel's memory, field by field, for test_cycles.py and test_lifecycle.py.

A loss per cycle shows where its memory comes from (each made to fail once by a
module that lost it on purpose, docs/testing.md): a ring's pages come from
alloc_pages and show in MemFree (after dropping caches); a lost vunmap in
mgcap_vmaps(); vmalloc'd pages in VmallocUsed; per-CPU allocations in Percpu;
kmalloc'd objects (the capture's struct, a ring's) in Slab and SUnreclaim."""

import time
from dataclasses import dataclass
from pathlib import Path

from tests.vm.conftest import sh

# the /proc/meminfo fields that must not move over the cycles, besides MemFree
KEPT = ("Slab", "SUnreclaim", "VmallocUsed", "Percpu")


def mem_free_kib() -> int:
    """Free memory once the page cache and reclaimable slabs are dropped (less noise)."""
    sh("sync")
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    # not a readiness wait: frees deferred past an RCU grace period (kfree_rcu's
    # batches, call_rcu) have no state a test can wait on; a second is many periods
    time.sleep(1)
    return meminfo_kib(("MemFree",))["MemFree"]


def meminfo_kib(fields: tuple[str, ...]) -> dict[str, int]:
    """These /proc/meminfo fields, in KiB."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            out[key] = int(value.split()[0])
    assert set(out) == set(fields), out
    return out


def mgcap_vmaps() -> int:
    """Live vmap areas of the double-mapped rings (not the vmalloc'd page arrays that
    kvcalloc may also make there)."""
    lines = Path("/proc/vmallocinfo").read_text().splitlines()
    return sum(1 for ln in lines if "mgcap_ring_create" in ln and "vmap" in ln.split())


@dataclass(frozen=True)
class Memory:
    """MemFree after dropping caches, and the KEPT fields read right after it (KiB)."""

    free: int
    kept: dict[str, int]


def memory() -> Memory:
    free = mem_free_kib()
    return Memory(free, meminfo_kib(KEPT))


@dataclass(frozen=True)
class Bounds:
    """KiB each field may move over the cycles whatever they keep (its noise), so that
    the smallest loss per cycle each catches is the bound / the cycles.

    Measured noise (6.12 and 6.1 under TCG, no loss): MemFree several MiB between two
    readings; VmallocUsed and Percpu 0 to a few pages; Slab and SUnreclaim up to about
    100 KiB (slab pages of other caches filling or freed), not growing with the cycles
    (+68 KiB after 300 netlink cycles, +108 after 10,000)."""

    mem_free: int
    slab: int = 192
    vmalloc: int = 256
    percpu: int = 256


def moved(before: Memory, after: Memory) -> dict[str, int]:
    """KiB held after the cycles, per field (MemFree's drop as "MemFree")."""
    out = {"MemFree": before.free - after.free}
    out.update((k, after.kept[k] - before.kept[k]) for k in KEPT)
    return out


def assert_nothing_held(before: Memory, after: Memory, cycles: int, bounds: Bounds) -> None:
    """Every field within its bound; the message says what each bound catches."""
    held = moved(before, after)
    catches = {
        "MemFree": bounds.mem_free,
        "Slab": bounds.slab,
        "SUnreclaim": bounds.slab,
        "VmallocUsed": bounds.vmalloc,
        "Percpu": bounds.percpu,
    }
    over = {
        k: f"{held[k]} KiB (bound {b} KiB: {b * 1024 // cycles} bytes per cycle)"
        for k, b in catches.items()
        # VmallocUsed and Percpu may also shrink by a page or two: the bound is both ways
        if (abs(held[k]) if k in ("VmallocUsed", "Percpu") else held[k]) >= b
    }
    assert not over, f"held after {cycles} cycles: {over}; all: {held}"
