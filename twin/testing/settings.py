"""What the command line and the ini file chose for this test session, and the runs they imply."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from twin.scenario.models import Scenario
    from twin.testing.bus import ClockedBus
    from twin.testing.result import TwinRunResult

__all__ = ["SETTINGS", "SIMULATED_SCHEMES", "TwinSettings", "bus_scheme"]

# Every other scheme drives real servos (dynamixel://, feetech://, a plugin's own).
SIMULATED_SCHEMES = frozenset({"sim", "mock"})


def bus_scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


@dataclass
class TwinSettings:
    bus_url: str | None  # None: the twin, on virtual time
    scenario: Path | None  # the servos servo_bus serves (twin) or expects (bus)
    scenario_files: set[Path] = field(default_factory=set)  # collected as tests
    buses: list[ClockedBus] = field(default_factory=list)  # servo_bus instances open now

    @property
    def on_hardware(self) -> bool:
        return self.bus_url is not None and bus_scheme(self.bus_url) not in SIMULATED_SCHEMES

    def run(self, scenario: Scenario, seed: int | None = None) -> TwinRunResult:
        """Run on the twin, or on the session's bus on the wall clock (its port lent by servo_bus)."""
        from twin.api import run
        from twin.testing.result import TwinRunResult

        with ExitStack() as lent:
            if self.on_hardware:
                for bus in self.buses:
                    lent.enter_context(bus.released())
            return TwinRunResult.of(run(scenario, seed, bus=self.bus_url))


SETTINGS = pytest.StashKey[TwinSettings]()
