"""The PyBullet world: one robot, its servos, stepped lazily to the clock.

The plant owns a private PyBullet client in DIRECT mode (no global
connection). Joint motors are disabled; every physics step each servo turns
its shaft state into a torque that is applied with TORQUE_CONTROL.

Time is not the plant's own: callers bring it up to the environment's time
with `advance_to(t)` before they read, write or break anything. Steps are
counted in integers so that the plant's time never drifts from k·dt.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from servo_core.errors import ConfigError
from sim_models.servo.device import VirtualServo

__all__ = ["check_loadable", "Mount", "Plant", "urdf_file"]


def urdf_file(robot: str) -> str | None:
    """The URDF file a robot name points at (its meshes live beside it); None for a built-in."""
    if "/" in robot or os.sep in robot or robot.endswith(".urdf"):
        return os.path.abspath(robot)
    return None


_loadable: set[tuple[str, str | None, float]] = set()  # descriptions that loaded in this process


def check_loadable(urdf_text: str, path: str | None = None) -> None:
    """Load the URDF into a throwaway PyBullet client; ConfigError with PyBullet's reason if it
    fails. A description that loaded once (same text, same file and modification time) is not
    loaded again: a sweep worker checks the same robot for every run."""
    from sim_models.bullet import connect_direct, pybullet, release

    digest = hashlib.sha256(urdf_text.encode("utf-8")).hexdigest()  # a robot file may be megabytes
    key = (digest, path, os.path.getmtime(path) if path is not None and os.path.exists(path) else 0.0)
    if key in _loadable:
        return
    if len(_loadable) >= 64:  # a bound, for a long-lived process that loads many robots
        _loadable.clear()
    pb = pybullet()
    client = connect_direct()
    try:
        _load_urdf(pb, client, urdf_text, path)
    finally:
        release(client)
    _loadable.add(key)


def _load_urdf(pb: Any, client: int, urdf_text: str, path: str | None) -> int:
    """Load from `path` when the robot is a file (relative mesh paths resolve beside it),
    else from the text through a temporary file."""
    from sim_models.bullet import quiet_output

    tmp = None
    if path is None:
        fd, tmp = tempfile.mkstemp(suffix=".urdf", prefix="servotwin-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(urdf_text)
    try:
        with quiet_output():  # PyBullet prints its own b3Error lines before raising
            return pb.loadURDF(
                path or tmp, useFixedBase=True, flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client
            )
    except pb.error as exc:
        raise ConfigError(f"PyBullet could not load the robot description: {exc}") from None
    finally:
        if tmp is not None:
            os.unlink(tmp)


@dataclass
class Mount:
    """How a servo is fixed to a joint: servo angle = direction·q + offset (rad)."""

    joint: str
    servo: VirtualServo
    direction: float = 1.0
    offset_rad: float = 0.0


class Plant:
    """A robot in PyBullet driven by virtual servos."""

    def __init__(
        self,
        urdf_text: str,
        mounts: Sequence[Mount],
        *,
        dt: float = 0.001,
        gravity: float = -9.81,
        initial_positions: dict[str, float] | None = None,
        solver_iterations: int = 50,
        urdf_path: str | None = None,
        mass_scale: dict[str, float] | None = None,
    ) -> None:
        """`mass_scale`: a factor on the mass and inertia of links by name (a robot that differs
        from its drawing, as in a Monte Carlo run); applied before the servos' rotor inertia."""
        from sim_models.bullet import connect_direct, pybullet, release

        pb = pybullet()

        if not (dt > 0 and math.isfinite(dt)):
            raise ConfigError(f"physics dt must be a positive number of seconds, got {dt!r}")
        self._pb = pb
        self.dt = dt
        self.steps = 0
        self.client = connect_direct()
        try:
            self.body = _load_urdf(pb, self.client, urdf_text, urdf_path)
            pb.setGravity(0, 0, gravity, physicsClientId=self.client)
            pb.setTimeStep(dt, physicsClientId=self.client)
            pb.setPhysicsEngineParameter(numSolverIterations=solver_iterations, physicsClientId=self.client)
            self.joint_index = self._joint_indices()
            self._disable_motors()
            self._scale_masses(mass_scale or {})
            self.mounts = list(mounts)
            for mount in self.mounts:
                if mount.joint not in self.joint_index:
                    raise ConfigError(
                        f"servo {mount.servo.servo_id} is mounted on joint {mount.joint!r}, "
                        f"which the robot lacks; joints: {', '.join(self.joint_index)}"
                    )
                self._add_reflected_inertia(mount)
            for name, q in (initial_positions or {}).items():
                if name not in self.joint_index:
                    raise ConfigError(f"initial position for unknown joint {name!r}")
                pb.resetJointState(self.body, self.joint_index[name], q, 0.0, physicsClientId=self.client)
        except BaseException:
            release(self.client)
            raise
        self._indices = [self.joint_index[m.joint] for m in self.mounts]
        self._servos = [m.servo for m in self.mounts]
        self._signs = [m.direction for m in self.mounts]
        self._offsets = [m.offset_rad for m in self.mounts]
        self._pairs = list(zip(self._servos, self._signs, self._offsets, strict=True))
        # For _run_steps, fixed once the plant is built: each servo's bound step method (taken
        # once, not per servo and step), and whether every servo is mounted with direction 1
        # (the usual case): then 1·x is x exactly and the multiplications by the sign are left
        # out (the offset is still added, as before).
        self._terms = [(servo.step, sign, off) for servo, sign, off in self._pairs]
        self._direct = all(sign == 1 for sign in self._signs)
        self._direct_terms = [(servo_step, off) for servo_step, _, off in self._terms]
        self._dry = any(s.implicit_friction for s in self._servos)  # fixed when a servo is built
        self._sync_servo_state()

    # -- construction -------------------------------------------------------
    def _joint_indices(self) -> dict[str, int]:
        pb = self._pb
        out = {}
        for i in range(pb.getNumJoints(self.body, physicsClientId=self.client)):
            info = pb.getJointInfo(self.body, i, physicsClientId=self.client)
            if info[2] in (pb.JOINT_REVOLUTE, pb.JOINT_PRISMATIC):
                out[info[1].decode()] = i
        return out

    def _disable_motors(self) -> None:
        pb = self._pb
        idx = list(self.joint_index.values())
        pb.setJointMotorControlArray(
            self.body,
            idx,
            pb.VELOCITY_CONTROL,
            forces=[0.0] * len(idx),
            physicsClientId=self.client,
        )
        for link in range(-1, pb.getNumJoints(self.body, physicsClientId=self.client)):
            pb.changeDynamics(
                self.body,
                link,
                linearDamping=0.0,
                angularDamping=0.0,
                jointDamping=0.0,
                physicsClientId=self.client,
            )

    def link_names(self) -> list[str]:
        """The robot's links: the base, then one per joint, in PyBullet's order."""
        pb = self._pb
        base = pb.getBodyInfo(self.body, physicsClientId=self.client)[0].decode()
        n = pb.getNumJoints(self.body, physicsClientId=self.client)
        return [base] + [
            pb.getJointInfo(self.body, j, physicsClientId=self.client)[12].decode() for j in range(n)
        ]

    def _scale_masses(self, scale: dict[str, float]) -> None:
        pb = self._pb
        for index, name in enumerate(self.link_names(), start=-1):  # the base is link -1
            factor = scale.get(name)
            if factor is None:
                continue
            info = pb.getDynamicsInfo(self.body, index, physicsClientId=self.client)
            pb.changeDynamics(
                self.body,
                index,
                mass=info[0] * factor,
                localInertiaDiagonal=[v * factor for v in info[2]],
                physicsClientId=self.client,
            )

    def _add_reflected_inertia(self, mount: Mount) -> None:
        # PyBullet has no joint armature: add the servo's reflected rotor inertia to
        # the driven link. It also adds to the other two axes, a small error for the
        # light links of servo rigs, and it keeps the stiff motor line stable at 1 ms.
        pb = self._pb
        link = self.joint_index[mount.joint]
        info = pb.getDynamicsInfo(self.body, link, physicsClientId=self.client)
        extra = mount.servo.spec.reflected_inertia_kg_m2
        diag = [v + extra for v in info[2]]
        pb.changeDynamics(self.body, link, localInertiaDiagonal=diag, physicsClientId=self.client)

    # -- time ---------------------------------------------------------------
    @property
    def time(self) -> float:
        return self.steps * self.dt

    def advance_to(self, t: float) -> None:
        """Step the physics until the plant's time has caught up with t (s)."""
        target = int(math.floor(t / self.dt + 1e-9))
        n = target - self.steps
        if n > 0:
            self._run_steps(n)

    def _run_steps(self, n: int) -> None:
        pb = self._pb
        body, client, dt = self.body, self.client, self.dt
        indices = self._indices
        terms, direct, direct_terms = self._terms, self._direct, self._direct_terms
        get_states = pb.getJointStates
        set_array = pb.setJointMotorControlArray
        step = pb.stepSimulation
        torque_mode = pb.TORQUE_CONTROL
        velocity_mode = pb.VELOCITY_CONTROL
        servos = self._servos
        dry = self._dry
        still = [0.0] * len(indices)
        for _ in range(n):
            states = get_states(body, indices, physicsClientId=client)
            if direct:
                forces = [
                    servo_step(st[0] + off, st[1], dt)
                    for (servo_step, off), st in zip(direct_terms, states, strict=True)
                ]
            else:
                forces = [
                    sign * servo_step(sign * st[0] + off, sign * st[1], dt)
                    for (servo_step, sign, off), st in zip(terms, states, strict=True)
                ]
            set_array(body, indices, torque_mode, forces=forces, physicsClientId=client)
            if dry:  # friction that can hold the shaft: a velocity motor capped at the friction
                holds = [s.dry_friction_nm for s in servos]
                set_array(
                    body, indices, velocity_mode, targetVelocities=still, forces=holds, physicsClientId=client
                )
            step(physicsClientId=client)
        self.steps += n

    def _sync_servo_state(self) -> None:
        # Only at construction: afterwards each servo keeps the shaft state it
        # sampled at its last control tick (at most one physics step old), which
        # is what a real servo's present-value registers hold too.
        states = self._pb.getJointStates(self.body, self._indices, physicsClientId=self.client)
        for servo, sign, off, st in zip(self._servos, self._signs, self._offsets, states, strict=True):
            servo.position = sign * st[0] + off
            servo.velocity = sign * st[1]

    def place(self, servo_positions: dict[int, float]) -> None:
        """Put servos' shafts at these angles (rad, servo frame), at rest: a twin that starts
        where real servos are."""
        for mount, index in zip(self.mounts, self._indices, strict=True):
            angle = servo_positions.get(mount.servo.servo_id)
            if angle is not None:
                q = (angle - mount.offset_rad) / mount.direction
                self._pb.resetJointState(self.body, index, q, 0.0, physicsClientId=self.client)
        self._sync_servo_state()

    # -- access ---------------------------------------------------------------
    def servo(self, servo_id: int) -> VirtualServo:
        for s in self._servos:
            if s.servo_id == servo_id:
                return s
        raise KeyError(servo_id)

    @property
    def servos(self) -> list[VirtualServo]:
        return list(self._servos)

    def joint_positions(self, names: Iterable[str]) -> list[float]:
        pb = self._pb
        idx = [self.joint_index[n] for n in names]
        return [s[0] for s in pb.getJointStates(self.body, idx, physicsClientId=self.client)]

    def close(self) -> None:
        if self.client is not None:
            from sim_models.bullet import release

            release(self.client)  # emptied and kept for the next plant in this process
        self.client = None  # type: ignore[assignment]

    def __enter__(self) -> Plant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
