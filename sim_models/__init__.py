"""Models of the world the twin simulates: network, servos, plant, faults."""

from sim_models.errors import ConfigError, TwinError

__all__ = ["ConfigError", "TwinError"]
