"""The leaf of ServoTwin: what every other package may import and that imports none of them.

- `servo_core.errors`: the one exception hierarchy.
- `servo_core.plugins`: registries filled by built-ins and by entry points.
- `servo_core.catalogue`: servo models by name (`servo_spec`, `catalogue`, `model_name`).
- `servo_core.control_table`: the vendors' register maps.
- `servo_core.protocol`: one object per servo protocol (`DYNAMIXEL`, `FEETECH`).
- `servo_core.units`: ticks and rad, sign-magnitude integers.
- `servo_core.state`: `ServoState` and `ServoFault`, what a bus reports.
"""

__all__: list[str] = []
