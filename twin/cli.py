"""The `twin` command. Exit codes: 0 ok, 1 an assertion failed, 2 bad input, 3 internal error."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from servo_core.errors import TwinError

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
    r.add_argument("--quiet", action="store_true", help="no progress, no summary")
    e = sub.add_parser("emulate", help="serve the scenario's servos on a virtual serial port")
    e.add_argument("scenario", type=Path)
    e.add_argument("--protocol", required=True, choices=["dynamixel", "feetech"])
    e.add_argument("--link", required=True, type=Path, help="path to make a link to the pseudo-terminal")
    e.add_argument("--baud", type=int, default=1_000_000, help="for --wire-timing (default 1000000)")
    e.add_argument("--wire-timing", action="store_true", help="answer when a real bus would")
    sc = sub.add_parser("scan", help="list the servos that answer on a bus")
    sc.add_argument("url", help="e.g. dynamixel:///dev/ttyUSB0?baud=1000000, feetech:///dev/ttyACM0")
    sc.add_argument("--ids", default="0-252", help="ids to try, e.g. 1-20 (default 0-252)")
    v = sub.add_parser("validate", help="check scenario files")
    v.add_argument("scenarios", type=Path, nargs="+")
    sub.add_parser("schema", help="print the JSON Schema of scenario files")
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
        if args.command == "services":
            return _services(args.names, sys.stdout)
        from twin.scenario import scenario_schema

        sys.stdout.write(json.dumps(scenario_schema(), indent=2) + "\n")
        return EXIT_OK
    except TwinError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
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


def _validate(files: Sequence[Path], out: TextIO, err: TextIO) -> int:
    from twin.scenario import ScenarioError, load_scenario

    status = EXIT_OK
    for path in files:
        try:
            load_scenario(path)
        except ScenarioError as exc:
            err.write(f"{exc}\n")
            status = EXIT_BAD_INPUT
        else:
            out.write(f"{path}: ok\n")
    return status


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from twin.api import run
    from twin.scenario import load_scenario

    if args.seed is not None and not 0 <= args.seed < 2**32:
        err.write(f"--seed must be within 0..{2**32 - 1}, got {args.seed}\n")
        return EXIT_BAD_INPUT
    scenario = load_scenario(args.scenario, args.sets)
    run_dir = args.out or Path(scenario.outputs.dir or Path("runs") / scenario.name)
    if run_dir.exists() and not run_dir.is_dir():
        err.write(f"--out {run_dir}: exists and is not a directory\n")
        return EXIT_BAD_INPUT
    show = not args.quiet and err.isatty()

    def progress(now: float, duration: float) -> None:
        err.write(f"\r{scenario.name}: {now:7.2f} / {duration:.2f} s simulated")
        err.flush()

    result = run(scenario, args.seed, progress=progress if show else None, render=args.render, bus=args.bus)
    if show:
        err.write("\n")
    try:
        result.write(run_dir)
    except OSError as exc:
        err.write(f"cannot write the run directory {run_dir}: {exc.strerror or exc}\n")
        return EXIT_BAD_INPUT
    if not args.quiet:
        out.write(summary(result.metrics, result.assertions, run_dir))
    for failure in result.failures:
        err.write(f"assertion failed: {failure.expression} (measured {failure.measured:g})\n")
    for service, what in result.service_failures[:10]:
        err.write(f"service {service} failed: {what}\n")
    if result.error:
        err.write(f"the run stopped early: {result.error}\n")
        return EXIT_BAD_INPUT
    return EXIT_OK if result.passed else EXIT_ASSERTION


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
    from twin.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    plant, _ = build_plant(scenario)
    stop = threading.Event()
    try:
        server = EmulatorServer(plant, args.protocol, baud=args.baud, wire_timing=args.wire_timing)
        try:
            link = server.link(args.link)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            out.write(f"{link}\n")
            out.flush()
            server.serve(stop)
        finally:
            server.close()
    finally:
        plant.close()
    return EXIT_OK


def summary(metrics: dict, assertions: Sequence, run_dir: Path) -> str:
    t = metrics["tracking"]
    lat = metrics["latency"]["command"]
    lines = [f"{metrics['scenario']} (seed {metrics['seed']}, {metrics['duration_s']:g} s simulated)"]
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
    for a in assertions:
        lines.append(f"  {'PASS' if a.passed else 'FAIL'}  {a.expression}  (measured {a.measured:g})")
    lines.append(f"  report: {run_dir / 'report.md'}")
    return "\n".join(lines) + "\n"


def _n(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
