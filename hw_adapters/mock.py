"""`mock://` — ideal in-memory servos for tests: every goal is reached at once.

`mock://?ids=1-6&model=sts3215`. A `handler` may be given in code to script
faults: it is called with (operation, ids) before each transaction and may
raise a BusError to simulate a failed transaction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from hw_adapters.base import (
    BusError,
    ConfigError,
    OptionType,
    PingInfo,
    ServoBus,
    ServoFault,
    ServoState,
    parse_bus_url,
    parse_ids,
)
from servo_core.catalogue import servo_spec

__all__ = ["Handler", "MOCK_OPTIONS", "MockBus", "open_mock_bus"]

MOCK_OPTIONS: dict[str, OptionType] = {"ids": str, "model": str}
Handler = Callable[[str, list[int]], None]


class MockBus(ServoBus):
    def __init__(self, ids: Iterable[int], model: str = "xl430-w250", handler: Handler | None = None) -> None:
        self.spec = servo_spec(model)
        self._goal = {i: 0.0 for i in ids}
        self._torque = {i: False for i in self._goal}
        self._position = dict(self._goal)
        self._handler = handler
        self._closed = False

    def _begin(self, op: str, ids: list[int]) -> None:
        if self._closed:
            raise BusError("the bus is closed")
        if self._handler is not None:
            self._handler(op, ids)
        missing = [i for i in ids if i not in self._goal]
        if missing:
            raise BusError(f"servo {missing[0]} did not answer (no status packet)")

    def ping(self, servo_id: int) -> PingInfo | None:
        if self._closed:
            raise BusError("the bus is closed")
        if servo_id not in self._goal:
            return None
        self._begin("ping", [servo_id])
        return PingInfo(servo_id, self.spec.model_number, self.spec.name, 1)

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        ids = list(ids)
        self._begin("read", ids)
        return {
            i: ServoState(
                id=i,
                position=self._position[i],
                velocity=0.0,
                load=0.0,
                current=0.0,
                temperature=25.0,
                voltage=self.spec.nominal_voltage_v,
                faults=ServoFault.NONE,
                moving=False,
            )
            for i in ids
        }

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self._begin("write", list(goals))
        for i, angle in goals.items():
            if not math.isfinite(angle):
                raise ConfigError(f"servo {i}: a goal must be a finite angle in rad, got {angle!r}")
            if not -math.pi <= angle < math.pi:
                raise ConfigError(f"servo {i}: goal {angle:.4g} rad is outside the servo's range [-pi, pi)")
        for i, angle in goals.items():
            self._goal[i] = angle
            if self._torque[i]:
                self._position[i] = angle

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        ids = list(ids)
        self._begin("torque", ids)
        for i in ids:
            self._torque[i] = enabled
            if enabled:
                self._goal[i] = self._position[i]

    def torque_enabled(self, servo_id: int) -> bool:
        return self._torque[servo_id]

    def wait(self, seconds: float) -> None:
        """Ideal servos are already there: nothing to wait for."""

    def close(self) -> None:
        if not self._closed:
            for i in self._torque:
                self._torque[i] = False
            self._closed = True


def open_mock_bus(url: str, handler: Handler | None = None) -> MockBus:
    _, _, opts = parse_bus_url(url, MOCK_OPTIONS)
    ids = parse_ids(str(opts.get("ids", "1")))
    return MockBus(ids, str(opts.get("model", "xl430-w250")), handler)
