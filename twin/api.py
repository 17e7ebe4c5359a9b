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
from twin.observe.metrics import BUS_COUNTERS, RunData, build_metrics, measured
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
        if self.frames is not None and len(self.frames):
            images.append(self.frames.save(run_dir / "robot.gif"))
        write_report(
            run_dir,
            f"{self.scenario.name} (seed {self.seed})",
            self.metrics,
            self.assertions,
            images,
            extra_files=[run_dir / "metrics.json", run_dir / "telemetry.csv"],
        )
        self.run_dir = run_dir
        return run_dir


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
    )
    metrics = build_metrics(data)
    outcomes = []
    for assertion in sc.assertions:
        value = measured(metrics, assertion.path)
        outcomes.append(AssertionOutcome(str(assertion), value, assertion.holds(value)))
    samples = {"command": [x * 1000.0 for x in d.command_latency_s]}
    for link in machine.network.links.values():
        samples[f"link {link.name}"] = [x * 1000.0 for x in link.stats.latencies_s]
    return RunResult(sc, machine.seed, metrics, tel, outcomes, samples, recorder, error=machine.driver.lost)


def _bus_counters(bus: Any) -> dict[str, int]:
    stats = getattr(bus, "stats", None)
    counters = {name: int(getattr(stats, name, 0)) for name in BUS_COUNTERS}
    counters["errors_injected"] = int(getattr(bus, "errors_injected", 0))
    return counters


def _fault_names(bits: int) -> list[str]:
    from hw_adapters import ServoFault

    return [f.name.lower() for f in ServoFault if f.value and bits & f.value]  # type: ignore[union-attr]
