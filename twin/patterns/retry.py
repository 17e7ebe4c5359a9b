"""Retry with exponential backoff and jitter, waiting on the runtime's clock.

``result = yield from retry.call(lambda: bus.request(...))`` makes up to
``max_attempts`` attempts. After the k-th failure (k = 1, 2, ...) it waits
``min(wait_s * multiplier**(k-1), max_wait_s)``, spread uniformly over
``[w*(1-f), w*(1+f)]`` with f = ``randomization_factor``, drawn from the
generator it was given (so a seeded run retries at the same instants).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import simpy

from servo_core.errors import ConfigError, TwinError
from twin.patterns.timeouts import CallFactory, EventSink, emit, require_duration

__all__ = ["Retry", "RetryConfig", "RetrySnapshot", "T"]

T = TypeVar("T")

# Never retried, whatever retry_on says: an interrupted process must stop.
_NEVER_RETRIED = (simpy.Interrupt, GeneratorExit, KeyboardInterrupt, SystemExit)


def _exception_types(value: Any, what: str) -> tuple[type[BaseException], ...]:
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, tuple) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    ):
        raise ConfigError(f"{what} must be a tuple of exception types, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RetryConfig:
    max_attempts: int = 3  # attempts in all, the first one included
    wait_s: float = 0.5  # wait after the first failure
    multiplier: float = 1.0  # exponential backoff factor (>= 1)
    max_wait_s: float = math.inf  # cap on the wait, before jitter
    randomization_factor: float = 0.0  # jitter, in [0, 1)
    retry_on: tuple[type[BaseException], ...] = (TwinError,)
    ignore: tuple[type[BaseException], ...] = ()  # never retried, even if in retry_on

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigError(f"max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        object.__setattr__(self, "wait_s", require_duration(self.wait_s, "wait_s", allow_inf=False))
        object.__setattr__(self, "max_wait_s", require_duration(self.max_wait_s, "max_wait_s"))
        multiplier = self.multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
            raise ConfigError(f"multiplier must be a number, got {multiplier!r}")
        if not (math.isfinite(multiplier) and multiplier >= 1.0):
            raise ConfigError(f"multiplier must be finite and >= 1, got {multiplier!r}")
        object.__setattr__(self, "multiplier", float(multiplier))
        f = self.randomization_factor
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f < 1.0:
            raise ConfigError(f"randomization_factor must be in [0, 1), got {f!r}")
        object.__setattr__(self, "randomization_factor", float(f))
        object.__setattr__(self, "retry_on", _exception_types(self.retry_on, "retry_on"))
        object.__setattr__(self, "ignore", _exception_types(self.ignore, "ignore"))

    def base_wait(self, failures: int) -> float:
        """The wait after the `failures`-th failure (1-based), capped, before jitter."""
        try:
            wait = self.wait_s * self.multiplier ** (failures - 1)
        except OverflowError:
            wait = math.inf
        return min(wait, self.max_wait_s)


@dataclass(frozen=True)
class RetrySnapshot:
    name: str
    calls: int
    successful_without_retry: int
    successful_with_retry: int
    failed_without_retry: int
    failed_with_retry: int
    retries: int
    waits_s: tuple[float, ...]  # each wait before a retry, in order


class Retry:
    """Retries failed calls; counters and `waits` for metrics and tests."""

    def __init__(
        self,
        env: simpy.Environment,
        config: RetryConfig,
        rng: np.random.Generator,
        name: str = "",
        on_event: EventSink | None = None,
    ) -> None:
        if not isinstance(config, RetryConfig):
            raise ConfigError(f"config must be a RetryConfig, got {config!r}")
        self.env = env
        self.config = config
        self.rng = rng
        self.name = name or "retry"
        self.on_event = on_event
        self.calls = 0
        self.successful_without_retry = 0
        self.successful_with_retry = 0
        self.failed_without_retry = 0
        self.failed_with_retry = 0
        self.retries = 0
        self.waits: list[float] = []

    def snapshot(self) -> RetrySnapshot:
        return RetrySnapshot(
            self.name,
            self.calls,
            self.successful_without_retry,
            self.successful_with_retry,
            self.failed_without_retry,
            self.failed_with_retry,
            self.retries,
            tuple(self.waits),
        )

    def retryable(self, error: BaseException) -> bool:
        if isinstance(error, _NEVER_RETRIED + self.config.ignore):
            return False
        return isinstance(error, self.config.retry_on)

    def next_wait(self, failures: int) -> float:
        """The wait after the `failures`-th failure, jitter drawn (consumes one draw when f > 0)."""
        wait = self.config.base_wait(failures)
        f = self.config.randomization_factor
        if f > 0.0 and wait > 0.0 and math.isfinite(wait):
            wait = float(self.rng.uniform(wait * (1.0 - f), wait * (1.0 + f)))
        return wait

    def call(self, factory: CallFactory[T]) -> Generator[simpy.Event, Any, T]:
        """``result = yield from retry.call(factory)``; the last error is re-raised as it was."""
        self.calls += 1
        attempt = 0
        while True:
            attempt += 1
            try:
                result = yield from factory()
            except BaseException as error:
                if not self.retryable(error) or attempt >= self.config.max_attempts:
                    if attempt == 1:
                        self.failed_without_retry += 1
                    else:
                        self.failed_with_retry += 1
                    kind = "exhausted" if self.retryable(error) else "not_retryable"
                    if not isinstance(error, _NEVER_RETRIED):
                        emit(self.on_event, self.env, self.name, kind, f"attempt {attempt}: {error!r}")
                    raise
                wait = self.next_wait(attempt)
                self.retries += 1
                self.waits.append(wait)
                emit(
                    self.on_event,
                    self.env,
                    self.name,
                    "retry",
                    f"attempt {attempt} failed ({error!r}); next in {wait * 1000:.0f} ms",
                )
            else:
                if attempt == 1:
                    self.successful_without_retry += 1
                else:
                    self.successful_with_retry += 1
                    emit(self.on_event, self.env, self.name, "success", f"after {attempt} attempts")
                return result
            # Waited outside the except block, so an interrupt here does not chain the old error.
            yield self.env.timeout(wait)
