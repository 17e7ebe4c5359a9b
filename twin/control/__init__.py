"""Control logic that would run in production: trajectories, limits, calibration."""

__all__: list[str] = []
