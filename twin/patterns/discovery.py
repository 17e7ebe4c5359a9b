"""Service discovery: a registry with TTL health checks, and clients that resolve through a cache.

The registry is the state machine of a Consul-like catalogue. Replicas
register and then heartbeat; an instance's health follows from the age of its
last heartbeat alone, so the registry's state is a function of time and of
the calls made to it, never of when someone happened to look:

    age <= warning_s            PASSING
    warning_s < age <= ttl_s    WARNING   (still routable)
    age > ttl_s                 CRITICAL  (not routable)

An instance turns CRITICAL the instant `ttl_s` after its last heartbeat and is
removed `deregister_critical_after_s` after that (at age
`ttl_s + deregister_critical_after_s`, when that exceeds `ttl_s`). Removal is
lazy: every call to the registry first sweeps out whatever is due, so an
instance past the deadline is gone whichever call comes first; its next
heartbeat answers False and it must register again.

Clients do not ask the registry on every call. A `DiscoveryClient` keeps the
last answer per service for `refresh_s` and routes on it, which is why a dead
instance keeps receiving traffic after the registry has marked it critical:
it dies at t, turns critical just after t + ttl_s, and drops out of a client's
view at that client's first refresh after that, so no later than
t + ttl_s + refresh_s for a client that resolves continuously. While the
registry is unavailable the client keeps routing on its stale view.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from servo_core.errors import ConfigError, TwinError

__all__ = [
    "DiscoveryClient",
    "Health",
    "InstanceRecord",
    "NoInstance",
    "Registry",
    "RegistryConfig",
    "RegistryUnavailable",
    "Strategy",
    "UnknownInstance",
]


class RegistryUnavailable(TwinError):
    """The registry is down (an injected outage): no lookups, registrations or heartbeats."""


class NoInstance(TwinError):
    """A client has no instance to route a service's call to."""


class UnknownInstance(TwinError):
    """The registry holds no instance of that name (never registered, deregistered or expired)."""


class Health(enum.Enum):
    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class RegistryConfig:
    ttl_s: float = 1.0  # a heartbeat must come within ttl_s or the instance turns CRITICAL
    warning_after_s: float | None = None  # age after which an instance is WARNING (default: ttl_s / 2)
    deregister_critical_after_s: float = 5.0  # a CRITICAL instance is removed this long after it turned

    def __post_init__(self) -> None:
        if not self.ttl_s > 0:
            raise ConfigError(f"registry ttl_s must be positive, not {self.ttl_s}")
        if self.warning_after_s is not None and not 0 <= self.warning_after_s <= self.ttl_s:
            raise ConfigError(
                f"registry warning_after_s must lie in [0, ttl_s = {self.ttl_s}], not {self.warning_after_s}"
            )
        if not self.deregister_critical_after_s >= 0:
            raise ConfigError(
                f"registry deregister_critical_after_s must be >= 0, not {self.deregister_critical_after_s}"
            )

    @property
    def warning_s(self) -> float:
        """The age after which an instance is WARNING, with the default filled in."""
        return self.ttl_s / 2 if self.warning_after_s is None else self.warning_after_s


@dataclass(frozen=True)
class InstanceRecord:
    """What the registry knows of one instance, with its health as of the query."""

    instance: str
    service: str
    node: str
    registered_at: float
    last_heartbeat: float
    health: Health


@dataclass
class _Entry:
    service: str
    node: str
    registered_at: float
    last_heartbeat: float


class Registry:
    """The registry's state machine (the service wrapper that receives messages comes later).

    `on_event(kind, instance)` hears of "registered", "deregistered" (asked
    for), "expired" (removed for staying CRITICAL too long) and "rejected" (a
    heartbeat from an instance the registry does not hold). Expiry is seen when
    the registry next sweeps, i.e. at its next call.

    `outage()` simulates an outage until its undo is called: every call then
    raises RegistryUnavailable and changes nothing. Outages may overlap; the
    registry is back once every one of them is undone. Heartbeats that cannot
    arrive during an outage are missed like any other, so a long outage can
    leave instances CRITICAL or expired when it ends.
    """

    def __init__(
        self,
        config: RegistryConfig,
        now: Callable[[], float],
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.now = now
        self.on_event = on_event
        self._outages = 0
        self._entries: dict[str, _Entry] = {}

    # -- availability ------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False during an outage."""
        return self._outages == 0

    def outage(self) -> Callable[[], None]:
        """Refuse every call until the returned undo is called (calling it again does nothing)."""
        self._outages += 1
        done = False

        def recover() -> None:
            nonlocal done
            if not done:
                done = True
                self._outages -= 1

        return recover

    # -- writes ------------------------------------------------------------------------------------

    def register(self, instance: str, service: str, node: str) -> None:
        """Add (or replace) `instance`; counts as a heartbeat. Works again after deregistration."""
        self._check()
        t = self.now()
        self._entries[instance] = _Entry(service, node, t, t)
        self._emit("registered", instance)

    def heartbeat(self, instance: str) -> bool:
        """Renew `instance`'s TTL. False when the registry does not hold it: it must register again."""
        self._check()
        entry = self._entries.get(instance)
        if entry is None:
            self._emit("rejected", instance)
            return False
        entry.last_heartbeat = self.now()
        return True

    def deregister(self, instance: str) -> None:
        """Remove `instance` (a graceful shutdown). Removing one the registry does not hold is a no-op."""
        self._check()
        if self._entries.pop(instance, None) is not None:
            self._emit("deregistered", instance)

    # -- reads -------------------------------------------------------------------------------------

    def health(self, instance: str) -> Health:
        """`instance`'s health now; UnknownInstance if the registry does not hold it."""
        self._check()
        entry = self._entries.get(instance)
        if entry is None:
            raise UnknownInstance(f"registry: no instance named {instance!r}")
        return self._health(entry, self.now())

    def instances(self, service: str, *, passing_only: bool = True) -> list[InstanceRecord]:
        """`service`'s instances sorted by name; with `passing_only`, PASSING and WARNING ones only."""
        self._check()
        t = self.now()
        records = [
            self._record(name, entry, t)
            for name, entry in sorted(self._entries.items())
            if entry.service == service
        ]
        if passing_only:
            records = [r for r in records if r.health is not Health.CRITICAL]
        return records

    def snapshot(self) -> dict[str, list[InstanceRecord]]:
        """Every instance, CRITICAL ones included, by service (services and instances sorted by name)."""
        self._check()
        t = self.now()
        out: dict[str, list[InstanceRecord]] = {}
        for service, name, entry in sorted((e.service, n, e) for n, e in self._entries.items()):
            out.setdefault(service, []).append(self._record(name, entry, t))
        return out

    # -- internals ---------------------------------------------------------------------------------

    def _check(self) -> None:
        """Refuse calls during an outage; otherwise sweep out what is due for removal."""
        if self._outages:
            raise RegistryUnavailable("registry unavailable")
        t = self.now()
        due = sorted(name for name, entry in self._entries.items() if self._expired(entry, t))
        for name in due:
            del self._entries[name]
            self._emit("expired", name)

    def _health(self, entry: _Entry, t: float) -> Health:
        age = t - entry.last_heartbeat
        if age <= self.config.warning_s:
            return Health.PASSING
        if age <= self.config.ttl_s:
            return Health.WARNING
        return Health.CRITICAL

    def _expired(self, entry: _Entry, t: float) -> bool:
        critical_for = (t - entry.last_heartbeat) - self.config.ttl_s
        return critical_for > 0 and critical_for >= self.config.deregister_critical_after_s

    def _record(self, name: str, entry: _Entry, t: float) -> InstanceRecord:
        return InstanceRecord(
            name, entry.service, entry.node, entry.registered_at, entry.last_heartbeat, self._health(entry, t)
        )

    def _emit(self, kind: str, instance: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, instance)


class Strategy(enum.Enum):
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"
    LEAST_OUTSTANDING = "least_outstanding"


@dataclass
class _View:
    fetched_at: float
    names: list[str]  # sorted
    expired: bool = False  # invalidated: refresh at the next resolve, fall back on it if that fails


class DiscoveryClient:
    """A client-side cache of the registry, refreshed every `refresh_s`: between refreshes it routes on
    a possibly stale view, as real clients do.

    `lookup` is normally `registry.instances`; it may raise RegistryUnavailable.
    A view is refreshed at the first `resolve` at least `refresh_s` after it
    was fetched. When that refresh fails the old view is used (`stale_uses`
    counts those resolutions) and the next `resolve` tries again. An empty
    answer is cached like any other.

    Strategies, all over the view sorted by name:
      ROUND_ROBIN        the next name after the last one picked for that service,
                         wrapping; stays fair when instances come and go.
      RANDOM             uniform, drawn from `rng` (required: determinism comes from the caller's seed).
      LEAST_OUTSTANDING  fewest requests between `started` and `finished`; ties rotate: among the
                         tied names, the next one after the last name picked for that service
                         (as ROUND_ROBIN), so sequential calls spread evenly.

    `calls` counts the requests reported by `started`, per instance.
    """

    def __init__(
        self,
        lookup: Callable[[str], list[InstanceRecord]],
        now: Callable[[], float],
        refresh_s: float = 1.0,
        strategy: Strategy = Strategy.ROUND_ROBIN,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not refresh_s >= 0:
            raise ConfigError(f"discovery refresh_s must be >= 0, not {refresh_s}")
        if strategy is Strategy.RANDOM and rng is None:
            raise ConfigError("discovery: the RANDOM strategy needs an rng (a seeded numpy Generator)")
        self.lookup = lookup
        self.now = now
        self.refresh_s = refresh_s
        self.strategy = strategy
        self.rng = rng
        self.refreshes = 0  # successful lookups
        self.stale_uses = 0  # resolutions routed on a view whose refresh failed
        self.resolutions = 0  # instance names handed out
        self._views: dict[str, _View] = {}
        self._last: dict[str, str] = {}  # round robin: last name picked, per service
        self._outstanding: dict[str, int] = {}
        self.calls: dict[str, int] = {}  # requests that went out, per instance

    def resolve(self, service: str) -> str:
        """An instance of `service` to call. NoInstance when the view is empty, or when there is no
        view at all because the registry is unavailable (the RegistryUnavailable is its cause)."""
        t = self.now()
        view = self._views.get(service)
        stale = False
        if view is None or view.expired or t - view.fetched_at >= self.refresh_s:
            try:
                records = self.lookup(service)
            except RegistryUnavailable as exc:
                if view is None:
                    raise NoInstance(f"discovery: no view of {service!r} and the registry is down") from exc
                stale = True
            else:
                view = _View(t, sorted(r.instance for r in records))
                self._views[service] = view
                self.refreshes += 1
        names = view.names
        if not names:
            raise NoInstance(f"discovery: no passing instance of {service!r}")
        name = self._pick(service, names)
        if stale:
            self.stale_uses += 1
        self.resolutions += 1
        return name

    def started(self, instance: str) -> None:
        """A request to `instance` went out (LEAST_OUTSTANDING bookkeeping, and `calls`)."""
        self._outstanding[instance] = self._outstanding.get(instance, 0) + 1
        self.calls[instance] = self.calls.get(instance, 0) + 1

    def finished(self, instance: str) -> None:
        """A request to `instance` ended, however it ended. TwinError without a matching `started`."""
        count = self._outstanding.get(instance, 0)
        if count <= 0:
            raise TwinError(f"discovery: finished({instance!r}) without a matching started()")
        if count == 1:
            del self._outstanding[instance]
        else:
            self._outstanding[instance] = count - 1

    def outstanding(self, instance: str) -> int:
        return self._outstanding.get(instance, 0)

    def invalidate(self, service: str | None = None) -> None:
        """Refresh `service`'s view (every view when None) at the next resolve. The old view stays as
        the fallback should the registry be down then."""
        for name, view in self._views.items():
            if service is None or name == service:
                view.expired = True

    def _pick(self, service: str, names: list[str]) -> str:
        if self.strategy is Strategy.RANDOM:
            assert self.rng is not None
            return names[int(self.rng.integers(len(names)))]
        if self.strategy is Strategy.LEAST_OUTSTANDING:
            outstanding = self._outstanding
            fewest = min(outstanding.get(n, 0) for n in names)
            names = [n for n in names if outstanding.get(n, 0) == fewest]
        last = self._last.get(service)
        name = next((n for n in names if last is None or n > last), names[0])
        self._last[service] = name
        return name
