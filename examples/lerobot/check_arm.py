"""Drive `twin emulate` with LeRobot's own robot classes (checked with LeRobot 0.4.4): connect,
the non-interactive calibration steps, configure(), then observations and actions.

Run it in an environment that has LeRobot (`pip install "lerobot[feetech,dynamixel]"`; it needs
torch, so it is not one of ServoTwin's dependencies), against an emulator started with
    twin emulate scenarios/so100_follower.yaml --protocol feetech --link /tmp/so100
or  twin emulate scenarios/koch_follower.yaml --protocol dynamixel --link /tmp/koch
then: python examples/lerobot/check_arm.py so100 /tmp/so100   (or: koch /tmp/koch)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def robot_for(arm: str, link: str) -> Any:
    if arm == "so100":
        from lerobot.robots.so_follower.config_so_follower import (  # type: ignore[import-not-found]
            SOFollowerRobotConfig,
        )
        from lerobot.robots.so_follower.so_follower import SOFollower  # type: ignore[import-not-found]

        return SOFollower(
            SOFollowerRobotConfig(port=link, id="twin_so100", calibration_dir=Path(tempfile.mkdtemp()))
        )
    from lerobot.robots.koch_follower.config_koch_follower import (  # type: ignore[import-not-found]
        KochFollowerConfig,
    )
    from lerobot.robots.koch_follower.koch_follower import KochFollower  # type: ignore[import-not-found]

    return KochFollower(
        KochFollowerConfig(port=link, id="twin_koch", calibration_dir=Path(tempfile.mkdtemp()))
    )


def main(arm: str, link: str) -> None:
    from lerobot.motors import MotorCalibration  # type: ignore[import-not-found]

    robot = robot_for(arm, link)
    bus = robot.bus
    bus.connect()  # the handshake: ping, model numbers
    print("connected; models", {m: bus.motors[m].model for m in bus.motors})
    bus.disable_torque()
    for m in bus.motors:  # what calibrate() writes first
        bus.write("Operating_Mode", m, 0 if arm == "so100" else 4)
    homings = bus.set_half_turn_homings()  # the calibration step that needs no person
    present = bus.sync_read("Present_Position", normalize=False)
    print("homing offsets", homings)
    print("present after homing (expect 2047)", present)
    assert all(abs(v - 2047) <= 2 for v in present.values()), present
    calibration = {
        m: MotorCalibration(
            id=bus.motors[m].id, drive_mode=0, homing_offset=homings[m], range_min=1047, range_max=3047
        )
        for m in bus.motors
    }
    bus.write_calibration(calibration)
    robot.calibration = calibration
    robot.configure()  # the robot's own configure()
    obs = robot.get_observation()
    print("observation", {k: round(v, 2) for k, v in obs.items()})
    target = {k: (v + 10.0 if not k.startswith("gripper") else 30.0) for k, v in obs.items()}
    robot.send_action(target)
    time.sleep(2.0)
    after = robot.get_observation()
    print("after the action", {k: round(v, 2) for k, v in after.items()})
    print("error", {k: round(after[k] - target[k], 2) for k in target})
    robot.disconnect()  # torque off
    print("OK")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
