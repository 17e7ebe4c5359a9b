"""What `twin run --bus URL` accepts: a bus of real servos or of an emulator, never the twin's own."""

from __future__ import annotations

from hw_adapters.schemes import bus_schemes
from servo_core.errors import ConfigError

__all__ = ["TWIN_SCHEME", "check_run_bus", "run_bus_schemes"]

TWIN_SCHEME = "sim"
"""The twin's own bus: what a run uses when it is given no --bus."""

_EXAMPLE = "dynamixel:///dev/ttyUSB0?baud=1000000"


def run_bus_schemes() -> list[str]:
    """The registered schemes that `--bus` takes: every one but the twin's."""
    return [scheme for scheme in bus_schemes() if scheme != TWIN_SCHEME]


def check_run_bus(url: str) -> None:
    """ConfigError unless `url` names a bus that `twin run --bus` can run against.

    `--bus` swaps the twin's simulated servos for real ones (or an emulator's, reached
    through its serial link) on the wall clock; a `sim://` URL would ask for the twin
    from inside a run that has left it, so it is refused with what to do instead. A
    URL without a scheme, or with one nobody registered, is refused listing the schemes
    `--bus` takes. Options and ports are the opener's to check.
    """
    schemes = run_bus_schemes()
    takes = ", ".join(f"{scheme}://" for scheme in schemes)
    scheme, sep, _ = url.partition("://")
    scheme = scheme.strip().lower()  # URL schemes are case-insensitive (RFC 3986)
    if not sep or not scheme:
        raise ConfigError(
            f"--bus {url!r} is not a bus URL: expected SCHEME://..., e.g. {_EXAMPLE}; --bus takes {takes}"
        )
    if scheme == TWIN_SCHEME:
        raise ConfigError(
            f"--bus {url}: --bus runs the scenario against real servos or an emulator on the wall clock "
            f"({takes}; an emulator from `twin emulate --link /tmp/x` as dynamixel:///tmp/x); "
            "the twin's own bus needs no --bus: leave --bus out to run on the twin"
        )
    if scheme not in bus_schemes():
        raise ConfigError(f"--bus {url}: unknown bus scheme {scheme!r}; --bus takes {takes}")
