"""The device side of the servo protocols, backed by the twin's physics."""

from hw_adapters.emulator.server import EmulatorServer

__all__ = ["EmulatorServer"]
