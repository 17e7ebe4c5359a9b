"""Control logic that would run in production: trajectories, limits, calibration."""
