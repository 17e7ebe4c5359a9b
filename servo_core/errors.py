"""The one exception hierarchy of ServoTwin.

It lives in the leaf package `servo_core`, so that `sim_models`, `hw_adapters` and `twin`
can all raise it without imports pointing upwards; `twin` and `hw_adapters`
re-export it.
"""


class TwinError(Exception):
    """Root of every error ServoTwin raises on purpose."""


class ConfigError(TwinError):
    """Bad input: a scenario, a URL, a catalogue entry or a robot description."""


class BusError(TwinError):
    """A servo bus failed: no reply, a corrupt reply, a closed port."""
