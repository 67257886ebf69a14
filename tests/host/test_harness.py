"""The VM harness's own logic: the kernel log scan and the kernel selection."""

from tests.harness import vmrun


def test_scan_finds_reports_after_the_begin_mark_only() -> None:
    log = "\n".join(
        [
            "[    1.0] WARNING: boot noise before the mark is the boot's business",
            f"[    2.0] {vmrun.BEGIN_MARK}",
            "[    3.0] lo: mgcap: capturing",
            "[    4.0] WARNING: CPU: 1 PID: 5 at net/core/dev.c:1 foo+0x1/0x2",
            "[    5.0] BUG: KFENCE: use-after-free read in mgcap_read+0x10/0x20",
            "[    6.0] " + "=" * 70,
            "[    7.0] BUG kmalloc-128 (Tainted: G): Poison overwritten",
        ]
    )
    bad = vmrun.scan_kernel_log(log)
    assert len(bad) == 3
    assert "net/core/dev.c" in bad[0]


def test_scan_quiet_log() -> None:
    log = f"[ 1.0] {vmrun.BEGIN_MARK}\n[ 2.0] mgd0: mgcap: capture stopped\n"
    assert vmrun.scan_kernel_log(log) == []
