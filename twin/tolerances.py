"""Monte Carlo over the physical world: the scenario's `tolerances:` drawn for one seed.

Every servo, network link and robot link gets its own factor, from a generator derived from the
seed and its name, so a run stays reproducible and two seeds differ for physical reasons (one
servo with more friction, a slower link, a heavier forearm). A factor is 1 + x, x normal or
uniform as the scenario says, and never below 0.05: a spread cannot make a mass or a gain vanish.
"""

from __future__ import annotations

from collections.abc import Iterable

from servo_core.catalogue import ServoSpec, spec_with
from sim_models.rng import component_rng
from twin.scenario.models import ServoConfig, Spread, Tolerances

__all__ = ["MIN_FACTOR", "draw_factor", "link_latency_scale", "robot_mass_scales", "servo_with_tolerances"]

MIN_FACTOR = 0.05


def draw_factor(spread: Spread, seed: int, name: str) -> float:
    rng = component_rng(seed, f"tolerance:{name}")
    if spread.normal is not None:
        x = float(rng.normal(0.0, spread.normal))
    else:
        assert spread.uniform is not None
        x = float(rng.uniform(-spread.uniform, spread.uniform))
    return max(MIN_FACTOR, 1.0 + x)


def servo_with_tolerances(
    spec: ServoSpec, servo: ServoConfig, tolerances: Tolerances, seed: int
) -> tuple[ServoSpec, float | None]:
    """This seed's servo: its model parameters and its supply voltage (None: the model's own)."""
    changes: dict[str, float] = {}
    for field, spread in sorted(tolerances.servos.items()):
        nominal = getattr(spec, field)
        if nominal is None:
            continue  # an optional parameter this model does not have: nothing to vary
        value = nominal * draw_factor(spread, seed, f"servo:{servo.id}:{field}")
        changes[field] = round(value) if isinstance(nominal, int) else value
    if changes:
        spec = spec_with(spec, changes, origin=f"tolerances for servo {servo.id}")
    supply = servo.supply_v
    if tolerances.supply_v is not None:
        nominal_v = supply if supply is not None else spec.nominal_voltage_v
        supply = nominal_v * draw_factor(tolerances.supply_v, seed, f"supply:{servo.id}")
    return spec, supply


def link_latency_scale(tolerances: Tolerances, seed: int, link: str) -> float:
    if tolerances.link_latency is None:
        return 1.0
    return draw_factor(tolerances.link_latency, seed, f"link:{link}")


def robot_mass_scales(tolerances: Tolerances, seed: int, links: Iterable[str]) -> dict[str, float]:
    if tolerances.robot_masses is None:
        return {}
    spread = tolerances.robot_masses
    return {name: draw_factor(spread, seed, f"mass:{name}") for name in links}
