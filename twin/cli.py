"""The `twin` command. Exit codes: 0 ok, 1 an assertion failed, 2 bad input, 3 internal error."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from servo_core.errors import TwinError

if TYPE_CHECKING:
    from twin.api import StopRequest
    from twin.recordings import Recording
    from twin.scenario.models import Scenario

__all__ = ["main", "summary"]

EXIT_OK, EXIT_ASSERTION, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="twin",
        description="ServoTwin: run servo machines as microservices, simulated or real.",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="run a scenario and check its assertions")
    r.add_argument("scenario", type=Path)
    r.add_argument("--out", type=Path, help="run directory (default: outputs.dir or runs/<name>)")
    r.add_argument("--seed", type=int, help="override the scenario's seed")
    r.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field, e.g. --set duration=5 --set plant.servos.0.id=3",
    )
    r.add_argument("--render", action="store_true", help="also write robot.gif")
    r.add_argument(
        "--bus",
        metavar="URL",
        help="run on the wall clock against this bus (real servos or an "
        "emulator), e.g. dynamixel:///dev/ttyUSB0?baud=1000000",
    )
    r.add_argument(
        "--shadow",
        action="store_true",
        help="with --bus: run the twin beside the real servos, fed the same goals, and raise an "
        "alarm when they part (scenario section shadow:)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress, no summary")
    e = sub.add_parser("emulate", help="serve the scenario's servos on a virtual serial port")
    e.add_argument("scenario", type=Path)
    e.add_argument("--protocol", required=True, choices=["dynamixel", "feetech"])
    e.add_argument("--link", required=True, type=Path, help="path to make a link to the pseudo-terminal")
    e.add_argument("--baud", type=int, default=1_000_000, help="for --wire-timing (default 1000000)")
    e.add_argument("--wire-timing", action="store_true", help="answer when a real bus would")
    e.add_argument(
        "--out",
        type=Path,
        help="record the session into this directory: telemetry, the instructions as a trace, plots, report",
    )
    sc = sub.add_parser("scan", help="list the servos that answer on a bus")
    sc.add_argument("url", help="e.g. dynamixel:///dev/ttyUSB0?baud=1000000, feetech:///dev/ttyACM0")
    sc.add_argument("--ids", default="0-252", help="ids to try, e.g. 1-20 (default 0-252)")
    v = sub.add_parser("validate", help="check scenario files")
    v.add_argument("scenarios", type=Path, nargs="+")
    sub.add_parser("schema", help="print the JSON Schema of scenario files")
    rp = sub.add_parser("replay", help="replay a real servo recording on the twin and compare")
    rp.add_argument(
        "recording",
        type=Path,
        help="a recording (data/servo-logs/*.json) or a run directory (with --scenario)",
    )
    rp.add_argument("--scenario", type=Path, help="for a run directory: the scenario that describes its rig")
    rp.add_argument("--model", help="servo model from the catalogue (default: the recorded one)")
    rp.add_argument("--params", type=Path, help="a parameters file (model: NAME, params: {field: value})")
    rp.add_argument("--out", type=Path, help="write DIR/<recording>.png and DIR/<recording>.csv")
    rp.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    idp = sub.add_parser("identify", help="fit a servo model's parameters to recordings")
    idp.add_argument("recordings", type=Path, nargs="+", help="recordings (or run directories) to fit on")
    idp.add_argument("--scenario", type=Path, help="for run directories: the scenario that describes the rig")
    idp.add_argument("--model", help="catalogue model to refine (default: the recorded one)")
    idp.add_argument("--out", type=Path, required=True, help="the parameters file to write (YAML)")
    idp.add_argument("--holdout", type=Path, nargs="*", default=[], help="recordings to judge the fit on")
    idp.add_argument("--evaluations", type=int, default=300, help="replays of the training set (default 300)")
    idp.add_argument("--workers", type=int, default=2, help="processes for the replays (default 2)")
    idp.add_argument(
        "--catalogue",
        metavar="NAME",
        help="write a whole catalogue file for a model variant NAME instead of a parameters file",
    )
    rep = sub.add_parser(
        "report", help="rebuild a run directory's report, plots and metrics (after a crash too)"
    )
    rep.add_argument("run_dir", type=Path)
    from twin import compare, sweep

    compare.add_parser(sub)
    sweep.add_parser(sub)
    sv = sub.add_parser("services", help="list the registered service types: parameters, requests, metrics")
    sv.add_argument("names", nargs="*", help="only these types")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args, sys.stdout, sys.stderr)
        if args.command == "validate":
            return _validate(args.scenarios, sys.stdout, sys.stderr)
        if args.command == "emulate":
            return _emulate(args, sys.stdout)
        if args.command == "scan":
            return _scan(args.url, args.ids, sys.stdout)
        if args.command == "sweep":
            from twin import sweep

            return sweep.main(args, sys.stdout, sys.stderr)
        if args.command == "compare":
            from twin import compare

            return compare.main(args, sys.stdout, sys.stderr)
        if args.command == "report":
            return _report(args.run_dir, sys.stdout)
        if args.command == "services":
            return _services(args.names, sys.stdout)
        if args.command == "replay":
            return _replay(args, sys.stdout, sys.stderr)
        if args.command == "identify":
            return _identify(args, sys.stdout, sys.stderr)
        from twin.scenario import scenario_schema

        sys.stdout.write(json.dumps(scenario_schema(), indent=2) + "\n")
        return EXIT_OK
    except TwinError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # the reader went away (`twin services | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception:
        # A bug, not bad input: say so, with the traceback a bug report needs, and never
        # exit 1, which would read as "an assertion failed".
        sys.stderr.write("twin: internal error (please report it with the lines below)\n")
        traceback.print_exc()
        return EXIT_INTERNAL


def _services(names: Sequence[str], out: TextIO) -> int:
    from twin.plugins import SERVICES
    from twin.services.metrics import declared_metrics

    for name in names or SERVICES.names():
        cls = SERVICES.get(name)
        out.write(f"{name}: {cls.__module__}.{cls.__qualname__}  ({SERVICES.origin(name)})\n")
        if cls.description:
            out.write(f"  {cls.description}\n")
        if cls.wants_servo_bus:
            out.write("  owns the servo bus unless the scenario says servo_bus: false\n")
        for field, info in cls.Params.model_fields.items():
            default = (
                "required"
                if info.is_required()
                else f"default {info.get_default(call_default_factory=True)!r}"
            )
            if "token" in field or "clients" in field:
                default = "required" if info.is_required() else "default: none"
            text = f" — {info.description}" if info.description else ""
            out.write(f"  param   {field}: {_type_name(info.annotation)} ({default}){text}\n")
        for kind, body in sorted(cls.request_kinds().items()):
            out.write(f"  handles {kind!r}: body {_type_name(body)}\n")
        for metric_name, metric in declared_metrics(cls).items():
            text = f" — {metric.description}" if metric.description else ""
            out.write(f"  metric  {name}.{metric_name} ({metric.kind}){text}\n")
    return EXIT_OK


def _type_name(annotation: object) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _load(path: Path, sets: Sequence[str], err: TextIO) -> Scenario:
    """Load a scenario, printing its warnings (one line each) on `err`."""
    import warnings

    from twin.scenario import ScenarioWarning, load_scenario

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScenarioWarning)
        scenario = load_scenario(path, sets)
    for warning in caught:
        if issubclass(warning.category, ScenarioWarning):
            err.write(f"warning: {warning.message}\n")
    return scenario


def _validate(files: Sequence[Path], out: TextIO, err: TextIO) -> int:
    from twin.scenario import ScenarioError

    status = EXIT_OK
    for path in files:
        try:
            _load(path, (), err)
        except ScenarioError as exc:
            err.write(f"{exc}\n")
            status = EXIT_BAD_INPUT
        else:
            out.write(f"{path}: ok\n")
    return status


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from twin.api import StopRequest, run
    from twin.observe.rundir import check_writable

    if args.seed is not None and not 0 <= args.seed < 2**32:
        err.write(f"--seed must be within 0..{2**32 - 1}, got {args.seed}\n")
        return EXIT_BAD_INPUT
    if args.shadow and not args.bus:
        err.write("--shadow runs the twin beside real servos: give --bus URL too\n")
        return EXIT_BAD_INPUT
    if args.bus:
        from twin.scenario.bus_url import check_run_bus

        check_run_bus(args.bus)
    scenario = _load(args.scenario, args.sets, err)
    run_dir = args.out or Path(scenario.outputs.dir or Path("runs") / scenario.name)
    check_writable(run_dir)
    show = not args.quiet and err.isatty()
    clock = "wall-clock" if args.bus else "simulated"

    def progress(now: float, duration: float) -> None:
        err.write(f"\r{scenario.name}: {now:7.2f} / {duration:.2f} s {clock}")
        err.flush()

    stop = StopRequest()
    with _stopping_on_signals(stop):
        result = run(
            scenario,
            args.seed,
            progress=progress if show else None,
            render=args.render,
            bus=args.bus,
            out=run_dir,
            stop=stop,
            command=["twin", *sys.argv[1:]] if sys.argv[1:2] == ["run"] else None,
            shadow=args.shadow,
        )
    if show:
        err.write("\n")
    if not args.quiet:
        out.write(summary(result.metrics, result.assertions, run_dir, incomplete=result.reason or None))
    for failure in result.failures if result.complete else ():
        err.write(f"assertion failed: {failure.expression} (measured {failure.measured:g})\n")
    for service, what in result.service_failures[:10]:
        err.write(f"service {service} failed: {what}\n")
    if result.signal:
        err.write(f"INCOMPLETE: {result.reason}; torque is off, the run directory is written\n")
        return 128 + result.signal
    if not result.complete:
        err.write(f"INCOMPLETE: {result.reason}\n")
        return EXIT_ASSERTION
    return EXIT_OK if result.passed else EXIT_ASSERTION


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
"""Signals that stop a run safely: torque off, run directory written, exit 128 + the signal."""


@contextlib.contextmanager
def _stopping_on_signals(stop: StopRequest) -> Iterator[None]:
    import signal

    def handler(signum: int, _frame: object) -> None:
        stop.request(f"stopped by {signal.Signals(signum).name}", signum)
        signal.signal(signum, signal.SIG_DFL)  # a second one, if the safe stop hangs, ends it

    previous = {}
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:  # nohup stays nohup
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _report(run_dir: Path, out: TextIO) -> int:
    from twin.observe.rebuild import rebuild

    rebuilt = rebuild(run_dir)
    verdict = rebuilt.manifest.get("verdict") or "INCOMPLETE"
    reason = f": {rebuilt.reason}" if rebuilt.reason else ""
    out.write(f"{run_dir}: {rebuilt.status}, {verdict}{reason}\n")
    out.write(f"  {len(rebuilt.telemetry)} telemetry samples; report: {run_dir / 'report.md'}\n")
    return EXIT_OK


def _recording(path: Path, scenario: Path | None, err: TextIO) -> Recording:
    """A recording file, or a run directory of ours read with the scenario of its rig."""
    from twin.recordings import RecordingError, read_recording, read_run

    if not path.is_dir():
        return read_recording(path)
    if scenario is None:
        raise RecordingError(
            [f"{path}: a run directory; give --scenario, the scenario that describes its rig"]
        )
    return read_run(path, _load(scenario, (), err))


def _identify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from servo_core.catalogue import servo_spec
    from twin.identify import catalogue_yaml, identify, params_yaml
    from twin.observe.files import write_text_atomic
    from twin.replay import replay

    if args.evaluations < 1 or args.workers < 1:
        err.write("--evaluations and --workers must be at least 1\n")
        return EXIT_BAD_INPUT
    train = [_recording(p, args.scenario, err) for p in args.recordings]
    held = [_recording(p, args.scenario, err) for p in args.holdout]
    if args.out.exists() and args.out.is_dir():
        err.write(f"--out {args.out}: is a directory; give a file name such as params.yaml\n")
        return EXIT_BAD_INPUT
    show = err.isatty()

    start, end = ("\r", "") if show else ("", "\n")

    def progress(n: int, now: float, best: float) -> None:
        if show or n % 50 == 0:
            err.write(f"{start}replay {n}/{args.evaluations}: MAE {now:.4f} rad, best {best:.4f}{end}")
            err.flush()

    result = identify(
        train, args.model, max_evaluations=args.evaluations, workers=args.workers, progress=progress
    )
    if show:
        err.write("\n")
    model = args.model or train[0].model
    default = servo_spec(model)
    holdout = {r.name: replay(r, spec=result.spec).mae_rad for r in held}
    out.write(f"{'recording':<32} {'default':>9} {'identified':>11}\n")
    rows = [(r, result.train_mae_rad[r.name], "fitted") for r in train]
    rows += [(r, holdout[r.name], "held out") for r in held]
    for r, fitted, role in rows:
        out.write(f"{r.name:<32} {replay(r, spec=default).mae_rad:>9.4f} {fitted:>11.4f}  ({role})\n")
    if args.catalogue:
        mean_fit = sum(result.train_mae_rad.values()) / len(result.train_mae_rad)
        how = (
            f"twin identify on {', '.join(r.name for r in train)}, {result.evaluations} replays, "
            f"mean MAE {mean_fit:.3f} rad on those recordings"
        )
        text = catalogue_yaml(result, model, args.catalogue, how)
    else:
        text = params_yaml(result, model, holdout)
    write_text_atomic(args.out, text)
    out.write(f"wrote {args.out} ({result.evaluations} replays of the training set)\n")
    return EXIT_OK


def _replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from servo_core.catalogue import read_params
    from twin.replay import replay

    if args.model is not None and args.params is not None:
        err.write("give either --model or --params, not both (a parameters file names its model)\n")
        return EXIT_BAD_INPUT
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        err.write(f"--out {args.out}: exists and is not a directory\n")
        return EXIT_BAD_INPUT
    spec = read_params(args.params) if args.params is not None else None
    recording = _recording(args.recording, args.scenario, err)
    result = replay(recording, model=args.model, spec=spec)
    written: tuple[Path, ...] = ()
    if args.out is not None:
        from twin.observe.replay_plot import write_replay

        try:
            written = write_replay(result, args.out)
        except OSError as exc:
            err.write(f"cannot write to {args.out}: {exc.strerror or exc}\n")
            return EXIT_BAD_INPUT
    if args.json:
        out.write(json.dumps(result.summary(), sort_keys=True) + "\n")
        return EXIT_OK
    deg = math.degrees
    out.write(
        f"{recording.name} replayed on the twin: model {result.model}, kp {recording.kp}, "
        f"{recording.supply_v:g} V, {len(recording.t)} samples over {recording.duration_s:.2f} s\n"
        f"  error twin − recorded  mean {result.mae_rad:.4f} rad ({deg(result.mae_rad):.2f}°)"
        f"  max {result.max_error_rad:.4f} rad ({deg(result.max_error_rad):.2f}°)\n"
        f"  lag behind the goal    recorded {result.recorded_lag_s * 1000:.0f} ms"
        f"  twin {result.twin_lag_s * 1000:.0f} ms\n"
        f"  for scale, an ideal servo (position = goal) is off by {result.ideal_mae_rad:.4f} rad"
        f" ({deg(result.ideal_mae_rad):.2f}°) on average\n"
    )
    for path in written:
        out.write(f"  wrote {path}\n")
    return EXIT_OK


def _scan(url: str, ids: str, out: TextIO) -> int:
    from hw_adapters import open_bus
    from hw_adapters.base import parse_ids

    with open_bus(url) as bus:
        found = bus.scan(parse_ids(ids))
    if not found:
        out.write(f"no servo answered on {url}\n")
        return EXIT_OK
    out.write(f"{'id':>3}  {'model':<12} {'number':>6}  firmware\n")
    for info in found:
        out.write(f"{info.id:>3}  {info.model:<12} {info.model_number:>6}  {info.firmware}\n")
    return EXIT_OK


def _emulate(args: argparse.Namespace, out: TextIO) -> int:
    import signal
    import threading

    from hw_adapters.emulator import EmulatorServer
    from twin.assembly import build_plant
    from twin.emulation import EmulatedFaults
    from twin.emulation_session import SessionRecorder
    from twin.observe.rundir import check_writable
    from twin.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    if args.out is not None:
        check_writable(args.out)
    plant, _ = build_plant(scenario)
    stop = threading.Event()
    recorder = None
    served = False
    try:
        server = EmulatorServer(plant, args.protocol, baud=args.baud, wire_timing=args.wire_timing)
        if args.out is not None:
            command = ["twin", *sys.argv[1:]] if sys.argv[1:2] == ["emulate"] else None
            recorder = SessionRecorder(scenario, plant, args.protocol, args.out, command)
            server.on_receive, server.on_tick = recorder.on_receive, recorder.on_tick
        faults = EmulatedFaults(
            scenario,
            plant,
            started=lambda: server.stats.bytes_in > 0,
            log=lambda line: print(f"fault at {line}", file=sys.stderr, flush=True),
            execute=server.call_soon,
        )
        for skipped in faults.skipped:
            sys.stderr.write(f"fault {skipped}: skipped, it acts on a twin run's services or bus\n")
        try:
            link = server.link(args.link)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    signal.signal(sig, lambda *_: stop.set())
            out.write(f"{link}\n")
            out.flush()
            faults.start()
            server.serve(stop)
            served = True
        finally:
            faults.stop()
            server.close()
            if recorder is not None:
                if not served:
                    recorder.fail("the emulator stopped with an error")
                elif server.watch_error is not None:
                    recorder.fail(f"recording stopped: {server.watch_error}")
                    sys.stderr.write(f"--out {args.out}: recording stopped: {server.watch_error}\n")
                else:
                    out.write(f"session recorded: {recorder.finish(server.stats.bytes_out) / 'report.md'}\n")
    finally:
        plant.close()
    return EXIT_OK


def summary(metrics: dict, assertions: Sequence, run_dir: Path, incomplete: str | None = None) -> str:
    t = metrics["tracking"]
    lat = metrics["latency"]["command"]
    clock = "wall-clock" if metrics["realtime"]["lateness"].get("count") else "simulated"
    lines = [f"{metrics['scenario']} (seed {metrics['seed']}, {metrics['duration_s']:g} s {clock})"]
    if incomplete:
        lines.append(f"  INCOMPLETE: {incomplete}")
    for joint, m in t["joints"].items():
        lines.append(
            f"  {joint:<16} tracking error rms {_n(m['rms_error_deg'])}°  max {_n(m['max_error_deg'])}°"
        )
    accepted = metrics["latency"]["command_accepted"]
    driver = metrics.get("driver")
    period = driver.get("period_ms") if isinstance(driver, dict) else None
    lines.append(
        f"  command accepted p50 {_n(accepted['p50_ms'])} ms  p99 {_n(accepted['p99_ms'])} ms"
        f"  max {_n(accepted['max_ms'])} ms"
    )
    lines.append(
        f"  reached servo    p50 {_n(lat['p50_ms'])} ms  p99 {_n(lat['p99_ms'])} ms"
        f"  max {_n(lat['max_ms'])} ms"
        + (f"  (on the driver's {period:g} ms cycle)" if isinstance(period, int | float) else "")
    )
    c = metrics["commands"]
    line = f"  commands {c['completed']}/{c['sent']} completed"
    if isinstance(driver, dict) and "deadline_misses" in driver:
        line += f"; driver deadline misses {driver['deadline_misses']}"
    lines.append(line)
    for name, counters in metrics["services"].items():
        if counters.get("failures"):
            lines.append(f"  service {name} raised {counters['failures']} exception(s): see the report")
    lines += _realtime_lines(metrics)
    for a in assertions:
        verdict = ("PASS" if a.passed else "FAIL") if not incomplete else "(n/a)"
        lines.append(f"  {verdict}  {a.expression}  (measured {a.measured:g})")
    lines.append(f"  report: {run_dir / 'report.md'}")
    return "\n".join(lines) + "\n"


def _realtime_lines(metrics: dict) -> list[str]:
    """Wall-clock runs: how late the loop ran, how long a cycle's work took, and the bus's counters."""
    late = metrics["realtime"]["lateness"]
    if not late.get("count"):
        return []
    lines = [f"  loop lateness    {_spread(late)}"]
    driver = metrics.get("driver")
    work = driver.get("cycle_work") if isinstance(driver, dict) else None
    if isinstance(work, dict) and work.get("count"):
        lines.append(f"  cycle work       {_spread(work)}")
    bus = metrics.get("bus", {})
    if bus:
        lines.append("  bus " + "  ".join(f"{name} {value}" for name, value in sorted(bus.items())))
    shadow = metrics.get("shadow")
    if isinstance(shadow, dict):
        worst = max(
            (j["max_delta_deg"] for j in shadow["joints"].values() if j["max_delta_deg"] is not None),
            default=None,
        )
        first = f", first at {shadow['first_alarm_s']:.2f} s" if shadow["alarms"] else ""
        alarms = f"{shadow['alarms']} divergence alarm(s){first}"
        lines.append(f"  shadow twin      {alarms}; max |hardware − twin| {_n(worst)}°")
    return lines


def _spread(p: dict) -> str:
    return f"p50 {_n(p['p50_ms'])} ms  p99 {_n(p['p99_ms'])} ms  max {_n(p['max_ms'])} ms"


def _n(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
