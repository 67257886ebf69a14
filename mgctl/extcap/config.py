"""The options Wireshark offers for an mgcap interface (--extcap-config) and what
they become for the capture.

Wireshark passes an option's default on every capture, so the defaults here are
"leave it to mgcap-extcap": a capture mgcap-extcap starts is a mirror capture of
whole frames with the module's ring size and software timestamps; a capture found
running is used as it is. A value chosen on purpose that differs from a running
capture is refused, as mgdump refuses it.
"""

from dataclasses import dataclass

from mgctl import uapi
from mgctl.extcap.sentences import sentence

MODE_AUTO = "auto"
HWTS_OFF = "off"

# the receive filters offered; --hwts takes any hwtstamp-rx name of the spec
HWTS_CHOICES = (
    (HWTS_OFF, "off: software timestamps (kernel clock)"),
    ("all", "all: the NIC stamps every received frame"),
    ("ptp", "ptp: the NIC stamps PTP v2 event frames"),
)
MODE_CHOICES = (
    (MODE_AUTO, "mirror, or as the running capture has it"),
    ("mirror", "mirror: frames go on to the stack"),
    ("drop", "drop: frames are consumed after the copy"),
)


def config_lines() -> list[str]:
    """The arg and value sentences of --extcap-config."""
    lines = [
        sentence(
            "arg",
            [
                ("number", 0),
                ("call", "--mode"),
                ("display", "Mode"),
                ("tooltip", "mirror passes every frame on, drop consumes it after the copy"),
                ("type", "selector"),
            ],
        ),
        sentence(
            "arg",
            [
                ("number", 1),
                ("call", "--snaplen"),
                ("display", "Snapshot length"),
                (
                    "tooltip",
                    f"Bytes kept of each frame, 0 for the whole frame ({uapi.SNAPLEN_MAX}); "
                    "empty: the whole frame, or as the running capture has it",
                ),
                ("type", "unsigned"),
                ("range", f"0,{uapi.SNAPLEN_MAX}"),
            ],
        ),
        sentence(
            "arg",
            [
                ("number", 2),
                ("call", "--ring-size"),
                ("display", "Ring size (bytes per CPU)"),
                (
                    "tooltip",
                    f"A power of two from {uapi.RING_SIZE_MIN} to {uapi.RING_SIZE_MAX}; "
                    "empty: the module's default, or as the running capture has it",
                ),
                ("type", "unsigned"),
                ("range", f"{uapi.RING_SIZE_MIN},{uapi.RING_SIZE_MAX}"),
            ],
        ),
        sentence(
            "arg",
            [
                ("number", 3),
                ("call", "--hwts"),
                ("display", "Hardware timestamps"),
                ("tooltip", "The NIC's receive timestamp filter for the capture (put back after)"),
                ("type", "selector"),
            ],
        ),
    ]
    for arg, choices in ((0, MODE_CHOICES), (3, HWTS_CHOICES)):
        for i, (value, display) in enumerate(choices):
            lines.append(
                sentence(
                    "value",
                    [("arg", arg), ("value", value), ("display", display), ("default", i == 0)],
                )
            )
    return lines


@dataclass(frozen=True)
class Settings:
    """The options as given (None: not given, or the "leave it" default)."""

    mode: str | None
    snaplen: int | None  # 0 is the whole frame
    ring_size: int | None
    hwts: str | None

    def snaplen_for(self, running: bool) -> int | None:
        """The snaplen to ask for: 0 is the whole frame; not given, the whole frame for
        a capture mgcap-extcap starts and whatever a running capture has (None)."""
        if self.snaplen is not None:
            return self.snaplen or uapi.SNAPLEN_MAX
        return None if running else uapi.SNAPLEN_MAX

    def check(self) -> None:
        """ValueError with one line for what cannot be asked for."""
        if self.mode not in (None, "mirror", "drop"):
            raise ValueError(f'--mode "{self.mode}" is not {MODE_AUTO}, mirror or drop')
        if self.snaplen is not None and not 0 <= self.snaplen <= uapi.SNAPLEN_MAX:
            raise ValueError(f"--snaplen must be 0 (whole frame) to {uapi.SNAPLEN_MAX}")
        if self.ring_size is not None and not (
            uapi.RING_SIZE_MIN <= self.ring_size <= uapi.RING_SIZE_MAX
            and self.ring_size & (self.ring_size - 1) == 0
        ):
            raise ValueError(
                f"--ring-size must be a power of two from {uapi.RING_SIZE_MIN} "
                f"to {uapi.RING_SIZE_MAX}"
            )


def settings(
    mode: str | None, snaplen: int | None, ring_size: int | None, hwts: str | None
) -> Settings:
    return Settings(
        mode=None if mode in (None, MODE_AUTO) else mode,
        snaplen=snaplen,
        ring_size=ring_size,
        hwts=None if hwts in (None, HWTS_OFF) else hwts,
    )
