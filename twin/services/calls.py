"""Service-to-service calls with resilience patterns, routed through discovery.

A call from one service to another is composed, outermost first, as

    retry( breaker( bulkhead( timeout( request ) ) ) )

so a retry may pick another replica after a breaker refused one, a breaker
judges each attempt, and a timed-out attempt gives its bulkhead slot back.
There is one breaker per callee replica, and routing skips replicas whose
breaker is open: one slow replica is cut out while its siblings carry on.
A callee that answers with an error (e.g. a refused plan) is healthy: that
counts as a success for its breaker and is never retried.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim_models.rng import component_rng
from twin.patterns.breaker import BreakerConfig, CircuitBreaker, WindowType
from twin.patterns.bulkhead import Bulkhead, BulkheadFull
from twin.patterns.retry import Retry, RetryConfig
from twin.scenario.models import CallConfig


@dataclass
class CallStats:
    """What one caller service saw of one callee service."""

    calls: int = 0
    errors: int = 0  # calls that failed after all their attempts
    attempts: int = 0
    retries: int = 0
    rejected: int = 0  # attempts refused by an open breaker or a full bulkhead
    timeouts: int = 0
    latency_s: list[float] = field(default_factory=list)  # successful calls, all attempts included


class CallPolicy:
    """The patterns on calls from `caller` to `callee`, built from the scenario."""

    def __init__(
        self, config: CallConfig, env: simpy.Environment, seed: int, on_transition: Any = None
    ) -> None:
        self.config = config
        self.env = env
        self.on_transition = on_transition  # (breaker name, Transition) for traces
        self.timeout_s = None if config.timeout_ms is None else config.timeout_ms / 1000.0
        name = f"{config.caller}_to_{config.callee}"
        self.name = name
        self.retry: Retry | None = None
        if config.retry is not None:
            r = config.retry
            from twin.patterns.breaker import CallNotPermitted
            from twin.services.base import RequestTimeout  # noqa: PLC0415  (base imports this module)

            retry_config = RetryConfig(
                max_attempts=r.max_attempts,
                wait_s=r.wait_ms / 1000.0,
                multiplier=r.multiplier,
                max_wait_s=float("inf") if r.max_wait_ms is None else r.max_wait_ms / 1000.0,
                randomization_factor=r.randomization,
                retry_on=(RequestTimeout, CallNotPermitted, BulkheadFull),
            )
            self.retry = Retry(env, retry_config, component_rng(seed, f"retry:{name}"), name=name)
        self.breaker_config: BreakerConfig | None = None
        if config.breaker is not None:
            b = config.breaker
            self.breaker_config = BreakerConfig(
                window_type=WindowType.COUNT_BASED if b.window == "count" else WindowType.TIME_BASED,
                window_size=b.window_size,
                minimum_calls=b.minimum_calls,
                failure_rate_threshold=b.failure_rate,
                slow_call_rate_threshold=b.slow_call_rate,
                slow_call_duration_s=b.slow_call_ms / 1000.0,
                wait_in_open_s=b.wait_in_open_ms / 1000.0,
                automatic_half_open=b.automatic_half_open,
                permitted_calls_in_half_open=b.half_open_calls,
                max_wait_in_half_open_s=b.max_wait_in_half_open_ms / 1000.0,
            )
        self.breakers: dict[str, CircuitBreaker] = {}
        self.bulkhead: Bulkhead | None = None
        if config.bulkhead is not None:
            self.bulkhead = Bulkhead(
                env, config.bulkhead.max_concurrent, config.bulkhead.max_wait_ms / 1000.0, name=name
            )

    def breaker(self, instance: str) -> CircuitBreaker | None:
        if self.breaker_config is None:
            return None
        breaker = self.breakers.get(instance)
        if breaker is None:
            env = self.env
            name = f"{self.name}:{instance}"
            hook = self.on_transition
            breaker = CircuitBreaker(
                name,
                self.breaker_config,
                lambda: env.now,
                on_transition=None if hook is None else (lambda tr: hook(self.config, instance, tr)),
            )
            self.breakers[instance] = breaker
        return breaker

    def open(self, instance: str) -> bool:
        """Whether routing should avoid `instance` (its breaker refuses calls now)."""
        breaker = self.breakers.get(instance)
        return breaker is not None and breaker.rejects_calls()


def build_policies(
    configs: list[CallConfig], env: simpy.Environment, seed: int, on_transition: Any = None
) -> dict[tuple[str, str], CallPolicy]:
    return {(c.caller, c.callee): CallPolicy(c, env, seed, on_transition) for c in configs}


def new_call_stats() -> defaultdict[tuple[str, str], CallStats]:
    return defaultdict(CallStats)
