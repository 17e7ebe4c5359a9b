"""Real-time factor of the framework against a bare PyBullet loop, in one run.

The framework runs scenarios/arm6_pick_place.yaml (services, network, bus,
six virtual STS3215 servos) for a fixed simulated time. The baseline steps
the same URDF at the same dt with TORQUE_CONTROL commands (a PD law
following sines on every joint) and joint-state read-back every step: the
least any servo simulation on PyBullet has to do. A third line isolates the
servo physics: the same plant with its six virtual servos following the same
sines, with no services, bus or network. Prints the real-time factors and the
ratios to the bare loop (best over best, and the lowest and highest ratio of a
repeat to that repeat's bare loop, as a measure of the noise).

    python bench/rtf.py [--sim-seconds 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import twin
from sim_models.bullet import connect_direct, pybullet
from sim_models.robots import actuated_joints, robot_urdf_text

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "arm6_pick_place.yaml"
KP, KD = 20.0, 0.5  # N·m/rad, N·m·s/rad: a PD law that really tracks the goal


def goal(t: float, phase: float) -> float:
    """The motion both comparison loops follow: 0.5 rad sines at 0.5 Hz, one phase per joint.

    PyBullet's step costs more while links move than at rest, so the loops
    compared must move alike.
    """
    return 0.5 * math.sin(2.0 * math.pi * 0.5 * t + phase)


def bare_loop(sim_seconds: float, dt: float) -> float:
    """Real-time factor of a bare torque-controlled PyBullet loop."""
    import os
    import tempfile

    pb = pybullet()
    client = connect_direct()
    urdf = robot_urdf_text("arm6")
    fd, path = tempfile.mkstemp(suffix=".urdf")
    with os.fdopen(fd, "w") as f:
        f.write(urdf)
    body = pb.loadURDF(path, useFixedBase=True, flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
    os.unlink(path)
    pb.setTimeStep(dt, physicsClientId=client)
    pb.setGravity(0, 0, -9.81, physicsClientId=client)
    names = list(actuated_joints(urdf))
    index = {
        pb.getJointInfo(body, i, physicsClientId=client)[1].decode(): i
        for i in range(pb.getNumJoints(body, physicsClientId=client))
    }
    idx = [index[n] for n in names]
    pb.setJointMotorControlArray(
        body, idx, pb.VELOCITY_CONTROL, forces=[0.0] * len(idx), physicsClientId=client
    )
    steps = int(round(sim_seconds / dt))
    phases = [0.7 * j for j in range(len(idx))]
    start = time.perf_counter()
    for k in range(steps):
        t = k * dt
        states = pb.getJointStates(body, idx, physicsClientId=client)
        forces = [KP * (goal(t, ph) - s[0]) - KD * s[1] for s, ph in zip(states, phases, strict=True)]
        pb.setJointMotorControlArray(body, idx, pb.TORQUE_CONTROL, forces=forces, physicsClientId=client)
        pb.stepSimulation(physicsClientId=client)
    elapsed = time.perf_counter() - start
    pb.disconnect(client)
    return sim_seconds / elapsed


def servo_physics(sim_seconds: float) -> float:
    """Real-time factor of the plant and its virtual servos alone, following the same
    sines as the bare loop (goals written every 10 ms, as a driver would)."""
    from twin.assembly import build_plant

    plant, _ = build_plant(twin.load(SCENARIO))
    for servo in plant.servos:
        servo.write_register("torque_enable", 1)
    phases = [0.7 * j for j in range(len(plant.servos))]
    cycles = int(round(sim_seconds / 0.01))
    start = time.perf_counter()
    for k in range(cycles):
        t = k * 0.01
        for servo, ph in zip(plant.servos, phases, strict=True):
            servo.write_register("goal_position", 2048 + round(goal(t, ph) * 4096 / (2 * math.pi)))
        plant.advance_to(t + 0.01)
    elapsed = time.perf_counter() - start
    plant.close()
    return sim_seconds / elapsed


def framework(sim_seconds: float) -> float:
    scenario = twin.load(SCENARIO, [f"duration={sim_seconds}"])
    start = time.perf_counter()
    twin.run(scenario)
    return sim_seconds / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sim-seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dt = twin.load(SCENARIO).physics.dt_s
    bare, physics, ours = [], [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits all three
        bare.append(bare_loop(args.sim_seconds, dt))
        physics.append(servo_physics(args.sim_seconds))
        ours.append(framework(args.sim_seconds))
    b, p, o = max(bare), max(physics), max(ours)

    def spread(rtfs: list[float]) -> str:
        """Lowest and highest ratio of a repeat to that repeat's bare loop."""
        ratios = [r / base for r, base in zip(rtfs, bare, strict=True)]
        return f"(per repeat {min(ratios):.2f}-{max(ratios):.2f})"

    print(
        f"arm6_pick_place, {args.sim_seconds:g} s simulated at dt = {dt * 1000:g} ms, best of {args.repeats}"
    )
    print(f"  bare PyBullet loop : real-time factor {b:7.2f}  ({b / dt:,.0f} steps/s)")
    print(
        f"  plant + 6 servos   : real-time factor {p:7.2f}  ({p / dt:,.0f} steps/s)  ratio {p / b:.2f}  "
        + spread(physics)
    )
    print(
        f"  ServoTwin (full)   : real-time factor {o:7.2f}  ({o / dt:,.0f} steps/s)  ratio {o / b:.2f}  "
        + spread(ours)
    )
    print("  (ratio: best over best; target for the full run: ratio >= 0.70)")


if __name__ == "__main__":
    main()
