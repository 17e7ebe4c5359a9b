"""Per-joint goal and measured position over time, with a deterministic CSV form.

Units are SI throughout: time in seconds, angles in radians.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from servo_core.errors import ConfigError
from twin.observe.files import write_text_atomic

__all__ = ["Telemetry", "csv_row"]

_TIME_COLUMN = "t_s"
_GOAL_SUFFIX = "_goal_rad"
_ACTUAL_SUFFIX = "_actual_rad"


def _number(x: float) -> str:
    text = f"{x:.6f}"
    return "0.000000" if text == "-0.000000" else text  # a tiny negative prints as zero


def csv_row(values: Sequence[float]) -> str:
    """One telemetry line: every value with 6 decimals (s, rad), so equal data give equal bytes."""
    return ",".join(map(_number, values)) + "\n"


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
        self._frozen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def append(self, t: float, goal: Sequence[float], actual: Sequence[float]) -> None:
        """Record one sample: time ``t`` (s), ``goal`` and ``actual`` angles (rad) per joint.

        Lengths are not checked here (hot path); :meth:`arrays` and :meth:`to_csv` do.
        The sequences are copied so the caller may reuse its buffers.
        """
        if self._frozen is not None:
            self._thaw()
        self._t.append(t)
        self._goal.append(tuple(goal))
        self._actual.append(tuple(actual))

    @classmethod
    def from_arrays(
        cls, joints: Sequence[str], t: np.ndarray, goal: np.ndarray, actual: np.ndarray
    ) -> Telemetry:
        """A recording of many samples at once, kept as the arrays given (no per-sample objects)."""
        tel = cls(joints)
        arrays = (np.asarray(t, dtype=np.float64), np.asarray(goal, dtype=np.float64))
        tel._frozen = (*arrays, np.asarray(actual, dtype=np.float64))
        return tel

    def _thaw(self) -> None:
        if self._frozen is not None:
            t, goal, actual = self._frozen
            self._frozen = None
            self.extend(t, goal, actual)

    def extend(self, t: np.ndarray, goal: np.ndarray, actual: np.ndarray) -> None:
        """Append many samples at once: ``t`` (n,), ``goal`` and ``actual`` (n, J)."""
        if self._frozen is not None:
            self._thaw()
        self._t.extend(t.tolist())
        self._goal.extend(map(tuple, goal.tolist()))
        self._actual.extend(map(tuple, actual.tolist()))

    def __len__(self) -> int:
        """Number of samples recorded."""
        if self._frozen is not None:
            return len(self._frozen[0]) + len(self._t)
        return len(self._t)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``t`` (n,) in s, ``goal`` (n, J) and ``actual`` (n, J) in rad, as float64."""
        if self._frozen is not None:
            return self._frozen
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
        interleaved = np.empty((len(t), 1 + 2 * len(self.joints)), dtype=np.float64)
        interleaved[:, 0] = t
        interleaved[:, 1::2] = goal
        interleaved[:, 2::2] = actual
        lines = [",".join(self.header()) + "\n"]
        lines.extend(csv_row(row) for row in interleaved.tolist())
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
                text = fh.read()
            lines = text.splitlines()
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
        body = text[len(lines[0]) :].lstrip("\r\n")
        if body and not text.endswith("\n"):
            body = body[: body.rfind("\n") + 1]  # a last line cut short by a killed writer
        if body.strip():
            try:  # fast path; the loop below finds the line of any problem
                data = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64)
            except ValueError:
                pass
            else:
                if data.shape[1] == n_cols and not any(not ln.strip() for ln in body.splitlines()):
                    return cls.from_arrays(tel.joints, data[:, 0], data[:, 1::2], data[:, 2::2])
        rows: list[list[float]] = []
        for lineno, line in enumerate(lines[1:], start=2):
            if not line.strip():
                # Tolerate trailing blank lines only.
                if any(rest.strip() for rest in lines[lineno:]):
                    raise ConfigError(f"{path}:{lineno}: blank line inside telemetry data")
                break
            fields = line.split(",")
            if lineno == len(lines) and not text.endswith("\n") and len(fields) != n_cols:
                break  # a line cut short by a process killed while writing it: the rest is good
            if len(fields) != n_cols:
                raise ConfigError(f"{path}:{lineno}: expected {n_cols} fields, got {len(fields)}")
            try:
                values = [float(f) for f in fields]
            except ValueError as exc:
                raise ConfigError(f"{path}:{lineno}: not a number: {exc}") from exc
            rows.append(values)
        data = np.array(rows, dtype=np.float64).reshape(len(rows), n_cols)
        return cls.from_arrays(tel.joints, data[:, 0], data[:, 1::2], data[:, 2::2])
