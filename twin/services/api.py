"""The public service API: what a service (built-in or a user's) is and what it may do.

A service is a class. It declares its parameters as a pydantic model
(validated with the scenario), the requests it handles (each with the type of
its body, which the gateway checks), its own metrics, and whether it wants the
servo bus. The runtime makes one object per replica and hands it a
`ServiceContext`: calls to other services through the scenario's patterns,
publish/subscribe on the event bus, periodic work, timers, a seeded random
generator and, only when the scenario gives it one, the servo bus.

    class Echo(Service[EchoParams]):
        echoed = Counter("requests echoed")

        @handles("echo", str)
        def echo(self, request: Message) -> str:
            self.echoed.inc()
            return self.params.prefix + request.body

A handler returns the reply body, or a generator (it may `yield from
self.ctx.call(...)` or wait on `self.ctx.sleep(...)`) whose return value is the
reply. Raising ServiceError (or Refused) answers with that error; any other
exception is the service's failure: counted, traced, answered as an error, and
named in the report, while the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import simpy
from pydantic import BaseModel, ConfigDict

from twin.control.commands import Command
from twin.control.joints import Joint
from twin.services.errors import Refused, RequestFailed, RequestTimeout, ServiceError
from twin.services.messages import Message
from twin.services.metrics import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from hw_adapters import ServoBus
    from twin.patterns.eventbus import Event

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "MachineInfo",
    "Message",
    "Recording",
    "Refused",
    "RequestFailed",
    "RequestTimeout",
    "Service",
    "ServiceContext",
    "ServiceError",
    "ServiceParams",
    "handles",
]


@dataclass(frozen=True)
class MachineInfo:
    """What every service may know of the machine (SI units, joint frame)."""

    joints: tuple[Joint, ...] = ()
    schedule: tuple[tuple[float, Command], ...] = ()  # the task: (time to send, command)
    on_servo_failure: str = "safe_stop"  # or hold_others, torque_off
    recording: Recording = field(default_factory=lambda: NOT_RECORDED)  # where telemetry goes


class Recording(Protocol):
    """Where a run's telemetry and events go (the run log, streamed to the run directory)."""

    def sample(self, t: float, goal: Sequence[float], actual: Sequence[float]) -> None: ...
    def event(self, t: float, kind: str, **fields: Any) -> None: ...


class _NotRecorded:
    def sample(self, t: float, goal: Sequence[float], actual: Sequence[float]) -> None:
        pass

    def event(self, t: float, kind: str, **fields: Any) -> None:
        pass


NOT_RECORDED: Recording = _NotRecorded()


Work = Generator[simpy.Event, Any, Any]
Handler = Callable[[Any, Message], Any]


class ServiceParams(BaseModel):
    """Base of a service's parameters: the service's own keys of its scenario entry."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


P = TypeVar("P", bound=ServiceParams)


_HANDLERS: dict[Callable[..., Any], tuple[str, Any]] = {}
"""Methods marked by @handles: (request kind, body type)."""


def handles(kind: str, body: type | Any = object) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of requests of `kind`, whose body must be a `body`
    (a class, a union of classes, or a pydantic model, which a dict body is validated into)."""

    def mark(method: Handler) -> Handler:
        _HANDLERS[method] = (kind, body)
        return method

    return mark


class ServiceContext(Generic[P]):
    """What the runtime gives one replica of a service. Implemented by the runtime."""

    name: str  # the replica, e.g. "camera#0"
    service: str  # the service's name in the scenario, e.g. "camera"
    node: str
    index: int
    params: P
    rng: np.random.Generator  # seeded from the scenario seed and the replica's name
    machine: MachineInfo  # the joints, the task, the failure policy

    def request_schema(self, service: str, kind: str) -> Any:
        """The body type `service` declares for requests of `kind`. Refused when it has none."""
        raise NotImplementedError

    @property
    def env(self) -> simpy.Environment:
        raise NotImplementedError

    @property
    def now(self) -> float:
        """Simulated (or, on a bench, wall-clock) time in s."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> simpy.Event:
        """An event to yield: resumes after `seconds`."""
        raise NotImplementedError

    def call(
        self,
        service: str,
        kind: str,
        body: Any = None,
        *,
        on_behalf_of: Message | None = None,
        timeout_s: float | None = None,
        token: str = "",
    ) -> Generator[simpy.Event, Any, Any]:
        """Request `kind` from `service` and return the reply's body (`yield from`).

        Goes through the scenario's patterns for this call (retry, breaker, bulkhead,
        timeout) and discovery. `on_behalf_of` carries a request's deadline and trace
        downstream. Raises RequestTimeout, RequestFailed or a pattern's refusal
        (all TwinError)."""
        raise NotImplementedError

    def publish(self, topic: str, payload: Any) -> simpy.Event:
        """Publish on the event bus; the event succeeds once every copy is sent."""
        raise NotImplementedError

    def subscribe(self, topic: str, handler: Callable[[Event], Any]) -> None:
        """Run `handler(event)` for every event of `topic` (event.payload is what was published),
        after the replica's processing time; a handler may return a generator."""
        raise NotImplementedError

    def every(self, period_s: float, work: Callable[[], Any], *, start_s: float = 0.0) -> None:
        """Run `work()` every `period_s` from `start_s`, while the replica is up."""
        raise NotImplementedError

    def at(self, t_s: float, work: Callable[[], Any]) -> None:
        """Run `work()` once at time `t_s`."""
        raise NotImplementedError

    def spawn(self, work: Work) -> simpy.Process:
        """Run a generator as its own process (its failures are the service's)."""
        raise NotImplementedError

    @property
    def servo_bus(self) -> ServoBus:
        """The servo bus, for the one service the scenario gives it to. TwinError otherwise."""
        raise NotImplementedError

    def replica_errors(self, n: int = 1) -> None:
        """Count errors this replica saw (shown per service in metrics.json)."""
        raise NotImplementedError

    @property
    def up(self) -> bool:
        """False while the replica is crashed or stopped by a fault."""
        raise NotImplementedError


class Service(Generic[P]):
    """Base of every service. Subclass with `Service[MyParams]` and set `Params = MyParams`."""

    Params: ClassVar[type[ServiceParams]] = ServiceParams
    wants_servo_bus: ClassVar[bool] = False  # the scenario gives the bus unless it says servo_bus: false
    description: ClassVar[str] = ""
    _handlers: ClassVar[dict[str, tuple[str, Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, tuple[str, Any]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                mark = _HANDLERS.get(value) if callable(value) else None
                if mark is not None:
                    found[mark[0]] = (attr, mark[1])
        cls._handlers = found

    def __init__(self, ctx: ServiceContext[P]) -> None:
        self.ctx = ctx
        self.params: P = ctx.params

    def start(self) -> None:
        """Called once when the run starts: subscribe, schedule periodic work."""

    @classmethod
    def request_kinds(cls) -> dict[str, Any]:
        """Request kind -> the type its body must have."""
        return {kind: body for kind, (_, body) in cls._handlers.items()}

    def handler(self, kind: str) -> tuple[Callable[[Message], Any], Any] | None:
        """The method that handles `kind` and the type its body must have; None if none does."""
        entry = self._handlers.get(kind)
        return None if entry is None else (getattr(self, entry[0]), entry[1])

    def kinds_handled(self) -> list[str]:
        """The request kinds this service object answers (for refusals)."""
        return sorted(self._handlers)

    @classmethod
    def check_topology(
        cls, params: Any, services: Mapping[str, type[Service[Any]]]
    ) -> list[tuple[tuple[str, ...], str]]:
        """Problems of this service's parameters against the rest of the topology (validation,
        before a run): (field path within the service's entry, message). `services` maps every
        service name of the scenario to its class."""
        return []


def check_body(service: str, kind: str, expected: Any, body: Any) -> Any:
    """The body as the handler gets it: validated into a pydantic model, or checked against a
    type. Refused naming what is wrong."""
    if expected is object or expected is Any:
        return body
    if isinstance(expected, type) and issubclass(expected, BaseModel):
        if isinstance(body, expected):
            return body
        try:
            return expected.model_validate(body)
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, reported to the caller
            first = str(exc).splitlines()
            raise Refused(f"invalid {kind!r} request for {service}: {' '.join(first[:3])}") from None
    try:
        ok = isinstance(body, expected)
    except TypeError:
        return body
    if not ok:
        raise Refused(f"invalid {kind!r} request for {service}: body is a {type(body).__name__}")
    return body


def is_service_class(obj: object) -> str | None:
    """None when `obj` is a service class; else what it is instead (for plugin checks)."""
    if not isinstance(obj, type):
        return f"is a {type(obj).__name__}, not a class"
    if not issubclass(obj, Service):
        return f"{obj.__module__}.{obj.__qualname__} is not a twin.service.Service subclass"
    params = getattr(obj, "Params", None)
    if not (isinstance(params, type) and issubclass(params, ServiceParams)):
        return f"{obj.__qualname__}.Params must be a ServiceParams subclass"
    return None
