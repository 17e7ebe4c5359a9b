"""Where a control cycle's time goes: a full run's cost per driver cycle, by part.

Runs scenarios/arm6_pick_place.yaml (six STS3215 servos, 1 ms physics, driver at 100 Hz).
Three loops are timed, interleaved, best of --repeats (bench/rtf.py's loops):

- the full run;
- the plant with its six servos alone;
- the bare PyBullet loop.

Per control cycle:

- the bare loop is PyBullet's share;
- plant + servos minus the bare loop is the servo models' share;
- the full run minus plant + servos is the rest.

The rest is split by layer with a cProfile of the full run. Time in a built-in goes to the
layer that called it. cProfile's own cost per recorded call is calibrated as (profiled time
of those layers - their timed time) / their calls, and taken off each layer for its calls.

    python bench/cycle.py [--sim-seconds 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import Counter
from pathlib import Path
from typing import Any

import twin

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "arm6_pick_place.yaml"

LAYERS = [  # (layer, path prefixes inside the project or a library), first match wins
    ("servo model: firmware, motor, thermal", ()),  # STEP_FUNCTIONS below
    (
        "servo registers: present values, goals",
        ("sim_models/servo/", "servo_core/units", "servo_core/control_table"),
    ),
    ("plant: physics glue (plant.py)", ("sim_models/plant",)),
    ("bus model: packets, timing, faults", ("hw_adapters/", "servo_core/protocol", "servo_core/")),
    ("driver and trajectories", ("twin/services/driver", "twin/control/")),
    (
        "observation: telemetry, run log, metrics",
        ("twin/observe/", "twin/services/metrics", "twin/services/telemetry"),
    ),
    (
        "services, event bus, network, run loop",
        ("twin/services/", "twin/patterns/", "sim_models/network", "twin/"),
    ),
    ("SimPy scheduling", ("/simpy/",)),
]
STEP_FUNCTIONS = {"step", "_velocity_control", "_advance_setpoint", "_heat", "monitor", "_watchdog_fire"}
"""The servo model's per-physics-step code; the rest of sim_models/servo runs on bus accesses."""
PYBULLET = "PyBullet (step, joint states, motor commands)"
OTHER = "other (Python runtime, enum, ...)"


def _layer(file: str, function: str = "") -> str:
    if "sim_models/servo/" in file and function in STEP_FUNCTIONS:
        return LAYERS[0][0]
    inside = file.startswith(f"{ROOT}/") and "/.venv/" not in file
    rel = file[len(str(ROOT)) + 1 :] if inside else ""
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (prefix in file) if prefix.startswith("/") else (inside and rel.startswith(prefix)):
                return name
    return OTHER


def profile_layers(sim_seconds: float) -> tuple[Counter[str], Counter[str]]:
    """Own time (s) and calls recorded, per layer."""
    scenario = twin.load(SCENARIO, [f"duration={sim_seconds}"])
    profiler = cProfile.Profile()
    profiler.enable()
    twin.run(scenario)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    layers: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for (file, _line, name), (_cc, n_calls, own, _cum, callers) in stats.items():
        if file != "~":
            layers[_layer(file, name)] += own
            calls[_layer(file, name)] += n_calls
        elif "pybullet" in name:
            layers[PYBULLET] += own
            calls[PYBULLET] += n_calls
        else:  # a built-in: charged to whoever called it, in proportion
            for (caller_file, _l, caller), entry in callers.items():
                layer = _layer(caller_file, caller) if caller_file != "~" else OTHER
                layers[layer] += entry[2]
                calls[layer] += entry[1]
    return layers, calls


def _rtf() -> object:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import rtf

    return rtf


PHYSICS_LAYERS = {PYBULLET, "servo model: firmware, motor, thermal", "plant: physics glue (plant.py)"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sim-seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rtf: Any = _rtf()
    scenario = twin.load(SCENARIO, [f"duration={args.sim_seconds}"])
    driver = next(s for s in scenario.topology.services if s.type == "driver")
    cycle_s = 1.0 / driver.rate_hz
    cycles = args.sim_seconds / cycle_s
    dt = scenario.physics.dt_s
    twin.run(scenario)  # warm: imports, caches
    full, physics, bare = [], [], []
    for _ in range(args.repeats):  # interleaved, so that drifting machine load hits all three
        full.append(_timed(scenario) / cycles * 1e6)
        physics.append(args.sim_seconds / rtf.servo_physics(args.sim_seconds) / cycles * 1e6)
        bare.append(args.sim_seconds / rtf.bare_loop(args.sim_seconds, dt) / cycles * 1e6)
    x, y, z = min(full), min(physics), min(bare)
    own, calls = profile_layers(args.sim_seconds)
    framework = {name: t for name, t in own.items() if name not in PHYSICS_LAYERS}
    fw_calls = sum(calls[name] for name in framework)
    fw_timed = max(0.0, x - y) * cycles / 1e6
    per_call = max(0.0, (sum(framework.values()) - fw_timed) / fw_calls) if fw_calls else 0.0
    corrected = {name: max(0.0, t - calls[name] * per_call) for name, t in framework.items()}
    total = sum(corrected.values()) or 1.0
    steps = round(cycle_s / dt)
    print(
        f"arm6_pick_place: {args.sim_seconds:g} s simulated, {cycles:.0f} driver cycles of "
        f"{cycle_s * 1000:g} ms ({steps} physics steps each), best of {args.repeats}, µs per control cycle"
    )
    print(f"  {'full run':<58} {x:8.1f}")
    print(f"  {'  PyBullet (bare loop, same robot and steps)':<58} {z:8.1f}")
    print(f"  {'  servo models in the physics loop (plant + servos - bare)':<58} {y - z:8.1f}")
    print(f"  {'  the rest (full run - plant + servos), by profile:':<58} {x - y:8.1f}")
    for name, t in sorted(corrected.items(), key=lambda kv: -kv[1]):
        print(f"  {'    ' + name:<58} {t / total * (x - y):8.1f}")
    print(f"  (profiler cost taken off the rest: {per_call * 1e9:.0f} ns per recorded call)")


def _timed(scenario: object) -> float:
    start = time.perf_counter()
    twin.run(scenario)  # type: ignore[arg-type]
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
