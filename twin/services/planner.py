"""The planner: turns commands into trajectories and hands them to the driver.

It asks the driver, which owns the machine's state, for the setpoint in force,
plans from there (twin.control.planning), then sends the trajectory.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

import simpy
from pydantic import Field

from twin.control.commands import MoveCommand, Setpoints, SineCommand
from twin.control.planning import PlanningError, TrajectoryPlanner
from twin.services.api import Counter, Message, Service, ServiceError, ServiceParams, handles

__all__ = ["Planner", "PlannerParams"]


class PlannerParams(ServiceParams):
    profile: Literal["min_jerk", "trapezoid"] = "min_jerk"
    request_timeout_ms: float = Field(default=250.0, gt=0)
    driver: str = Field(default="driver", description="the service that owns the servos")


class Planner(Service[PlannerParams]):
    Params = PlannerParams
    description = "plans trajectories within the joint limits and sends them to the driver"
    stretched = Counter("moves slowed down to respect a velocity limit")
    refused = Counter("commands refused: a target outside the limits, an unknown joint")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.planner = TrajectoryPlanner(ctx.machine.joints, self.params.profile)

    @handles("plan", MoveCommand | SineCommand)
    def plan(self, request: Message) -> Generator[simpy.Event, Any, float]:
        ctx, timeout = self.ctx, self.params.request_timeout_ms / 1000.0
        state: Setpoints = yield from ctx.call(
            self.params.driver, "setpoint", None, on_behalf_of=request, timeout_s=timeout
        )
        before = self.planner.stretched
        try:
            trajectory = self.planner.plan(list(state.current), request.body, list(state.target))
        except PlanningError as exc:
            self.refused.inc()
            raise ServiceError(str(exc)) from None
        self.stretched.inc(self.planner.stretched - before)
        yield from ctx.call(
            self.params.driver, "trajectory", trajectory, on_behalf_of=request, timeout_s=timeout
        )
        return trajectory.duration_s
