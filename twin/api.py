"""The Python API: load a scenario, run it, look at the result."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim_models.errors import ConfigError
from twin.observe.files import write_text_atomic
from twin.observe.metrics import (
    BUS_COUNTERS,
    CALL_PATHS,
    RunData,
    breaker_name,
    build_metrics,
    call_name,
    measured,
)
from twin.observe.report import AssertionOutcome, write_report
from twin.observe.telemetry import Telemetry
from twin.runtime import Machine, build
from twin.scenario import load_scenario
from twin.scenario.models import Scenario

Progress = Callable[[float, float], None]


@dataclass
class RunResult:
    """What a run measured. `metrics` is the dict written to metrics.json."""

    scenario: Scenario
    seed: int
    metrics: dict[str, Any]
    telemetry: Telemetry
    assertions: list[AssertionOutcome]
    latency_samples_ms: dict[str, list[float]]
    frames: Any = None  # a GifRecorder when the run was rendered
    run_dir: Path | None = None
    error: str = ""  # why the run could not go on (a bus lost mid-run), "" when it could
    tracer: Any = None  # the Tracer with one span per hop, written as trace.json
    breaker_timelines: dict[str, list[tuple[float, str]]] | None = None  # breaker -> (t, state)
    topology: Any = None  # (nodes, service -> node) for the topology picture

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.assertions)

    @property
    def failures(self) -> list[AssertionOutcome]:
        return [a for a in self.assertions if not a.passed]

    def plot(self, kind: str = "tracking") -> Any:
        """The plot as an image ('tracking', 'error' or 'latency'); shows inline in notebooks."""
        from twin.observe import plots

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "plot.png"
            if kind == "tracking":
                plots.plot_tracking(self.telemetry, path, self.scenario.name)
            elif kind == "error":
                plots.plot_tracking_error(self.telemetry, path, self.scenario.name)
            elif kind == "latency":
                plots.plot_latency(self.latency_samples_ms, path, self.scenario.name)
            else:
                raise ValueError(f"unknown plot {kind!r}; choose tracking, error or latency")
            from PIL import Image

            return Image.open(path).copy()

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write metrics.json, telemetry.csv, plots and report.md into out_dir."""
        from twin.observe import plots

        run_dir = Path(out_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "metrics.json", json.dumps(self.metrics, indent=2, sort_keys=True) + "\n")
        self.telemetry.to_csv(run_dir / "telemetry.csv")
        images: list[Path] = []
        if self.scenario.outputs.plots:
            name = self.scenario.name
            images.append(plots.plot_tracking(self.telemetry, run_dir / "tracking.png", name))
            images.append(plots.plot_tracking_error(self.telemetry, run_dir / "tracking_error.png", name))
            images.append(plots.plot_latency(self.latency_samples_ms, run_dir / "latency.png", name))
            if self.topology is not None:
                images.append(self._topology_png(run_dir / "topology.png"))
            if self.breaker_timelines:
                path = run_dir / "breakers.png"
                images.append(plots.plot_breakers(self.breaker_timelines, self.scenario.duration, path, name))
        if self.frames is not None and len(self.frames):
            images.append(self.frames.save(run_dir / "robot.gif"))
        extra = [run_dir / "metrics.json", run_dir / "telemetry.csv"]
        if self.tracer is not None:
            extra.append(self.tracer.write(run_dir / "trace.json"))
        write_report(
            run_dir,
            f"{self.scenario.name} (seed {self.seed})",
            self.metrics,
            self.assertions,
            images,
            extra_files=extra,
        )
        self.run_dir = run_dir
        return run_dir

    def _topology_png(self, path: Path) -> Path:
        from twin.observe.topology import CallStats, plot_topology

        nodes, placement = self.topology
        calls = {}
        for caller, callee in CALL_PATHS:
            m = self.metrics["calls"][call_name(caller, callee)]
            calls[(caller, callee)] = CallStats(m["calls"], m["errors"], m["latency"]["p99_ms"])
        return plot_topology(nodes, placement, calls, path, self.scenario.name)


def load(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Scenario:
    """Load and validate a scenario file. Raises ScenarioError listing every problem."""
    return load_scenario(path, overrides)


def run(
    scenario: Scenario | str | os.PathLike[str],
    seed: int | None = None,
    *,
    progress: Progress | None = None,
    render: bool = False,
    bus: str | None = None,
) -> RunResult:
    """Run a scenario and measure it: on virtual time against the twin, or with `bus`
    (a URL such as dynamixel:///dev/ttyUSB0) on the wall clock against that bus."""
    if not isinstance(scenario, Scenario):
        scenario = load(scenario)
    if bus is not None and render:
        raise ConfigError("--render draws the twin's robot; with --bus the servos are real")
    machine = build(scenario, seed, bus)
    try:
        recorder = _start_recorder(machine) if (render or scenario.outputs.render) else None
        _run_clock(machine, progress)
        return _collect(machine, recorder)
    finally:
        machine.close()


def _run_clock(machine: Machine, progress: Progress | None) -> None:
    env, duration = machine.env, machine.scenario.duration
    chunks = 100 if progress is not None else 1
    for k in range(1, chunks + 1):
        env.run(until=duration * k / chunks)
        if machine.plant is not None:
            machine.plant.advance_to(env.now)
        if progress is not None:
            progress(env.now, duration)


def _start_recorder(machine: Machine) -> Any:
    from twin.observe.render import GifRecorder

    cfg = machine.scenario.outputs.render
    kw = {"width": cfg.width, "height": cfg.height, "fps": cfg.fps} if cfg else {}
    recorder = GifRecorder(machine.plant.client, machine.plant.body, **kw)

    def capture():  # type: ignore[no-untyped-def]
        while True:
            machine.plant.advance_to(machine.env.now)
            recorder.capture()
            yield machine.env.timeout(recorder.frame_interval_s)

    machine.env.process(capture())
    return recorder


def _collect(machine: Machine, recorder: Any) -> RunResult:
    sc = machine.scenario
    tel = machine.telemetry.telemetry()
    _, goal, actual = tel.arrays()
    d = machine.driver.stats
    data = RunData(
        name=sc.name,
        seed=machine.seed,
        duration_s=sc.duration,
        dt_s=sc.physics.dt_s,
        joints=[j.name for j in machine.joints],
        goal=goal,
        actual=actual,
        command_latency_s=d.command_latency_s,
        links={
            link.name: (link.stats.messages, link.stats.drops, link.stats.latencies_s)
            for link in machine.network.links.values()
        },
        driver_period_s=machine.driver.period_s,
        driver_cycles=d.cycles,
        deadline_misses=d.deadline_misses,
        skipped_periods=d.skipped_periods,
        cycle_work_s=d.cycle_work_s,
        clipped_goals=d.clipped_goals,
        bus_errors=d.bus_errors,
        commands_sent=len(machine.operator.outcomes),
        commands_completed=sum(o.ok for o in machine.operator.outcomes),
        commands_pending=sum(o.reply_s is None for o in machine.operator.outcomes),
        planner_stretched=machine.planner.stretched,
        planner_refused=machine.planner.refused,
        servos={
            j.servo_id: (
                d.max_temperature_c.get(j.servo_id, math.nan),
                _fault_names(d.faults.get(j.servo_id, 0)),
            )
            for j in machine.joints
        },
        services={
            svc: (
                sum(i.stats.handled for i in machine.instances if i.service == svc),
                sum(i.stats.errors for i in machine.instances if i.service == svc),
                max(i.stats.max_queue for i in machine.instances if i.service == svc),
                sum(i.stats.expired for i in machine.instances if i.service == svc),
                sum(i.stats.lost for i in machine.instances if i.service == svc),
            )
            for svc in sorted({i.service for i in machine.instances})
        },
        physics_steps=machine.plant.steps if machine.plant is not None else 0,
        lateness_s=getattr(machine.env, "lateness_s", []),
        failed_servos=len(d.failed_servos),
        halted=bool(machine.driver.halted),
        bus_counters=_bus_counters(machine.driver.servo_bus),
        faults_injected=machine.faults_injected,
        updates_completed=machine.updates_completed,
        events=_events(machine),
        driver_blocked=d.blocked,
        gateway_unauthorized=machine.gateway.unauthorized,
        gateway_rate_limited=machine.gateway.rate_limited,
        calls=_calls(machine),
        breakers=_breakers(machine),
        discovery=_discovery(machine),
    )
    metrics = build_metrics(data)
    outcomes = []
    for assertion in sc.assertions:
        value = measured(metrics, assertion.path)
        outcomes.append(AssertionOutcome(str(assertion), value, assertion.holds(value)))
    samples = {"command": [x * 1000.0 for x in d.command_latency_s]}
    for link in machine.network.links.values():
        samples[f"link {link.name}"] = [x * 1000.0 for x in link.stats.latencies_s]
    placement = {svc.type: svc.node for svc in sc.topology.services}
    return RunResult(
        sc,
        machine.seed,
        metrics,
        tel,
        outcomes,
        samples,
        recorder,
        error=machine.driver.lost,
        tracer=machine.bus.tracer,
        breaker_timelines=_breaker_timelines(machine),
        topology=([n.name for n in sc.topology.nodes], placement),
    )


def _calls(machine: Machine) -> dict[str, tuple[int, int, int, int, int, int, list[float]]]:
    out = {}
    for caller, callee in CALL_PATHS:
        c = machine.bus.call_stats[(caller, callee)]
        out[call_name(caller, callee)] = (
            c.calls,
            c.errors,
            c.attempts,
            c.retries,
            c.rejected,
            c.timeouts,
            c.latency_s,
        )
    return out


def _breakers(machine: Machine) -> dict[str, tuple[int, int, float]]:
    out = {}
    end = machine.env.now
    for (caller, callee), policy in machine.bus.policies.items():
        if policy.breaker_config is None:
            continue
        for inst in machine.bus.instances.get(callee, ()):
            breaker = policy.breaker(inst.name)
            _ = breaker.state  # apply any transition due by the end of the run
            times = [(t.t, t.new.name) for t in breaker.transitions]
            opened = sum(1 for _, state in times if state == "OPEN")
            not_closed, since = 0.0, None
            for t, state in times:
                if state != "CLOSED" and since is None:
                    since = t
                elif state == "CLOSED" and since is not None:
                    not_closed += t - since
                    since = None
            if since is not None:
                not_closed += end - since
            out[breaker_name(caller, inst.name)] = (opened, breaker.calls_not_permitted, not_closed)
    return out


def _events(machine: Machine) -> dict[str, dict[str, int]]:
    events = machine.driver.events
    if events is None:
        return {}
    out = {}
    for topic, c in events.counters().items():
        subs = c.pop("subscribers")
        for name in ("delivered", "dropped", "gaps_skipped"):
            c[name] = sum(sub[name] for sub in subs.values())
        out[topic] = {k: int(v) for k, v in c.items() if isinstance(v, int)}
    return out


def _breaker_timelines(machine: Machine) -> dict[str, list[tuple[float, str]]]:
    out = {}
    for (caller, _), policy in machine.bus.policies.items():
        for instance, breaker in sorted(policy.breakers.items()):
            out[breaker_name(caller, instance)] = [(t.t, t.new.name) for t in breaker.transitions]
    return out


def _discovery(machine: Machine) -> dict[str, int]:
    d = machine.bus.discovery
    if d is None:
        return {}
    return {
        "refreshes": d.refreshes(),
        "stale_uses": d.stale_uses(),
        "heartbeats_lost": d.heartbeats_lost,
        **{k: v for k, v in d.events.items() if k in ("registered", "expired", "deregistered")},
    }


def _bus_counters(bus: Any) -> dict[str, int]:
    stats = getattr(bus, "stats", None)
    counters = {name: int(getattr(stats, name, 0)) for name in BUS_COUNTERS}
    counters["errors_injected"] = int(getattr(bus, "errors_injected", 0))
    return counters


def _fault_names(bits: int) -> list[str]:
    from hw_adapters import ServoFault

    return [f.name.lower() for f in ServoFault if f.value and bits & f.value]  # type: ignore[union-attr]
