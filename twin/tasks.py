"""Turn a scenario's task into the operator's timed commands (SI units)."""

from __future__ import annotations

import math

from twin.control.commands import Command, MoveCommand, SineCommand
from twin.scenario.models import PickAndPlaceTask, Pose, SineSweepTask, Task, WaypointsTask

__all__ = ["schedule"]


def _rad(pose: Pose) -> dict[str, float]:
    return {joint: math.radians(deg) for joint, deg in pose.items()}


def schedule(task: Task) -> list[tuple[float, Command]]:
    """(time to send, command) pairs, in time order."""
    if isinstance(task, WaypointsTask):
        out: list[tuple[float, Command]] = []
        for step in task.steps:
            pose = task.poses[step.pose] if isinstance(step.pose, str) else step.pose
            out.append((step.at_s, MoveCommand(_rad(pose), step.duration_s)))
        return sorted(out, key=lambda x: x[0])
    if isinstance(task, SineSweepTask):
        j = task.joints
        return [
            (
                task.start_s,
                SineCommand(
                    amplitude={n: math.radians(c.amplitude_deg) for n, c in j.items()},
                    offset={n: math.radians(c.offset_deg) for n, c in j.items()},
                    f0={n: c.frequency_hz for n, c in j.items()},
                    f1={n: c.end_frequency_hz or c.frequency_hz for n, c in j.items()},
                    duration_s=task.duration_s,
                ),
            )
        ]
    return _pick_and_place(task)


def _pick_and_place(task: PickAndPlaceTask) -> list[tuple[float, Command]]:
    grip = task.gripper_joint
    opened = {grip: task.gripper_open_deg}
    closed = {grip: task.gripper_closed_deg}
    cycle = [
        (task.above_pick, task.move_s),
        (opened, task.grip_s),
        (task.pick, task.move_s),
        (closed, task.grip_s),
        (task.above_pick, task.move_s),
        (task.above_place, task.move_s),
        (task.place, task.move_s),
        (opened, task.grip_s),
        (task.above_place, task.move_s),
        (closed, task.grip_s),
    ]
    out: list[tuple[float, Command]] = [(task.start_s, MoveCommand(_rad(task.home), task.move_s))]
    t = task.start_s + task.move_s
    for _ in range(task.cycles):
        for pose, duration in cycle:
            out.append((t, MoveCommand(_rad(pose), duration)))
            t += duration
    out.append((t, MoveCommand(_rad(task.home), task.move_s)))
    return out
