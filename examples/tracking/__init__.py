"""A user's own system: a camera that detects a moving target, a tracker that points a pan-tilt head at it."""
