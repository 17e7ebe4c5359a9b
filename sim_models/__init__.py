"""Models of the world the twin simulates: network, servos, plant, faults."""

from servo_core.errors import ConfigError, TwinError

__all__ = ["ConfigError", "TwinError"]
