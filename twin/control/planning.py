"""Planning: commands to smooth trajectories within the joint limits (SI units).

A target outside a joint's position limits is refused with an error naming the
joint; a move that would exceed a joint's velocity limit is slowed down
(stretched) until it does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from twin.control.commands import MoveCommand, SineCommand
from twin.control.joints import Joint
from twin.control.trajectory import Move, SineSweep

__all__ = ["PlanningError", "TrajectoryPlanner"]


class PlanningError(ValueError):
    pass


@dataclass
class TrajectoryPlanner:
    joints: Sequence[Joint] = ()
    profile: str = "min_jerk"
    stretched: int = 0  # moves slowed down to respect a velocity limit

    def plan(
        self, start: list[float], command: MoveCommand | SineCommand, target: list[float] | None = None
    ) -> Move | SineSweep:
        """A trajectory from `start` (rad, the setpoint in force) for the command.

        Joints the command does not name go on to `target` (where they were
        already headed; default: where they are).
        """
        names = [j.name for j in self.joints]
        held = start if target is None else target
        if isinstance(command, MoveCommand):
            return self._plan_move(start, held, names, command)
        return self._plan_sine(held, names, command)

    def _check_names(self, names: list[str], given: dict[str, float]) -> None:
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise PlanningError(f"unknown joint(s) {', '.join(unknown)}")

    def _plan_move(
        self, start: list[float], held: list[float], names: list[str], command: MoveCommand
    ) -> Move:
        self._check_names(names, command.target)
        target = [command.target.get(n, h) for n, h in zip(names, held, strict=True)]
        for joint, q in zip(self.joints, target, strict=True):
            lim = joint.limits
            if not lim.contains(q):
                raise PlanningError(
                    f"joint {joint.name} target {math.degrees(q):.1f}° is outside "
                    f"[{math.degrees(lim.lower):.1f}°, {math.degrees(lim.upper):.1f}°]"
                )
        move = Move(tuple(start), tuple(target), command.duration_s, self.profile)
        needed = max(
            (abs(b - a) * move.peak_shape_velocity / j.limits.max_velocity)
            for a, b, j in zip(start, target, self.joints, strict=True)
        )
        if needed > command.duration_s:
            self.stretched += 1
            move = Move(tuple(start), tuple(target), needed, self.profile)
        return move

    def _plan_sine(self, held: list[float], names: list[str], command: SineCommand) -> SineSweep:
        self._check_names(names, command.amplitude)
        amp, off, f0, f1 = [], [], [], []
        for joint, s in zip(self.joints, held, strict=True):
            a = command.amplitude.get(joint.name, 0.0)
            o = command.offset.get(joint.name, s)
            lim = joint.limits
            if a and not (lim.contains(o - a) and lim.contains(o + a)):
                raise PlanningError(f"joint {joint.name} sine leaves its limits")
            fmax = max(command.f0.get(joint.name, 0.0), command.f1.get(joint.name, 0.0))
            if a * 2 * math.pi * fmax > lim.max_velocity:
                raise PlanningError(
                    f"joint {joint.name} sine peaks at {math.degrees(a * 2 * math.pi * fmax):.0f}°/s, "
                    f"above its {math.degrees(lim.max_velocity):.0f}°/s limit"
                )
            amp.append(a)
            off.append(o)
            f0.append(command.f0.get(joint.name, 1.0))
            f1.append(command.f1.get(joint.name, command.f0.get(joint.name, 1.0)))
        return SineSweep(tuple(held), tuple(amp), tuple(off), tuple(f0), tuple(f1), command.duration_s)
