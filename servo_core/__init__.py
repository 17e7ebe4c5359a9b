"""The leaf of ServoTwin: what every other package may import and that imports none of them.

- `servo_core.errors`: the one exception hierarchy.
- `servo_core.plugins`: registries filled by built-ins and by entry points.
"""

__all__: list[str] = []
