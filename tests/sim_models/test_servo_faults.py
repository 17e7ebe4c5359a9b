"""VirtualServo's fault seams: an external load and encoder noise, each with an undo."""

from __future__ import annotations

import pytest

from servo_core.catalogue import servo_spec
from servo_core.errors import ConfigError
from sim_models.servo.device import VirtualServo


def _present(servo: VirtualServo) -> int:
    return servo.read_register("present_position")


@pytest.mark.parametrize("model", ["xl430-w250", "sts3215"])
def test_external_torque_adds_up_and_undoes(model: str) -> None:
    servo = VirtualServo(servo_spec(model), 1)
    calm = servo.step(0.0, 0.0, 0.001)
    undo_a = servo.add_external_torque(0.5)
    undo_b = servo.add_external_torque(0.25)
    assert servo.external_torque_nm == pytest.approx(0.75)
    assert servo.step(0.0, 0.0, 0.001) == pytest.approx(calm - 0.75)
    undo_a()
    assert servo.external_torque_nm == pytest.approx(0.25)
    undo_b()
    assert servo.step(0.0, 0.0, 0.001) == pytest.approx(calm)
    with pytest.raises(AttributeError):
        servo.external_torque_nm = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match="finite"):
        servo.add_external_torque(float("nan"))


@pytest.mark.parametrize("model", ["xl430-w250", "sts3215"])
def test_encoder_noise_shows_in_readings_until_undone(model: str) -> None:
    spec = servo_spec(model)
    servo = VirtualServo(spec, 1)
    centre = spec.resolution_ticks // 2
    assert _present(servo) == centre
    undo_outer = servo.set_encoder_noise(lambda: 10 * spec.rad_per_tick)
    assert _present(servo) == centre + 10
    undo_inner = servo.set_encoder_noise(lambda: -3 * spec.rad_per_tick)
    assert _present(servo) == centre - 3
    undo_inner()
    assert _present(servo) == centre + 10
    undo_outer()
    assert _present(servo) == centre
    assert servo.position == 0.0  # noise is in the reading, not in the shaft


def test_force_overheat_still_latches() -> None:
    servo = VirtualServo(servo_spec("xl430-w250"), 1)
    servo.write_register("torque_enable", 1)
    servo.force_overheat()
    assert not servo.torque_enabled
    assert servo.read_register("hardware_error_status") & 4
