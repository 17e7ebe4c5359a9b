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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from sim_models.errors import ConfigError
from sim_models.rng import component_rng


class Latency:
    """A delay distribution; `sample()` returns seconds."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def sample(self) -> float:
        raise NotImplementedError


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


@dataclass
class LinkStats:
    messages: int = 0
    drops: int = 0
    latencies_s: list[float] = field(default_factory=list)


class Link:
    """An undirected link between two nodes."""

    def __init__(self, name: str, latency: Latency, loss: float, rng: np.random.Generator) -> None:
        if not 0.0 <= loss <= 1.0:
            raise ConfigError(f"link {name}: loss must be within 0..1, got {loss}")
        self.name = name
        self.latency = latency
        self.loss = loss
        self.rng = rng
        self.stats = LinkStats()
        # Fault injection: while set, these override the link's own behaviour.
        self.partitioned = False
        self.fault_loss: float | None = None
        self.fault_extra_s = 0.0

    def draw(self) -> float | None:
        """Delay for one message (s), or None when the message is lost."""
        self.stats.messages += 1
        loss = self.loss if self.fault_loss is None else self.fault_loss
        if self.partitioned or (loss > 0.0 and self.rng.random() < loss):
            self.stats.drops += 1
            return None
        delay = self.latency.sample() + self.fault_extra_s
        self.stats.latencies_s.append(delay)
        return delay


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
