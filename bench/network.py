"""Simulated messages per wall-clock second through the framework's messaging, against bare SimPy, in one run.

Every variant makes the same number of sequential round trips (request, then reply) and counts
2 messages per round trip; the rate is messages per second of wall time spent in env.run()
(building the objects is not timed).

  bare SimPy          two processes and two simpy.Store (requests, replies): the client puts a
                      request and waits on the reply store, the server gets it and puts it back.
                      Puts are not yielded (an unbounded Store takes them at once), as Bus does.
  bus, plain          twin.services.base.Bus: a client Instance ("gateway") on node A, an echo
                      Service ("planner", 3 replicas, processing time constant 0) on node B, a
                      link A--B with a lognormal latency (median 1 ms, sigma 0.3); round-robin
                      routing, no call policy, no discovery, no tracer.
  + breaker           the same with the CallPolicy of CallConfig {from: gateway, to: planner,
                      timeout_ms: 100, breaker: {window_size: 50, minimum_calls: 20}}: one
                      (closed) circuit breaker per replica judges every call.
  + discovery         the same plus a Discovery (registry on node B, heartbeats every 250 ms
                      simulated from all 4 instances, the client's across the link); calls are
                      routed through the client's cached view.
  + tracer (full)     the same plus a Tracer recording one span per call, as twin.run does.

The last two rows are the framework path the issue measures (links with latency models,
discovery, a closed breaker on every call), without and with tracing. Heartbeats are not
counted as messages; the table gives how many the registry received, per run. Variants run
interleaved, best of N (the highest rate over the repeats).

    python bench/network.py [--round-trips 20000] [--repeats 3] [--profile]

--profile then runs each framework variant once more under cProfile and prints the top 15
functions by own time (tottime).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy
from twin.services.base import Bus, Instance, Message, Service
from twin.services.registry import Discovery

from sim_models.network import ConstantLatency, LogNormalLatency, Network
from sim_models.rng import component_rng
from twin.observe.trace import Tracer
from twin.scenario.models import CallConfig, DiscoveryConfig
from twin.services.calls import build_policies

SEED = 1
REPLICAS = 3
TIMEOUT_S = 0.1
TARGET = 0.25  # framework rate / bare rate, from the issue
CALL = {
    "from": "gateway",
    "to": "planner",
    "timeout_ms": 100,
    "breaker": {"window_size": 50, "minimum_calls": 20},
}


@dataclass
class Run:
    messages: int  # request + reply messages (2 per round trip)
    wall_s: float  # wall time in env.run()
    sim_s: float  # simulated time at the end
    heartbeats: int = 0  # heartbeats the registry received (not in `messages`)

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s


# -- bare SimPy ---------------------------------------------------------------------------------------


def bare(round_trips: int) -> Run:
    """Store ping-pong: the least a SimPy request/reply between two processes does."""
    env = simpy.Environment()
    requests, replies = simpy.Store(env), simpy.Store(env)

    def server() -> Generator[simpy.Event, Any, None]:
        while True:
            message = yield requests.get()
            replies.put(message)

    def client() -> Generator[simpy.Event, Any, None]:
        for i in range(round_trips):
            requests.put(i)
            answer = yield replies.get()
            assert answer == i

    env.process(server())
    done = env.process(client())
    start = time.perf_counter()
    env.run(until=done)
    return Run(2 * round_trips, time.perf_counter() - start, env.now)


# -- the framework ------------------------------------------------------------------------------------


class Echo(Service):
    """Answers every request with its own body."""

    def handle(self, inst: Instance, message: Message) -> None:
        self.bus.reply(inst, message, message.body)
        return None


def build(breaker: bool, discovery: bool, tracer: bool) -> tuple[simpy.Environment, Bus, Instance]:
    env = simpy.Environment()
    network = Network(env, SEED)
    latency = LogNormalLatency(component_rng(SEED, "link:A--B"), 0.001, 0.3)  # median 1 ms
    network.add_link("A", "B", latency)
    bus = Bus(env, network)
    bus.tracer = Tracer() if tracer else None
    if breaker:
        bus.policies = build_policies([CallConfig.model_validate(CALL)], env, SEED)
    zero = ConstantLatency(component_rng(SEED, "service:gateway#0"), 0.0)
    client = Instance(env, "gateway", 0, "A", zero)
    bus.add(client)
    echo = Echo(bus)
    for k in range(REPLICAS):
        processing = ConstantLatency(component_rng(SEED, f"service:planner#{k}"), 0.0)
        inst = Instance(env, "planner", k, "B", processing)
        bus.add(inst)
        echo.replicas.append(inst)
    echo.start()
    if discovery:
        bus.discovery = Discovery(env, network, DiscoveryConfig(node="B", heartbeat_ms=250.0), SEED)
        bus.discovery.start([client, *echo.replicas])
    return env, bus, client


def framework(round_trips: int, breaker: bool, discovery: bool, tracer: bool) -> Run:
    env, bus, client = build(breaker, discovery, tracer)
    beats = [0]
    if bus.discovery is not None:  # count what the registry receives (a few hundred calls a run)
        registry = bus.discovery.registry
        heartbeat = registry.heartbeat

        def counted(name: str) -> bool:
            beats[0] += 1
            return heartbeat(name)

        registry.heartbeat = counted  # type: ignore[method-assign]

    def caller() -> Generator[simpy.Event, Any, None]:
        for i in range(round_trips):
            request = Message("ping", i, client.name, env.now)
            answer = yield from bus.request(client, "planner", request, TIMEOUT_S)
            assert answer.body == i

    done = env.process(caller())
    start = time.perf_counter()
    env.run(until=done)
    wall = time.perf_counter() - start
    stats = bus.call_stats[("gateway", "planner")]
    assert stats.calls == round_trips and stats.errors == 0, stats
    if breaker:
        policy = bus.policies[("gateway", "planner")]
        states = {b.state.name for b in policy.breakers.values()}
        assert states == {"CLOSED"} and len(policy.breakers) == REPLICAS, states
    if tracer:
        assert bus.tracer is not None and len(bus.tracer) == round_trips
    return Run(2 * round_trips, wall, env.now, beats[0])


VARIANTS: dict[str, Callable[[int], Run]] = {
    "bare SimPy (2 Stores)": bare,
    "bus, plain": lambda n: framework(n, breaker=False, discovery=False, tracer=False),
    "+ breaker": lambda n: framework(n, breaker=True, discovery=False, tracer=False),
    "+ discovery": lambda n: framework(n, breaker=True, discovery=True, tracer=False),
    "+ tracer (full)": lambda n: framework(n, breaker=True, discovery=True, tracer=True),
}
BARE = "bare SimPy (2 Stores)"
FRAMEWORK = ("+ discovery", "+ tracer (full)")  # the path, without and with tracing


def profile(name: str, round_trips: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    VARIANTS[name](round_trips)
    profiler.disable()
    print(f"\ncProfile of {name!r}, {round_trips} round trips, top 15 by tottime:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--round-trips", type=int, default=20000, help="round trips per run (default 20000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per variant (default 3)")
    parser.add_argument("--profile", action="store_true", help="then profile the framework variants")
    args = parser.parse_args()
    if args.round_trips < 1 or args.repeats < 1:
        parser.error("--round-trips and --repeats must be >= 1")
    for run in VARIANTS.values():  # warm-up: imports, first-call costs
        run(min(args.round_trips, 500))
    runs: dict[str, list[Run]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every variant
        for name, run in VARIANTS.items():
            runs[name].append(run(args.round_trips))
    best = {name: max(rs, key=lambda r: r.rate) for name, rs in runs.items()}
    base = best[BARE].rate
    print(
        f"{args.round_trips} sequential round trips per run (2 messages each), best of {args.repeats}; "
        "link A--B lognormal, median 1 ms, sigma 0.3"
    )
    print(
        f"  {'variant':<24}{'sim msgs/wall-s':>16}{'µs/round trip':>15}{'ratio':>8}"
        f"{'sim s':>8}{'heartbeats':>12}"
    )
    for name, r in best.items():
        beats = f"{r.heartbeats}" if r.heartbeats else "-"
        print(
            f"  {name:<24}{r.rate:>16,.0f}{2e6 / r.rate:>15.2f}{r.rate / base:>8.3f}"
            f"{r.sim_s:>8.2f}{beats:>12}"
        )
    for name in FRAMEWORK:
        ratio = best[name].rate / base
        verdict = "holds" if ratio >= TARGET else "NOT met"
        print(f"  target {name!r}: ratio {ratio:.3f} >= {TARGET}: {verdict}")
    print("  (rates count requests and replies only; heartbeats are what the registry received in that run)")
    if args.profile:
        for name in FRAMEWORK:
            profile(name, args.round_trips)


if __name__ == "__main__":
    main()
