"""Resilience patterns that take their clock from the runtime."""
