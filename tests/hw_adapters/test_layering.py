"""A real serial bus never loads the simulation: hw_adapters' serial side stands on servo_core alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("sim_models", "pybullet", "simpy", "twin")
HEAVY = ("sim_models", "pybullet", "simpy", "twin")
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from hw_adapters import open_bus
    with open_bus(sys.argv[1]) as bus:
        found = [p.model for p in bus.scan(range(1, 4))]
        states = bus.read_states([1, 2])
        bus.set_torque([1, 2], True)
        bus.write_goals({1: 0.1, 2: -0.1})
        snapshot = bus.snapshot()
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sim_models", "pybullet", "simpy", "twin"))
    print(json.dumps({"found": found, "states": sorted(states), "heavy": heavy,
                      "transactions": snapshot.transactions}))
    """
)


@pytest.mark.realtime
@pytest.mark.parametrize(("protocol", "model"), [("dynamixel", "xl430-w250"), ("feetech", "sts3215")])
def test_a_serial_bus_run_imports_no_simulation(emulator, protocol: str, model: str) -> None:
    robot = "pan_tilt" if protocol == "dynamixel" else "arm6"
    emu = emulator(protocol, model, robot)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, emu.url()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["found"] == [model] * (2 if protocol == "dynamixel" else 3)
    assert out["states"] == [1, 2]
    assert out["transactions"] > 0
    assert out["heavy"] == []


def test_importing_hw_adapters_loads_no_simulation() -> None:
    code = (
        "import sys, hw_adapters, hw_adapters.conformance, hw_adapters.faulty;"
        "import hw_adapters.dynamixel.bus, hw_adapters.feetech.bus;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
