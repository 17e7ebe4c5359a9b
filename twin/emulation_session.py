"""`twin emulate --out DIR`: a record of what a client's code did to the emulated arm.

While the emulator serves, the recorder (called on its serving thread) samples every joint's
goal and position at 100 Hz into telemetry.csv, turns every instruction packet the client sent
into a trace event (one track per servo id, the broadcast id on its own), and counts them.
When the session ends the directory gets metrics.json (instructions by kind, bytes, tracking),
tracking plots, trace.json and report.md, with run.json saying how it went, as a run would.
Goal and position are the firmware's, in the joint frame of the scenario (what the arm did,
whatever homing offset or drive mode the client wrote).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim_models.plant import Plant
from twin.observe.files import write_text_atomic
from twin.observe.metrics import tracking_metrics
from twin.observe.report import write_report
from twin.observe.rundir import RunDirectory
from twin.observe.runlog import RunLog
from twin.observe.trace import Tracer
from twin.scenario.models import Scenario

__all__ = ["SAMPLE_S", "SessionRecorder"]

SAMPLE_S = 0.01
"""Seconds between two telemetry samples of a session."""
_BROADCAST = {"dynamixel": 0xFE, "feetech": 0xFE}


class SessionRecorder:
    def __init__(
        self,
        scenario: Scenario,
        plant: Plant,
        protocol: str,
        out: Path,
        command: Sequence[str] | None,
    ) -> None:
        self.scenario, self.plant, self.protocol = scenario, plant, protocol
        self.run_dir = RunDirectory.start(
            out, scenario, scenario.seed, bus=f"emulate:{protocol}", command=command
        )
        self.run_dir.manifest["clock"] = "wall"
        self.now = 0.0
        self.log = RunLog([m.joint for m in plant.mounts])
        self.log.attach(out, on_flush=lambda: self.run_dir.progress(self.now))
        self.tracer = Tracer(limit=scenario.outputs.trace_limit)
        self.instructions: Counter[str] = Counter()
        self.bytes_in = 0
        self._next_sample = 0.0
        self._parser, self._names = _instruction_parser(protocol)

    # -- on the serving thread ------------------------------------------------------------------
    def on_receive(self, t: float, data: bytes) -> None:
        self.bytes_in += len(data)
        for packet in self._parser.feed(data):
            name = self._names.get(packet.instruction, f"instruction 0x{packet.instruction:02x}")
            self.instructions[name] += 1
            target = "broadcast" if packet.id == _BROADCAST[self.protocol] else f"id {packet.id}"
            self.tracer.instant(name, target, "bus", t, args={"param_bytes": len(packet.params)})

    def on_tick(self, now: float) -> None:
        self.now = now
        if now < self._next_sample:
            return
        self._next_sample = max(self._next_sample + SAMPLE_S, now)  # no burst after a stall
        goals, actual = [], []
        for mount in self.plant.mounts:
            servo = mount.servo
            goals.append((servo.goal_rad - mount.offset_rad) / mount.direction)
            actual.append((servo.position - mount.offset_rad) / mount.direction)
        self.log.sample(now, goals, actual)

    # -- at the end -------------------------------------------------------------------------------
    def fail(self, reason: str) -> None:
        """The session could not be recorded to its end: keep what is on disk, say why."""
        try:
            self.log.close()
        finally:
            self.run_dir.finish("failed", reason, self.now, "INCOMPLETE")

    def finish(self, bytes_out: int) -> Path:
        out = self.run_dir.path
        try:
            self.log.close()
            metrics: dict[str, Any] = {
                "scenario": self.scenario.name,
                "seed": self.scenario.seed,
                "duration_s": round(self.now, 6),
                "tracking": tracking_metrics(self.log.joints, self.log.tracking),
                "session": {
                    "protocol": self.protocol,
                    "instructions": sum(self.instructions.values()),
                    "by_instruction": dict(sorted(self.instructions.items())),
                    "bytes_in": self.bytes_in,
                    "bytes_out": bytes_out,
                },
            }
            write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
            images = []
            telemetry = self.log.telemetry()
            if len(telemetry) and self.scenario.outputs.plots:
                from twin.observe import plots

                images.append(plots.plot_tracking(telemetry, out / "tracking.png", self.scenario.name))
            extra = [
                out / "metrics.json",
                out / "telemetry.csv",
                out / "events.jsonl",
                self.tracer.write(out / "trace.json"),
            ]
            n = metrics["session"]["instructions"]
            write_report(
                out,
                f"{self.scenario.name}: a twin emulate session ({self.protocol})",
                metrics,
                [],
                images,
                extra_files=extra,
                verdict=f"**Session recorded** ({n} instructions over {self.now:.1f} s of wall time)",
            )
        except BaseException as exc:
            self.run_dir.finish("failed", f"writing the session: {exc}", self.now, "INCOMPLETE")
            raise
        self.run_dir.finish("complete", "", self.now, "RECORDED")
        return out


def _instruction_parser(protocol: str) -> tuple[Any, dict[int, str]]:
    if protocol == "dynamixel":
        from hw_adapters.dynamixel import protocol as dxl

        return dxl.PacketParser(), {i.value: i.name.lower() for i in dxl.Instruction}
    from hw_adapters.feetech import protocol as sts

    return sts.PacketParser("instruction"), {i.value: i.name.lower() for i in sts.Instruction}
