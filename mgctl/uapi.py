"""Numbers and layouts of kernel/uapi/mgcap.h, mirrored for Python.

kernel/uapi/mgcap.h is the single source; tests/host/test_uapi.py compiles a
program against it and fails if anything here drifts from it.
"""

from typing import Any, Final

EPB_TYPE: Final = 6
EPB_HDR_LEN: Final = 28
EPB_TRAILER_LEN: Final = 4
SNAPLEN_DEFAULT: Final = 96
SNAPLEN_MIN: Final = 1
SNAPLEN_MAX: Final = 262144  # tcpdump's MAXIMUM_SNAPLEN: snaplen 0, the whole frame
RING_SIZE_DEFAULT: Final = 4 << 20
RING_SIZE_MIN: Final = 64 << 10
RING_SIZE_MAX: Final = 1 << 30
MODE_DROP: Final = 1
MODE_MIRROR: Final = 2
RING_UNBOUND: Final = 0xFFFFFFFF


def record_len(caplen: int) -> int:
    """Bytes taken by a record carrying caplen bytes of frame (MGCAP_RECORD_LEN)."""
    return EPB_HDR_LEN + ((caplen + 3) & ~3) + EPB_TRAILER_LEN


RECORD_MAX: Final = record_len(SNAPLEN_MAX)

STAT_FIELDS: Final = (
    "seen_packets",
    "seen_bytes",
    "captured_packets",
    "captured_bytes",
    "ring_full_drops",
    "consumed_packets",
    "copy_errors",
    "hw_stamped_packets",
    "filtered_packets",
)

# the sizes of struct mgcap_info and struct mgcap_stats, for the ioctl numbers
# (tests/host/test_uapi.py checks them against the header and the structs below)
INFO_SIZE: Final = 8 * 4 + 16
STATS_SIZE: Final = 8 * len(STAT_FIELDS)

_STRUCTS = ("ConsumerPage", "ProducerPage", "Info", "Stats")


def _structs() -> dict[str, Any]:
    from construct import Int32un, Int64un, PaddedString, Struct

    ConsumerPage = Struct("consumer_pos" / Int64un)

    ProducerPage = Struct(
        "producer_pos" / Int64un,
        "ring_size" / Int32un,
        "data_offset" / Int32un,
        "cpu" / Int32un,
        "reserved" / Int32un,
        "seen_packets" / Int64un,
        "seen_bytes" / Int64un,
        "captured_packets" / Int64un,
        "captured_bytes" / Int64un,
        "ring_full_drops" / Int64un,
        "consumed_packets" / Int64un,
        "copy_errors" / Int64un,
        "hw_stamped_packets" / Int64un,
        "filtered_packets" / Int64un,
    )

    Info = Struct(
        "ifindex" / Int32un,
        "mode" / Int32un,
        "snaplen" / Int32un,
        "ring_size" / Int32un,
        "nr_rings" / Int32un,
        "bound_ring" / Int32un,
        "interface_id" / Int32un,
        "link_type" / Int32un,
        "ifname" / PaddedString(16, "ascii"),
    )

    Stats = Struct(
        "seen_packets" / Int64un,
        "seen_bytes" / Int64un,
        "captured_packets" / Int64un,
        "captured_bytes" / Int64un,
        "ring_full_drops" / Int64un,
        "consumed_packets" / Int64un,
        "copy_errors" / Int64un,
        "hw_stamped_packets" / Int64un,
        "filtered_packets" / Int64un,
    )
    return {
        "ConsumerPage": ConsumerPage,
        "ProducerPage": ProducerPage,
        "Info": Info,
        "Stats": Stats,
    }


def __getattr__(name: str) -> Any:
    """The construct layouts (ConsumerPage, ProducerPage, Info, Stats), built on first
    use: construct takes 11 modules to import, and the numbers above are all that
    mgctl's commands need (the readers of the device file use the layouts)."""
    if name not in _STRUCTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    built = _structs()
    globals().update(built)
    return built[name]


_IOC_WRITE: Final = 1
_IOC_READ: Final = 2
IOC_MAGIC: Final = 0xE6


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (IOC_MAGIC << 8) | nr


IOC_BIND_RING: Final = _ioc(_IOC_WRITE, 1, 4)
IOC_GET_INFO: Final = _ioc(_IOC_READ, 2, INFO_SIZE)
IOC_GET_STATS: Final = _ioc(_IOC_READ, 3, STATS_SIZE)
# the number before hw_stamped_packets was appended (still served, 7 counters)
IOC_GET_STATS_V1: Final = _ioc(_IOC_READ, 3, 7 * 8)
# the number before filtered_packets was appended (still served, 8 counters)
IOC_GET_STATS_V2: Final = _ioc(_IOC_READ, 3, 8 * 8)
IOC_SET_IFID: Final = _ioc(_IOC_WRITE, 4, 4)
