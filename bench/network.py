"""Simulated messages per wall-clock second through the framework's messaging, against bare SimPy, in one run.

Every variant makes the same number of sequential round trips (request, then reply) and counts
2 messages per round trip; the rate is messages per second of wall time spent in env.run()
(building the objects is not timed).

  bare SimPy          two processes and two simpy.Store (requests, replies): the client puts a
                      request and waits on the reply store, the server gets it and puts it back.
                      Puts are not yielded (an unbounded Store takes them at once), as the
                      message bus does.
  bus, plain          the path of every service call, wired by hand as twin.assembly.build does:
                      a client Replica ("gateway") on node A calls CallPipeline.request, which
                      routes round robin to one of 3 "planner" replicas on node B (processing
                      time constant 0); MessageBus.exchange sends the request across a link A--B
                      with a lognormal latency (median 1 ms, sigma 0.3) into the replica's inbox;
                      twin.services.hosting.serve takes it from there (deadline check, dispatch to
                      an @handles("ping") handler of an Echo Service) and MessageBus.reply sends
                      the answer back across the link. No call policy, no discovery, no tracer.
  + breaker           the same with the CallPolicy of CallConfig {from: gateway, to: planner,
                      timeout_ms: 100, breaker: {window_size: 50, minimum_calls: 20}} (turned
                      into CallSettings by twin.assembly.call_settings): one (closed) circuit
                      breaker per replica judges every call.
  + discovery         the same plus a Discovery (registry on node B, heartbeats every 250 ms
                      simulated from all 4 replicas, the client's across the link); calls are
                      routed through the client's cached view (CallPipeline's discovery client).
  + tracer (full)     the same plus a Tracer on the MessageBus recording one span per hop (with
                      its outcome), and the heartbeats as messages, as twin.run does.

The last two rows are the framework path the issue measures (links with latency models,
discovery, a closed breaker on every call), without and with tracing. Heartbeats are not
counted as messages; the table gives how many the registry received, per run. Variants run
interleaved, best of N (the highest rate over the repeats); the spread column gives the
lowest and highest ratio to bare SimPy over the repeats (each repeat against its own bare run).

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

from sim_models.network import ConstantLatency, LogNormalLatency, Network
from sim_models.rng import component_rng
from twin.assembly import call_settings, heartbeat_tracer
from twin.observe.trace import Tracer
from twin.patterns.discovery_service import Discovery, DiscoverySettings
from twin.patterns.eventbus import EventBus
from twin.scenario.models import CallConfig
from twin.services.api import MachineInfo, Message, Service, ServiceParams, handles
from twin.services.calls import CallPipeline, CallPolicy
from twin.services.hosting import EventHub, Hosting, ReplicaContext, serve
from twin.services.messaging import MessageBus
from twin.services.replica import Replica

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


class Echo(Service[ServiceParams]):
    """Answers every request with its own body."""

    @handles("ping")
    def ping(self, request: Message) -> Any:
        return request.body


@dataclass
class World:
    env: simpy.Environment
    calls: CallPipeline
    policies: dict[tuple[str, str], CallPolicy]
    tracer: Tracer | None
    client: Replica
    beats: list[int]  # [heartbeats that reached the registry]


def build(breaker: bool, discovery: bool, tracer: bool) -> World:
    """A gateway replica on A and three Echo planner replicas on B, wired as twin.assembly does."""
    env = simpy.Environment()
    network = Network(env, SEED)
    latency = LogNormalLatency(component_rng(SEED, "link:A--B"), 0.001, 0.3)  # median 1 ms
    network.add_link("A", "B", latency)
    trace = Tracer() if tracer else None
    messages = MessageBus(env, network, trace)
    policies: dict[tuple[str, str], CallPolicy] = {}
    if breaker:
        settings = call_settings(CallConfig.model_validate(CALL))
        policies[(settings.caller, settings.callee)] = CallPolicy(settings, env, SEED)
    beats = [0]
    registry: Discovery | None = None
    if discovery:
        # twin.run traces every heartbeat as a message; count those that reach the registry.
        traced = heartbeat_tracer(trace) if trace is not None else None

        def on_heartbeat(
            instance: str, node: str, registry_node: str, sent: float, arrived: float | None, outcome: str
        ) -> None:
            if arrived is not None:
                beats[0] += 1
            if traced is not None:
                traced(instance, node, registry_node, sent, arrived, outcome)

        settings_d = DiscoverySettings(node="B", heartbeat_s=0.25)
        registry = Discovery(env, network, settings_d, SEED, on_heartbeat=on_heartbeat)
    calls = CallPipeline(messages, policies, None if registry is None else registry.client)
    hub = EventHub(EventBus(env, network.deliver), {}, {})
    hosting = Hosting(env, SEED, messages, calls, hub, trace, MachineInfo())
    hosting.service_classes["planner"] = Echo
    client = Replica(env, "gateway", 0, "A", ConstantLatency(component_rng(SEED, "service:gateway#0"), 0.0))
    messages.add(client)
    echoes: list[tuple[ReplicaContext[Any], Echo]] = []
    for k in range(REPLICAS):
        processing = ConstantLatency(component_rng(SEED, f"service:planner#{k}"), 0.0)
        replica = Replica(env, "planner", k, "B", processing)
        messages.add(replica)
        ctx: ReplicaContext[Any] = ReplicaContext(hosting, replica, ServiceParams(), None, TIMEOUT_S)
        echoes.append((ctx, Echo(ctx)))
    if registry is not None:
        registry.start([client, *(ctx.replica for ctx, _ in echoes)])
    for ctx, echo in echoes:
        env.process(serve(ctx, echo, hosting))
        echo.start()
    return World(env, calls, policies, trace, client, beats)


def framework(round_trips: int, breaker: bool, discovery: bool, tracer: bool) -> Run:
    world = build(breaker, discovery, tracer)
    env, calls, client = world.env, world.calls, world.client

    def caller() -> Generator[simpy.Event, Any, None]:
        for i in range(round_trips):
            request = Message("ping", i, client.name, env.now)
            answer = yield from calls.request(client, "planner", request, TIMEOUT_S)
            assert answer.body == i

    done = env.process(caller())
    start = time.perf_counter()
    env.run(until=done)
    wall = time.perf_counter() - start
    (stats,) = calls.snapshot()
    assert (stats.caller, stats.callee) == ("gateway", "planner"), stats
    assert stats.calls == stats.attempts == round_trips and stats.errors == 0, stats
    if breaker:
        policy = world.policies[("gateway", "planner")]
        states = {b.state.name for b in policy.breakers.values()}
        assert states == {"CLOSED"} and len(policy.breakers) == REPLICAS, states
    if tracer:
        assert world.tracer is not None and len(world.tracer) == round_trips + world.beats[0]
    return Run(2 * round_trips, wall, env.now, world.beats[0])


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
    # each repeat's ratio against the bare run of the same repeat: how much the load moved them
    spread = {
        name: [r.rate / b.rate for r, b in zip(rs, runs[BARE], strict=True)] for name, rs in runs.items()
    }
    print(
        f"{args.round_trips} sequential round trips per run (2 messages each), best of {args.repeats}; "
        "link A--B lognormal, median 1 ms, sigma 0.3"
    )
    print(
        f"  {'variant':<24}{'sim msgs/wall-s':>16}{'µs/round trip':>15}{'ratio':>8}"
        f"{'per-repeat':>14}{'sim s':>8}{'heartbeats':>12}"
    )
    for name, r in best.items():
        beats = f"{r.heartbeats}" if r.heartbeats else "-"
        lo, hi = min(spread[name]), max(spread[name])
        print(
            f"  {name:<24}{r.rate:>16,.0f}{2e6 / r.rate:>15.2f}{r.rate / base:>8.3f}"
            f"{f'{lo:.2f}-{hi:.2f}':>14}{r.sim_s:>8.2f}{beats:>12}"
        )
    for name in FRAMEWORK:
        ratio = best[name].rate / base
        verdict = "holds" if ratio >= TARGET else "NOT met"
        print(f"  target {name!r}: ratio {ratio:.3f} >= {TARGET}: {verdict}")
    print(
        "  (rates count requests and replies only; ratio is best over best; per-repeat is the lowest and\n"
        "   highest ratio of a repeat to that repeat's bare run; heartbeats are what the registry received)"
    )
    if args.profile:
        for name in FRAMEWORK:
            profile(name, args.round_trips)


if __name__ == "__main__":
    main()
