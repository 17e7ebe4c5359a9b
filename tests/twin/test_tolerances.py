"""Monte Carlo over the physical world: `tolerances:` makes seeds differ for physical reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

import twin
from servo_core.catalogue import servo_spec
from twin.assembly import build_plant
from twin.scenario.models import Spread, Tolerances
from twin.tolerances import MIN_FACTOR, draw_factor, servo_with_tolerances

PAN_TILT = Path(__file__).resolve().parents[2] / "scenarios" / "pan_tilt.yaml"
SPREAD = (
    "tolerances={servos: {coulomb_friction_nm: {uniform: 0.5}, position_p_gain: {normal: 0.2}},"
    " supply_v: {normal: 0.05}, link_latency: {uniform: 0.5}, robot_masses: {normal: 0.1}}"
)


def _max_error(seed: int, *sets: str) -> float:
    result = twin.run(twin.load(PAN_TILT, ["duration=4", "assertions=[]", *sets]), seed=seed)
    return float(result.metrics["tracking"]["max_error_deg"])


def test_seeds_differ_for_physical_reasons_and_each_seed_repeats() -> None:
    plain = {round(_max_error(seed), 3) for seed in (1, 2, 3)}
    varied = [_max_error(seed, SPREAD) for seed in (1, 2, 3)]
    assert len(plain) == 1, "without tolerances only latencies differ: the tracking is the same"
    assert len({round(v, 3) for v in varied}) == 3, "with them every seed builds another machine"
    assert _max_error(2, SPREAD) == varied[1], "and the same seed builds the same one again"


def test_each_servo_draws_its_own_values_within_the_spread() -> None:
    scenario = twin.load(PAN_TILT, [SPREAD])
    nominal = servo_spec("xl430-w250")
    pan, tilt = scenario.plant.servos
    a, supply_a = servo_with_tolerances(nominal, pan, scenario.tolerances, 7)
    b, _ = servo_with_tolerances(nominal, tilt, scenario.tolerances, 7)
    assert a.coulomb_friction_nm != b.coulomb_friction_nm
    for spec in (a, b):
        assert (
            0.5 * nominal.coulomb_friction_nm <= spec.coulomb_friction_nm <= 1.5 * nominal.coulomb_friction_nm
        )
        assert isinstance(spec.position_p_gain, int | float) and spec.position_p_gain == round(
            spec.position_p_gain
        )
    assert supply_a is not None and supply_a != nominal.nominal_voltage_v


def test_robot_masses_are_scaled_link_by_link() -> None:
    from sim_models.bullet import pybullet

    pb = pybullet()
    nominal, _ = build_plant(twin.load(PAN_TILT))
    varied, _ = build_plant(twin.load(PAN_TILT, [SPREAD]), seed=3)
    try:
        masses = [
            [pb.getDynamicsInfo(p.body, j, physicsClientId=p.client)[0] for j in range(-1, 2)]
            for p in (nominal, varied)
        ]
    finally:
        nominal.close()
        varied.close()
    ratios = [v / n for n, v in zip(*masses, strict=True) if n > 0]
    assert len(set(round(r, 6) for r in ratios)) == len(ratios) and all(0.5 < r < 1.5 for r in ratios)


def test_a_factor_never_falls_below_its_floor() -> None:
    wide = Spread(normal=0.5)
    assert min(draw_factor(wide, seed, "x") for seed in range(2000)) >= MIN_FACTOR


@pytest.mark.parametrize(
    ("tolerances", "message"),
    [
        ("{servos: {frction: {uniform: 0.2}}}", "unknown servo parameter(s) frction"),
        ("{supply_v: {normal: 0.1, uniform: 0.1}}", "give exactly one of normal: or uniform:"),
        ("{link_latency: {uniform: 2}}", "link_latency.uniform"),
    ],
)
def test_bad_tolerances_are_named(tolerances: str, message: str) -> None:
    with pytest.raises(twin.ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        twin.load(PAN_TILT, [f"tolerances={tolerances}"])


def test_no_tolerances_by_default() -> None:
    assert twin.load(PAN_TILT).tolerances == Tolerances()
