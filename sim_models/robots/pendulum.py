"""A one-servo pendulum rig, generated as URDF text for any length and mass.

The rig is a fixed base, one `continuous` joint `pivot` about +y (horizontal),
and a single moving link `arm` that hangs straight down (-z) at q = 0. The arm
link carries both the point mass (a 1 cm solid sphere at the end of the arm)
and the optional uniform rod, so its centre of mass and inertia are the exact
composite of the two. With gravity g along -z the torque gravity exerts about
the pivot is therefore

    tau_g(q) = -(mass_kg + arm_mass_kg / 2) * g * length_m * sin(q)   [N m]

(m g L sin q in magnitude for the default massless arm). Load with a fixed base
(PyBullet: ``useFixedBase=True``).
"""

import math

from servo_core.errors import ConfigError

__all__ = ["BASE_MASS_KG", "BOB_RADIUS_M", "MAX_LENGTH_M", "MAX_MASS_KG", "pendulum_urdf", "ROD_RADIUS_M"]

BOB_RADIUS_M = 0.01
"""Radius of the sphere standing in for the point mass, m."""

ROD_RADIUS_M = 0.003
"""Radius of the drawn rod, m (also used for the rod's spin inertia)."""

MAX_LENGTH_M = 10.0
MAX_MASS_KG = 1000.0
BASE_MASS_KG = 0.5
"""Mass of the fixed base block, kg (irrelevant once the base is fixed)."""


def _check(name: str, value: object, upper: float, *, allow_zero: bool = False) -> float:
    """Return `value` as a float, or raise ConfigError naming the argument.

    `upper` keeps the rig physical (and the inertia arithmetic finite).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"pendulum: {name} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0.0 or (x == 0.0 and not allow_zero) or x > upper:
        low = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"pendulum: {name} must be a number {low} and <= {upper:g}, got {value!r}")
    return x


def _g(x: float) -> str:
    """Format a float for URDF with 12 significant digits."""
    return f"{x:.12g}"


def pendulum_urdf(length_m: float = 0.1, mass_kg: float = 0.5, arm_mass_kg: float = 0.0) -> str:
    """URDF text of a pendulum: pivot about +y, arm of `length_m` (m) hanging down at q = 0.

    `mass_kg` (kg) is a point mass (solid sphere, radius 1 cm) at the arm's end;
    `arm_mass_kg` (kg, may be 0) is a uniform rod from the pivot to that mass.
    Raises ConfigError naming the argument when one is not a finite positive
    number (`arm_mass_kg` may be 0).
    """
    length = _check("length_m", length_m, MAX_LENGTH_M)
    mass = _check("mass_kg", mass_kg, MAX_MASS_KG)
    rod = _check("arm_mass_kg", arm_mass_kg, MAX_MASS_KG, allow_zero=True)

    total = mass + rod
    com_z = -(mass * length + rod * length / 2.0) / total
    # Inertia about the link's centre of mass: sphere + thin rod, each moved
    # by the parallel-axis theorem. Principal axes are the link axes.
    i_bob = 0.4 * mass * BOB_RADIUS_M**2
    i_rod_transverse = rod * length**2 / 12.0
    i_rod_spin = 0.5 * rod * ROD_RADIUS_M**2
    d_bob = -length - com_z
    d_rod = -length / 2.0 - com_z
    i_xx = i_bob + mass * d_bob**2 + i_rod_transverse + rod * d_rod**2
    i_zz = i_bob + i_rod_spin
    base_i = BASE_MASS_KG * (0.06**2 + 0.04**2) / 12.0

    return f"""<?xml version="1.0"?>
<!-- ServoTwin built-in robot: one-servo pendulum. Units: m, kg, rad.
     length_m={_g(length)} mass_kg={_g(mass)} arm_mass_kg={_g(rod)} -->
<robot name="pendulum">
  <material name="base_grey"><color rgba="0.45 0.47 0.50 1"/></material>
  <material name="rod_silver"><color rgba="0.75 0.75 0.78 1"/></material>
  <material name="bob_red"><color rgba="0.85 0.15 0.10 1"/></material>
  <link name="base">
    <inertial>
      <origin xyz="0 0 0" rpy="0 0 0"/>
      <mass value="{_g(BASE_MASS_KG)}"/>
      <inertia ixx="{_g(base_i)}" ixy="0" ixz="0" iyy="{_g(base_i)}" iyz="0" izz="{_g(base_i)}"/>
    </inertial>
    <visual>
      <origin xyz="0 -0.03 0" rpy="0 0 0"/>
      <geometry><box size="0.04 0.04 0.04"/></geometry>
      <material name="base_grey"/>
    </visual>
  </link>
  <joint name="pivot" type="continuous">
    <parent link="base"/>
    <child link="arm"/>
    <origin xyz="0 0 0" rpy="0 0 0"/>
    <axis xyz="0 1 0"/>
  </joint>
  <link name="arm">
    <inertial>
      <origin xyz="0 0 {_g(com_z)}" rpy="0 0 0"/>
      <mass value="{_g(total)}"/>
      <inertia ixx="{_g(i_xx)}" ixy="0" ixz="0" iyy="{_g(i_xx)}" iyz="0" izz="{_g(i_zz)}"/>
    </inertial>
    <visual>
      <origin xyz="0 0 {_g(-length / 2.0)}" rpy="0 0 0"/>
      <geometry><cylinder radius="{_g(ROD_RADIUS_M)}" length="{_g(length)}"/></geometry>
      <material name="rod_silver"/>
    </visual>
    <visual>
      <origin xyz="0 0 {_g(-length)}" rpy="0 0 0"/>
      <geometry><sphere radius="{_g(BOB_RADIUS_M)}"/></geometry>
      <material name="bob_red"/>
    </visual>
    <collision>
      <origin xyz="0 0 {_g(-length)}" rpy="0 0 0"/>
      <geometry><sphere radius="{_g(BOB_RADIUS_M)}"/></geometry>
    </collision>
  </link>
</robot>
"""
