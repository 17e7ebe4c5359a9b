"""A service's own metrics, declared on its class and reported under its name in metrics.json.

    class Tracker(Service[TrackerParams]):
        commands_sent = Counter("commands sent to the gateway")
        aim_error = Histogram("angle between the head and the target", unit="deg")

    self.commands_sent.inc(); self.aim_error.observe(2.5)

Declared on the class, so a scenario's assertions on them are checked before a
run. Replicas count separately and the run adds them up: counters sum,
histograms pool their samples, gauges report the largest replica's value.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar, overload

__all__ = ["Counter", "Gauge", "Histogram", "Metric", "declared_metrics", "empty_metrics", "export_metrics"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
M = TypeVar("M", bound="Metric")


class Metric:
    """A metric declaration (a descriptor): each service object gets its own value."""

    kind: ClassVar[str] = "metric"

    def __init__(self, description: str = "", *, name: str = "") -> None:
        self.description = description
        self.name = name  # the reported name; default: the attribute's

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name
        if not _NAME.match(self.name):
            raise TypeError(f"{owner.__name__}.{name}: metric names are lower_snake_case")

    @overload
    def __get__(self: M, obj: None, owner: type) -> M: ...
    @overload
    def __get__(self, obj: object, owner: type) -> Any: ...
    def __get__(self, obj: object | None, owner: type) -> Any:
        if obj is None:
            return self
        values: dict[str, Any] = obj.__dict__.setdefault("_metric_values", {})
        value = values.get(self.name)
        if value is None:
            value = values[self.name] = self.new_value()
        return value

    def new_value(self) -> Any:
        raise NotImplementedError

    def empty(self) -> Any:
        """What the metric reports before anything was measured (the shape for validation)."""
        return self.export([])

    def export(self, values: list[Any]) -> Any:
        raise NotImplementedError


class _CounterValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class _GaugeValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)


class _HistogramValue:
    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: list[float] = []

    def observe(self, value: float) -> None:
        self.samples.append(float(value))


class Counter(Metric):
    """A count that only goes up. `self.x.inc(n=1)`."""

    kind = "counter"

    def new_value(self) -> _CounterValue:
        return _CounterValue()

    def export(self, values: list[Any]) -> int:
        return sum(v.value for v in values)


class Gauge(Metric):
    """A level, set to its latest value. `self.x.set(v)`."""

    kind = "gauge"

    def new_value(self) -> _GaugeValue:
        return _GaugeValue()

    def export(self, values: list[Any]) -> float:
        return round(max((v.value for v in values), default=0.0), 6)


class Histogram(Metric):
    """A distribution of observations. `unit="s"` (SI) reports percentiles in ms; any other unit
    reports them in that unit: `p50_deg`, ..."""

    kind = "histogram"

    def __init__(self, description: str = "", unit: str = "s", *, name: str = "") -> None:
        super().__init__(description, name=name)
        if not _NAME.match(unit):
            raise TypeError(f"histogram unit {unit!r} must be lower_snake_case, e.g. s, deg, mm")
        self.unit = unit

    def new_value(self) -> _HistogramValue:
        return _HistogramValue()

    def export(self, values: list[Any]) -> dict[str, float | int | None]:
        from twin.observe.metrics import percentiles

        samples = [s for v in values for s in v.samples]
        if self.unit == "s":
            return percentiles(samples, scale=1000.0, unit="ms")
        return percentiles(samples, scale=1.0, unit=self.unit)


def declared_metrics(cls: type) -> dict[str, Metric]:
    """The metrics a service class declares (its own and inherited), by name."""
    out: dict[str, Metric] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            if isinstance(attr, Metric):
                out[attr.name or name] = attr
    return dict(sorted(out.items()))


def export_metrics(cls: type, objects: list[object]) -> dict[str, Any]:
    """The metrics of every replica object of one service, combined."""
    return {
        name: metric.export([metric.__get__(obj, cls) for obj in objects])
        for name, metric in declared_metrics(cls).items()
    }


def empty_metrics(cls: type) -> dict[str, Any]:
    return {name: metric.empty() for name, metric in declared_metrics(cls).items()}
