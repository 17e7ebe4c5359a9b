"""Transitional re-export: the error hierarchy lives in servo_core.errors."""

from servo_core.errors import BusError, ConfigError, TwinError

__all__ = ["BusError", "ConfigError", "TwinError"]
