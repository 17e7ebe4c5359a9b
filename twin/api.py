"""The Python API: load a scenario, run it, look at the result."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import simpy

from hw_adapters import ServoBus, ServoFault
from servo_core.errors import ConfigError
from twin.assembly import BusWrapper, build
from twin.clock import WallClockEnvironment
from twin.machine import Machine, ServiceGroup
from twin.observe.files import write_text_atomic
from twin.observe.metrics import (
    BUS_COUNTERS,
    CALL_PATHS,
    DISCOVERY_COUNTERS,
    UNUSED,
    RunData,
    breaker_name,
    build_metrics,
    call_name,
    measured,
)
from twin.observe.report import AssertionOutcome, write_report
from twin.observe.rundir import RunDirectory, check_writable
from twin.observe.runlog import RunLog
from twin.observe.telemetry import Telemetry
from twin.patterns.breaker import BreakerSnapshot
from twin.scenario import load_scenario
from twin.scenario.models import Scenario
from twin.services.metrics import declared_metrics, export_metrics
from twin.shadow import ShadowBus, ShadowSettings

__all__ = ["Progress", "RunResult", "StopRequest", "load", "run"]

Progress = Callable[[float, float], None]


@dataclass
class RunResult:
    """What a run measured. `metrics` is the dict written to metrics.json."""

    scenario: Scenario
    seed: int
    metrics: dict[str, Any]
    log: RunLog
    assertions: list[AssertionOutcome]
    latency_samples_ms: dict[str, list[float]]
    frames: Any = None  # a GifRecorder when the run was rendered
    run_dir: Path | None = None
    error: str = ""  # why the run could not go on (a bus lost mid-run), "" when it could
    tracer: Any = None  # the Tracer with one span per hop, written as trace.json
    breaker_timelines: dict[str, list[tuple[float, str]]] | None = None  # breaker -> (t, state)
    topology: Any = None  # (node -> replicas, edges) for the topology picture
    service_failures: list[tuple[str, str]] = field(default_factory=list)  # (service, what it raised)
    status: str = "complete"  # or "incomplete": the run was cut short (see `reason`)
    reason: str = ""  # why the run was cut short
    signal: int = 0  # the signal that stopped it, if one did
    shadow_events: list[tuple[float, str, str]] = field(default_factory=list)  # (t, joint, what)
    bus: str | None = None  # the bus URL of a wall-clock run
    _telemetry: Telemetry | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def passed(self) -> bool:
        """The run went to its end and every assertion held."""
        return self.complete and all(a.passed for a in self.assertions)

    @property
    def verdict(self) -> str:
        """PASS, FAIL or INCOMPLETE (cut short: its assertions prove nothing)."""
        if not self.complete:
            return "INCOMPLETE"
        return "PASS" if self.passed else "FAIL"

    @property
    def telemetry(self) -> Telemetry:
        """Goal and measured position per joint over time (read back when streamed to disk)."""
        if self._telemetry is None:
            self._telemetry = self.log.telemetry()
        return self._telemetry

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
        run_dir = Path(out_dir)
        streamed = self.log.directory is not None and self.log.directory.resolve() == run_dir.resolve()
        if streamed:
            self._write_results(run_dir)
            return run_dir
        # A finished run written afterwards: the same directory, manifest included, as a CLI run.
        manifest = RunDirectory.start(run_dir, self.scenario, self.seed, bus=self.bus, command=None)
        try:
            self.telemetry.to_csv(run_dir / "telemetry.csv")
            events = "".join(json.dumps(e, sort_keys=True) + "\n" for e in self.log.events)
            write_text_atomic(run_dir / "events.jsonl", events)
            self._write_results(run_dir)
        except BaseException as exc:
            manifest.finish("failed", f"writing the results: {exc}", self.metrics["duration_s"], "INCOMPLETE")
            raise
        manifest.finish(
            self.status,
            self.reason,
            self.metrics["duration_s"],
            self.verdict,
            self.assertions,
            self.service_failures,
        )
        return run_dir

    def _write_results(self, run_dir: Path) -> None:
        write_text_atomic(run_dir / "metrics.json", json.dumps(self.metrics, indent=2, sort_keys=True) + "\n")
        images = self._plots(run_dir) if self.scenario.outputs.plots else []
        if self.frames is not None and len(self.frames):
            images.append(self.frames.save(run_dir / "robot.gif"))
        extra = [run_dir / "metrics.json", run_dir / "telemetry.csv", run_dir / "events.jsonl"]
        if (run_dir / "shadow.csv").exists() and "shadow" in self.metrics:
            extra.append(run_dir / "shadow.csv")
        if self.tracer is not None:
            extra.append(self.tracer.write(run_dir / "trace.json"))
        write_report(
            run_dir,
            f"{self.scenario.name} (seed {self.seed})",
            self.metrics,
            self.assertions,
            images,
            extra_files=extra,
            failures=self.service_failures,
            incomplete=None if self.complete else self.reason,
        )
        self.run_dir = run_dir

    def _plots(self, run_dir: Path) -> list[Path]:
        from twin.observe import plots

        name = self.scenario.name
        images = [
            plots.plot_tracking(self.telemetry, run_dir / "tracking.png", name),
            plots.plot_tracking_error(self.telemetry, run_dir / "tracking_error.png", name),
            plots.plot_latency(self.latency_samples_ms, run_dir / "latency.png", name),
        ]
        if self.topology is not None:
            images.append(self._topology_png(run_dir / "topology.png"))
        if self.breaker_timelines:
            path = run_dir / "breakers.png"
            images.append(plots.plot_breakers(self.breaker_timelines, self.scenario.duration, path, name))
        if (run_dir / "shadow.csv").exists() and "shadow" in self.metrics:
            from twin.observe.shadow_plot import plot_shadow

            images.append(
                plot_shadow(run_dir / "shadow.csv", self.shadow_events, run_dir / "shadow.png", name)
            )
        return images

    def _topology_png(self, path: Path) -> Path:
        from twin.observe.topology import plot_topology

        nodes, edges = self.topology
        return plot_topology(nodes, edges, path, self.scenario.name)


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
    out: str | os.PathLike[str] | None = None,
    stop: StopRequest | None = None,
    command: Sequence[str] | None = None,
    shadow: bool = False,
) -> RunResult:
    """Run a scenario and measure it: on virtual time against the twin, or with `bus`
    (a URL such as dynamixel:///dev/ttyUSB0) on the wall clock against that bus.

    With `out`, the run directory is written as the run goes (telemetry and events streamed,
    run.json saying how far it got) and finished when it ends, however it ends. `stop` lets
    another thread or a signal handler cut the run short: the servos' torque goes off, what
    was measured is kept, and the result is INCOMPLETE. `shadow` (with `bus`) runs the twin
    beside the real servos and watches them part (twin.shadow)."""
    if not isinstance(scenario, Scenario):
        scenario = load(scenario)
    if bus is not None and render:
        raise ConfigError("--render draws the twin's robot; with --bus the servos are real")
    if bus is not None:
        from twin.scenario.bus_url import check_run_bus

        check_run_bus(bus)
    elif shadow:
        raise ConfigError("--shadow runs the twin beside real servos: give --bus URL too")
    seed = scenario.seed if seed is None else seed
    if out is not None:
        check_writable(Path(out))
    stop = stop if stop is not None else StopRequest()
    log = RunLog([servo.joint for servo in scenario.plant.servos])  # streamed once the run starts
    shadows: list[ShadowBus] = []
    wrap = _shadow_wrapper(scenario, shadows) if shadow else None
    try:
        machine = build(scenario, seed, bus, log=log, wrap_bus=wrap)
    except BaseException:
        for sb in shadows:
            sb.close()
        raise
    # Only now, with the bus open and the servos checked, may an earlier run's results go.
    run_dir = None
    try:
        try:
            if out is not None:
                run_dir = RunDirectory.start(Path(out), scenario, seed, bus=bus, command=command)
                directory = run_dir.path
                log.attach(directory, on_flush=lambda: _manifest_progress(run_dir, machine))
                for sb in shadows:
                    sb.attach(directory)
            if shadows:
                _alarm_on_the_event_bus(machine, shadows[0])
            recorder = _start_recorder(machine, scenario) if (render or scenario.outputs.render) else None
            stopped = _run_clock(machine, progress, stop)
            log.finish()
            result = _collect(machine, scenario, recorder, stopped, stop.signal if stopped else 0)
            result.bus = bus
            if shadows:
                result.metrics["shadow"] = shadows[0].metrics()
                result.shadow_events = list(shadows[0].events)
            if bus is not None or stopped:
                machine.safe_stop()
        finally:
            for sb in shadows:
                sb.close()
            machine.close()
        log.close()
        if run_dir is not None:
            result.write(run_dir.path)
            end = result.metrics["duration_s"]
            run_dir.finish(
                result.status, result.reason, end, result.verdict, result.assertions, result.service_failures
            )
    except BaseException as exc:
        try:
            log.close()
        finally:
            if run_dir is not None and run_dir.manifest["status"] == "running":
                what = "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"
                reason = f"{what}: {type(exc).__name__}: {exc}"
                run_dir.finish("failed", reason, machine.env.now, "INCOMPLETE")
        raise
    return result


def _manifest_progress(run_dir: RunDirectory, machine: Machine) -> None:
    run_dir.progress(machine.env.now)


def _shadow_wrapper(scenario: Scenario, made: list[ShadowBus]) -> BusWrapper:
    """Wraps the real bus in a ShadowBus over a twin of the same scenario on the run's clock."""
    from hw_adapters import open_bus
    from twin.assembly import build_joints, build_plant

    def wrap(real: ServoBus, env: simpy.Environment) -> ServoBus:
        assert isinstance(env, WallClockEnvironment)
        plant, urdf_limits = build_plant(scenario)
        try:
            twin_bus = open_bus(f"sim://?baud={scenario.plant.bus.baud}", plant=plant, clock=lambda: env.now)
        except BaseException:
            plant.close()
            raise
        settings = ShadowSettings(
            math.radians(scenario.shadow.threshold_deg), scenario.shadow.window_ms / 1000.0
        )
        joints = build_joints(scenario, urdf_limits)
        shadow = ShadowBus(real, twin_bus, plant.place, joints, settings, env.real_now)
        shadow.on_close = plant.close
        made.append(shadow)
        return shadow

    return wrap


def _alarm_on_the_event_bus(machine: Machine, shadow: ShadowBus) -> None:
    from twin.control.commands import Alarm

    owner = machine.services[machine.bus_owner].replicas[0]

    def alarm(t: float, servo_id: int, what: str) -> None:
        machine.hosting.events.publish(owner, "alarms", Alarm(t, servo_id, what))
        machine.log.event(t, "shadow_alarm", servo=servo_id)

    shadow.on_alarm = alarm


class StopRequest:
    """Asks a running run to stop at its next check (within 20 ms of its clock); safe to call
    from a signal handler or another thread. The first request's reason is kept."""

    def __init__(self) -> None:
        self.reason = ""
        self.signal = 0

    def request(self, reason: str, signal: int = 0) -> None:
        if not self.reason:
            self.reason, self.signal = reason, signal


class _Stopped(Exception):
    pass


STOP_CHECK_S = 0.02
"""How often (on the run's clock) a run checks whether it must stop."""


def _run_clock(machine: Machine, progress: Progress | None, stop: StopRequest) -> str:
    """Run the clock to the scenario's end; returns why it stopped early, "" when it did not."""
    env, duration = machine.env, machine.duration_s
    driver = machine.driver

    def watch() -> Generator[simpy.Event, Any, None]:
        while True:
            yield env.timeout(STOP_CHECK_S)
            if driver is not None and driver.lost:
                stop.request(f"the servo bus was lost: {driver.lost}")
            if stop.reason:
                raise _Stopped(stop.reason)

    env.process(watch())
    chunks = 100 if progress is not None else 1
    try:
        for k in range(1, chunks + 1):
            env.run(until=duration * k / chunks)
            if machine.plant is not None:
                machine.plant.advance_to(env.now)
            if progress is not None:
                progress(env.now, duration)
    except _Stopped as stopped:
        if machine.plant is not None:
            machine.plant.advance_to(env.now)
        return str(stopped)
    return ""


def _start_recorder(machine: Machine, scenario: Scenario) -> Any:
    from twin.observe.render import GifRecorder

    plant = machine.plant
    assert plant is not None  # run() refuses --render with --bus
    cfg = scenario.outputs.render
    if cfg is not None:
        recorder = GifRecorder(plant.client, plant.body, width=cfg.width, height=cfg.height, fps=cfg.fps)
    else:
        recorder = GifRecorder(plant.client, plant.body)

    def capture() -> Generator[simpy.Event, Any, None]:
        while True:
            plant.advance_to(machine.env.now)
            recorder.capture()
            yield machine.env.timeout(recorder.frame_interval_s)

    machine.env.process(capture())
    return recorder


def _collect(machine: Machine, sc: Scenario, recorder: Any, stopped: str, signal: int) -> RunResult:
    joint_names = [j.name for j in machine.joints]
    driver = machine.driver
    own = {name: export_metrics(g.cls, list(g.objects)) for name, g in machine.services.items()}
    operator = machine.operator
    commands = (0, 0, 0)
    accepted = None
    if operator is not None:
        group = next(g for g in machine.services.values() if operator in g.objects)
        ops = own[group.name]
        commands = (ops["sent"], ops["completed"], ops["failed"])
        accepted = ops["accepted_latency"]
    command_latency = own[machine.bus_owner].get("command_latency") if driver is not None else None
    bus = machine.servo_bus.snapshot()
    disc = machine.discovery_service.snapshot() if machine.discovery_service is not None else None
    links = machine.network.snapshot()
    data = RunData(
        name=sc.name,
        seed=machine.seed,
        duration_s=machine.env.now,
        dt_s=sc.physics.dt_s,
        joints=joint_names,
        tracking=machine.log.tracking,
        links=dict(links),
        servos={
            j.servo_id: (
                driver.max_temperature_c.get(j.servo_id, math.nan) if driver is not None else math.nan,
                _fault_names(driver.servo_faults.get(j.servo_id, 0)) if driver is not None else [],
            )
            for j in machine.joints
        },
        services={name: _service_counters(g) for name, g in machine.services.items()},
        own=own,
        commands=commands,
        command_latency=command_latency,
        accepted_latency=accepted,
        physics_steps=machine.plant.steps if machine.plant is not None else 0,
        lateness_s=machine.env.lateness_s if isinstance(machine.env, WallClockEnvironment) else [],
        bus_counters={name: value for name, value in asdict(bus).items() if name in BUS_COUNTERS},
        faults_injected=machine.faults_injected,
        updates_completed=machine.updates_completed,
        events=_events(machine),
        calls={  # the reference and configured paths are reported, used or not
            **{call_name(a, b): UNUSED for a, b in (*CALL_PATHS, *machine.policies)},
            **{call_name(c.caller, c.callee): c for c in machine.calls.snapshot()},
        },
        breakers=_breakers(machine),
        discovery={} if disc is None else {k: v for k, v in asdict(disc).items() if k in DISCOVERY_COUNTERS},
        calls_per_replica={} if disc is None else dict(disc.calls_per_replica),
    )
    metrics = build_metrics(data)
    outcomes = []
    wall = isinstance(machine.env, WallClockEnvironment)
    for assertion in sc.assertions:
        value = measured(metrics, assertion.path)
        if wall and assertion.path in REALTIME_TOLERANT and assertion.op in ("==", "<=", "<"):
            outcomes.append(_with_realtime_tolerance(assertion, value, metrics))
        else:
            outcomes.append(AssertionOutcome(str(assertion), value, assertion.holds(value)))
    samples: dict[str, list[float]] = {}
    if command_latency is not None and driver is not None:
        samples["command"] = [x * 1000.0 for x in _histogram_samples(machine, "command_latency")]
    for name, ln in links.items():
        samples[f"link {name}"] = [x * 1000.0 for x in ln.latencies_s]
    if machine.tracer.dropped:
        machine.log.event(
            machine.env.now, "trace_limit", kept=machine.tracer.limit, not_traced=machine.tracer.dropped
        )
    reason = _cut_short(machine, stopped)
    if reason:
        machine.log.event(machine.env.now, "incomplete", reason=reason)
    return RunResult(
        sc,
        machine.seed,
        metrics,
        machine.log,
        outcomes,
        samples,
        recorder,
        error=driver.lost if driver is not None else "",
        status="incomplete" if reason else "complete",
        reason=reason,
        signal=signal,
        tracer=machine.tracer,
        breaker_timelines=_breaker_timelines(machine),
        topology=_topology(machine, metrics),
        service_failures=_failure_summary(machine),
    )


REALTIME_TOLERANT = frozenset({"driver.deadline_misses", "driver.skipped_periods"})
"""Counts that a virtual-time run can hold to an exact bound but a wall-clock run cannot: an
operating system that is not real-time preempts the loop now and then, however idle the machine."""
REALTIME_MISS_FRACTION = 0.01
"""On the wall clock, an assertion bounding one of REALTIME_TOLERANT allows this fraction of the
control cycles on top of its bound."""


def _with_realtime_tolerance(assertion: Any, value: float, metrics: dict[str, Any]) -> AssertionOutcome:
    cycles = int(metrics.get("driver", {}).get("cycles", 0))
    allowed = assertion.bound + math.ceil(REALTIME_MISS_FRACTION * cycles)
    holds = value <= allowed if assertion.op != "<" else value < allowed
    expression = f"{assertion} (wall clock: ≤ {allowed:g}, 1% of {cycles} cycles)"
    return AssertionOutcome(expression, value, holds)


def _cut_short(machine: Machine, stopped: str) -> str:
    """Why the run did not go to its end as the scenario meant, or "" when it did."""
    if stopped:
        return f"{stopped} at {machine.env.now:.3f} s of {machine.duration_s:g} s"
    driver = machine.driver
    if driver is None:
        return ""
    if driver.lost:
        return f"the servo bus was lost: {driver.lost}"
    if driver.loop is not None and not driver.loop.is_alive:
        failures = [f.error for f in machine.failures if f.service == machine.bus_owner]
        why = f": {failures[0]}" if failures else ""
        return f"the driver's control loop stopped{why}"
    if driver.halted and driver.halted != "estop":
        failed = sorted(driver.failed_servos_ids)
        after = f" after servo(s) {failed} failed" if failed else ""
        return f"the machine was halted by the {driver.halted} policy{after}"
    if machine.joints and len(driver.failed_servos_ids) == len(machine.joints):
        return "every servo failed"
    return ""


def _failure_summary(machine: Machine) -> list[tuple[str, str]]:
    """One line per service and distinct exception: how often, and when and where first."""
    first: dict[tuple[str, str], tuple[int, str, float]] = {}
    for f in machine.failures:
        count, replica, t = first.get((f.service, f.error), (0, f.replica, f.t))
        first[(f.service, f.error)] = (count + 1, replica, t)
    return [
        (service, f"{error} ({count}×, first on {replica} at {t:.3f} s)")
        for (service, error), (count, replica, t) in first.items()
    ]


def _histogram_samples(machine: Machine, metric: str) -> list[float]:
    group = machine.services[machine.bus_owner]
    declared = declared_metrics(group.cls)[metric]
    return [s for obj in group.objects for s in declared.__get__(obj, group.cls).samples]


def _service_counters(group: ServiceGroup) -> dict[str, int]:
    snaps = [r.snapshot() for r in group.replicas]
    return {
        "replicas": len(snaps),
        "handled": sum(s.handled for s in snaps),
        "errors": sum(s.errors for s in snaps),
        "max_queue": max((s.max_queue for s in snaps), default=0),
        "expired": sum(s.expired for s in snaps),
        "lost": sum(s.lost for s in snaps),
        "failures": sum(s.failures for s in snaps),
    }


def _breakers(machine: Machine) -> dict[str, BreakerSnapshot]:
    out = {}
    end = machine.env.now
    for (caller, callee), policy in machine.policies.items():
        if policy.settings.breaker is None:
            continue
        for replica in machine.messages.replicas.get(callee, ()):
            breaker = policy.breaker(replica.name)
            assert breaker is not None
            out[breaker_name(caller, replica.name)] = breaker.snapshot(end)
    return out


def _events(machine: Machine) -> dict[str, dict[str, int]]:
    out = {}
    for topic, snap in machine.events.snapshot().items():
        out[topic] = {
            "published": snap.published,
            "lost": snap.lost,
            "redeliveries": snap.redeliveries,
            "dead_lettered": snap.dead_lettered,
            "delivered": snap.delivered,
            "dropped": snap.dropped,
            "gaps_skipped": snap.gaps_skipped,
            "held": snap.held,
        }
    return out


def _breaker_timelines(machine: Machine) -> dict[str, list[tuple[float, str]]]:
    out = {}
    for (caller, _), policy in machine.policies.items():
        for instance, breaker in sorted(policy.breakers.items()):
            out[breaker_name(caller, instance)] = [(t.t, t.new.name) for t in breaker.transitions]
    return out


def _topology(machine: Machine, metrics: dict[str, Any]) -> Any:
    from twin.observe.topology import Edge

    nodes: dict[str, list[str]] = {}
    for group in machine.services.values():
        for replica in group.replicas:
            nodes.setdefault(replica.node, []).append(replica.name)
    edges = []
    for c in machine.calls.snapshot():  # service names may hold "_to_": never split metric keys
        latency = metrics["calls"][call_name(c.caller, c.callee)]["latency"]
        edges.append(
            Edge(c.caller, c.callee, "call", c.calls, c.errors, latency["p50_ms"], latency["p99_ms"])
        )
    for (src, dst, channel), (count, failed) in sorted(machine.traffic.edges.items()):
        edges.append(Edge(src, dst, channel, count, failed, None, None))
    if machine.discovery_service is not None:
        nodes.setdefault(machine.discovery_service.settings.node, []).append("registry")
    return (nodes, edges)


def _fault_names(bits: int) -> list[str]:
    return [f.name.lower() for f in ServoFault if f.value and bits & f.value and f.name]
