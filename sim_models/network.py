"""The simulated network: latency distributions, lossy links between nodes.

A message between services on different nodes crosses the link joining the
nodes: with probability `loss` it is dropped, otherwise it is delivered after
a delay drawn from the link's latency distribution. Links behave like
datagrams: two messages may overtake each other. Each link draws from its own
generator, so adding a link never changes another link's draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from servo_core.errors import ConfigError
from sim_models.rng import component_rng

__all__ = [
    "ConstantLatency",
    "EmpiricalLatency",
    "Latency",
    "Link",
    "LinkSnapshot",
    "LogNormalLatency",
    "Network",
    "NormalLatency",
    "ScaledLatency",
    "Undo",
    "UniformLatency",
]


class Latency:
    """A delay distribution; `sample()` returns seconds."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def sample(self) -> float:
        raise NotImplementedError


class ScaledLatency(Latency):
    """Another distribution's delays times a factor (a link slower or faster than its kind)."""

    def __init__(self, inner: Latency, factor: float) -> None:
        super().__init__(inner.rng)
        self.inner, self.factor = inner, factor

    def sample(self) -> float:
        return self.inner.sample() * self.factor


class ConstantLatency(Latency):
    def __init__(self, rng: np.random.Generator, seconds: float) -> None:
        super().__init__(rng)
        self.seconds = seconds

    def sample(self) -> float:
        return self.seconds


class NormalLatency(Latency):
    """Normal, truncated at zero."""

    def __init__(self, rng: np.random.Generator, mean_s: float, std_s: float) -> None:
        super().__init__(rng)
        self.mean_s, self.std_s = mean_s, std_s

    def sample(self) -> float:
        return max(0.0, float(self.rng.normal(self.mean_s, self.std_s)))


class LogNormalLatency(Latency):
    def __init__(self, rng: np.random.Generator, median_s: float, sigma: float) -> None:
        super().__init__(rng)
        self.mu, self.sigma = math.log(median_s), sigma

    def sample(self) -> float:
        return float(self.rng.lognormal(self.mu, self.sigma))


class UniformLatency(Latency):
    def __init__(self, rng: np.random.Generator, low_s: float, high_s: float) -> None:
        super().__init__(rng)
        self.low_s, self.high_s = low_s, high_s

    def sample(self) -> float:
        return float(self.rng.uniform(self.low_s, self.high_s))


class EmpiricalLatency(Latency):
    """Draws uniformly among measured samples."""

    def __init__(self, rng: np.random.Generator, samples_s: Sequence[float]) -> None:
        super().__init__(rng)
        if len(samples_s) == 0:
            raise ConfigError("an empirical latency needs at least one sample")
        self.samples_s = list(samples_s)

    def sample(self) -> float:
        return self.samples_s[int(self.rng.integers(len(self.samples_s)))]


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    """A link's counters at one moment: messages offered, messages dropped, delays drawn (s)."""

    name: str
    messages: int
    drops: int
    latencies_s: tuple[float, ...]


Undo = Callable[[], None]


class Link:
    """An undirected link between two nodes.

    Faults act through `partition`, `add_latency` and `set_loss`; each returns
    an undo callable (calling it again does nothing). Faults may overlap and be
    undone in any order:

    - partitions nest: the link is down while any partition is not undone;
    - extra latencies add up;
    - loss overrides do not combine: the most recently set one that is still in
      force applies, and undoing it brings back the one set before it (or the
      link's own `loss` when none is left).
    """

    __slots__ = (
        "name",
        "latency",
        "_loss",
        "_rng",
        "_messages",
        "_drops",
        "_latencies",
        "_partitions",
        "_loss_faults",
        "_latency_faults",
        "_loss_now",
        "_extra_s",
    )

    def __init__(self, name: str, latency: Latency, loss: float, rng: np.random.Generator) -> None:
        _check_loss(name, loss)
        self.name = name
        self.latency = latency
        self._loss = loss
        self._rng = rng
        self._messages = 0
        self._drops = 0
        self._latencies: list[float] = []
        self._partitions = 0
        # Active faults as one-element lists: identity tells two equal values apart on undo.
        self._loss_faults: list[list[float]] = []
        self._latency_faults: list[list[float]] = []
        # What draw() uses, recomputed when a fault changes rather than per message.
        self._loss_now = loss
        self._extra_s = 0.0

    # -- the message path ----------------------------------------------------------------------

    def draw(self) -> float | None:
        """Delay for one message (s), or None when the message is lost."""
        self._messages += 1
        loss = self._loss_now
        if self._partitions or (loss > 0.0 and self._rng.random() < loss):
            self._drops += 1
            return None
        delay = self.latency.sample() + self._extra_s
        self._latencies.append(delay)
        return delay

    # -- state, read only ----------------------------------------------------------------------

    @property
    def loss(self) -> float:
        """The link's own loss probability, faults aside."""
        return self._loss

    @property
    def effective_loss(self) -> float:
        """The loss probability in force now (a loss fault's, else the link's own)."""
        return self._loss_now

    @property
    def partitioned(self) -> bool:
        return self._partitions > 0

    @property
    def extra_latency_s(self) -> float:
        """Added to every delay by the latency faults in force."""
        return self._extra_s

    def snapshot(self) -> LinkSnapshot:
        return LinkSnapshot(self.name, self._messages, self._drops, tuple(self._latencies))

    # -- faults --------------------------------------------------------------------------------

    def partition(self) -> Undo:
        """Lose every message until undone (and until every other partition is undone too)."""
        self._partitions += 1
        done = False

        def heal() -> None:
            nonlocal done
            if not done:
                done = True
                self._partitions -= 1

        return heal

    def add_latency(self, extra_s: float) -> Undo:
        """Add `extra_s` seconds to every delay until undone."""
        if not (math.isfinite(extra_s) and extra_s >= 0.0):
            raise ConfigError(f"link {self.name}: extra latency must be finite and >= 0 s, got {extra_s}")
        return self._push(self._latency_faults, extra_s)

    def set_loss(self, loss: float) -> Undo:
        """Lose messages with probability `loss` instead, until undone (see the class docstring)."""
        _check_loss(self.name, loss)
        return self._push(self._loss_faults, loss)

    def _push(self, faults: list[list[float]], value: float) -> Undo:
        entry = [value]
        faults.append(entry)
        self._recompute()

        def undo() -> None:
            for k, e in enumerate(faults):
                if e is entry:
                    del faults[k]
                    self._recompute()
                    return

        return undo

    def _recompute(self) -> None:
        self._loss_now = self._loss_faults[-1][0] if self._loss_faults else self._loss
        self._extra_s = math.fsum(e[0] for e in self._latency_faults)


def _check_loss(name: str, loss: float) -> None:
    if not 0.0 <= loss <= 1.0:
        raise ConfigError(f"link {name}: loss must be within 0..1, got {loss}")


class Network:
    """Nodes joined by links, on one SimPy environment."""

    def __init__(self, env: simpy.Environment, seed: int) -> None:
        self.env = env
        self.seed = seed
        self.links: dict[frozenset[str], Link] = {}

    @staticmethod
    def link_name(a: str, b: str) -> str:
        x, y = sorted((a, b))
        return f"{x}--{y}"

    def add_link(self, a: str, b: str, latency: Latency, loss: float = 0.0) -> Link:
        """Join nodes a and b. The loss draws use the link's own generator."""
        if a == b:
            raise ConfigError(f"a link joins two different nodes, got {a!r} twice")
        key = frozenset((a, b))
        name = self.link_name(a, b)
        if key in self.links:
            raise ConfigError(f"duplicate link {name}")
        link = Link(name, latency, loss, component_rng(self.seed, f"link-loss:{name}"))
        self.links[key] = link
        return link

    def route(self, a: str, b: str) -> Link | None:
        return None if a == b else self.links.get(frozenset((a, b)))

    def snapshot(self) -> dict[str, LinkSnapshot]:
        """Every link's counters, by link name (sorted)."""
        links = sorted(self.links.values(), key=lambda link: link.name)
        return {link.name: link.snapshot() for link in links}

    def deliver(self, src_node: str, dst_node: str, callback: Callable[[Any], None], message: Any) -> bool:
        """Carry `message` to `callback` across the network. False when it was dropped."""
        if src_node == dst_node:
            callback(message)
            return True
        link = self.links.get(frozenset((src_node, dst_node)))
        if link is None:
            raise ConfigError(f"no link between nodes {src_node!r} and {dst_node!r}")
        delay = link.draw()
        if delay is None:
            return False
        event = self.env.timeout(delay)
        event.callbacks.append(lambda _event: callback(message))
        return True
