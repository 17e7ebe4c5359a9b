"""Resilience patterns that take their clock from the runtime."""

__all__: list[str] = []
