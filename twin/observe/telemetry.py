"""Per-joint goal and measured position over time, with a deterministic CSV form.

Units are SI throughout: time in seconds, angles in radians.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from servo_core.errors import ConfigError
from twin.observe.files import write_text_atomic

__all__ = ["Telemetry"]

_TIME_COLUMN = "t_s"
_GOAL_SUFFIX = "_goal_rad"
_ACTUAL_SUFFIX = "_actual_rad"


class Telemetry:
    """Goal and measured position per joint over time (SI: s, rad).

    Samples are kept in plain Python lists so that :meth:`append` (the hot path,
    called about 100 times per simulated second) stays cheap; :meth:`arrays`
    converts to NumPy on demand.
    """

    def __init__(self, joints: Sequence[str]) -> None:
        """Create an empty recording for ``joints`` (names, in column order)."""
        names = [str(j) for j in joints]
        if not names:
            raise ConfigError("Telemetry needs at least one joint")
        if len(set(names)) != len(names):
            raise ConfigError(f"Telemetry joint names must be unique, got {names}")
        for name in names:
            if not name or any(c in name for c in ",\r\n\"'"):
                raise ConfigError(f"Telemetry joint name {name!r} cannot be written to CSV")
        self.joints: list[str] = names
        self._t: list[float] = []
        self._goal: list[Sequence[float]] = []
        self._actual: list[Sequence[float]] = []

    def append(self, t: float, goal: Sequence[float], actual: Sequence[float]) -> None:
        """Record one sample: time ``t`` (s), ``goal`` and ``actual`` angles (rad) per joint.

        Lengths are not checked here (hot path); :meth:`arrays` and :meth:`to_csv` do.
        The sequences are copied so the caller may reuse its buffers.
        """
        self._t.append(t)
        self._goal.append(tuple(goal))
        self._actual.append(tuple(actual))

    def __len__(self) -> int:
        """Number of samples recorded."""
        return len(self._t)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``t`` (n,) in s, ``goal`` (n, J) and ``actual`` (n, J) in rad, as float64."""
        n_joints = len(self.joints)
        t = np.asarray(self._t, dtype=np.float64).reshape(-1)
        try:
            goal = np.asarray(self._goal, dtype=np.float64).reshape(len(t), n_joints)
            actual = np.asarray(self._actual, dtype=np.float64).reshape(len(t), n_joints)
        except ValueError as exc:
            raise ConfigError(
                f"Telemetry samples do not all have {n_joints} values per joint vector"
            ) from exc
        return t, goal, actual

    def header(self) -> list[str]:
        """CSV column names: ``t_s`` then ``<joint>_goal_rad, <joint>_actual_rad`` per joint."""
        cols = [_TIME_COLUMN]
        for name in self.joints:
            cols.append(name + _GOAL_SUFFIX)
            cols.append(name + _ACTUAL_SUFFIX)
        return cols

    def to_csv(self, path: Path) -> None:
        """Write the recording to ``path`` as CSV, atomically.

        Values are formatted with ``%.6f`` (s and rad) and lines end in ``\\n``, so two
        identical recordings give byte-identical files. The data go to a temporary file
        in the same directory which then replaces ``path``, so a crash never leaves a
        half-written file behind.
        """
        path = Path(path)
        t, goal, actual = self.arrays()
        n_joints = len(self.joints)
        row_fmt = ",".join(["%.6f"] * (1 + 2 * n_joints)) + "\n"
        interleaved = np.empty((len(t), 1 + 2 * n_joints), dtype=np.float64)
        interleaved[:, 0] = t
        interleaved[:, 1::2] = goal
        interleaved[:, 2::2] = actual
        # Round to the printed precision first and add 0.0 so that tiny negatives
        # (e.g. -1e-9) print as "0.000000" rather than "-0.000000".
        interleaved = np.round(interleaved, 6) + 0.0
        lines = [",".join(self.header()) + "\n"]
        lines.extend(row_fmt % tuple(row) for row in interleaved.tolist())
        write_text_atomic(path, "".join(lines))

    @classmethod
    def from_csv(cls, path: Path) -> Telemetry:
        """Read a file written by :meth:`to_csv`.

        Raises :class:`~servo_core.errors.ConfigError` naming the file and the 1-based
        line number when the file is missing, empty or malformed.
        """
        path = Path(path)
        try:
            with path.open("r", encoding="utf-8", newline="") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read telemetry CSV: {exc}") from exc
        if not lines:
            raise ConfigError(f"{path}:1: empty telemetry CSV (no header)")
        header = lines[0].split(",")
        if header[0] != _TIME_COLUMN or len(header) < 3 or len(header) % 2 == 0:
            raise ConfigError(
                f"{path}:1: bad telemetry header, expected "
                f"'{_TIME_COLUMN},<joint>{_GOAL_SUFFIX},<joint>{_ACTUAL_SUFFIX},...'"
            )
        joints: list[str] = []
        for goal_col, actual_col in zip(header[1::2], header[2::2], strict=True):
            if not goal_col.endswith(_GOAL_SUFFIX):
                raise ConfigError(f"{path}:1: column {goal_col!r} should end in {_GOAL_SUFFIX!r}")
            name = goal_col[: -len(_GOAL_SUFFIX)]
            if actual_col != name + _ACTUAL_SUFFIX:
                raise ConfigError(f"{path}:1: column {actual_col!r} should be {name + _ACTUAL_SUFFIX!r}")
            joints.append(name)
        try:
            tel = cls(joints)
        except ConfigError as exc:
            raise ConfigError(f"{path}:1: {exc}") from exc
        n_cols = len(header)
        for lineno, line in enumerate(lines[1:], start=2):
            if not line.strip():
                # Tolerate trailing blank lines only.
                if any(rest.strip() for rest in lines[lineno:]):
                    raise ConfigError(f"{path}:{lineno}: blank line inside telemetry data")
                break
            fields = line.split(",")
            if len(fields) != n_cols:
                raise ConfigError(f"{path}:{lineno}: expected {n_cols} fields, got {len(fields)}")
            try:
                values = [float(f) for f in fields]
            except ValueError as exc:
                raise ConfigError(f"{path}:{lineno}: not a number: {exc}") from exc
            tel.append(values[0], values[1::2], values[2::2])
        return tel
