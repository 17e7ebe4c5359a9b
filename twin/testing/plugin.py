"""ServoTwin's pytest plugin, registered as the `pytest11` entry point `servotwin`.

Options: `--twin-bus URL` (default: the twin, on virtual time), `--twin-scenario PATH`
(the machine `servo_bus` stands for; ini `twin_scenario`), `--twin-scenarios PATH` (scenario
files to run as tests; ini `twin_scenarios`; files named `scenario_*.yaml` are collected anyway).
Fixtures: `servo_bus`, `twin_run`, `twin_scenario`, `twin_bus_url`. Markers: `hardware`, `realtime`.

Nothing of the twin is imported here at start: the fixtures and the collector import it when
used, so a test suite that never uses them does not pay for the simulation.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from twin.testing.collect import ScenarioFile
from twin.testing.settings import SETTINGS, TwinSettings, bus_scheme

if TYPE_CHECKING:
    from hw_adapters.base import ServoBus
    from twin.scenario.models import Scenario
    from twin.testing.result import TwinRunResult

__all__ = [
    "DEFAULT_SCENARIO",
    "HARDWARE_SKIP_REASON",
    "TwinRunner",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_header",
    "servo_bus",
    "twin_bus_url",
    "twin_run",
    "twin_scenario",
]

DEFAULT_SCENARIO = "scenarios/pan_tilt.yaml"  # under the rootdir, when it is there
HARDWARE_SKIP_REASON = (
    "needs real servos: run with --twin-bus dynamixel:///dev/ttyUSB0?baud=1000000 (or feetech://PORT)"
)
_SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("servotwin", "ServoTwin: servo machines on the twin or on real servos")
    group.addoption(
        "--twin-bus",
        metavar="URL",
        default=None,
        help="run servo_bus, twin_run and scenario files against this bus on the wall clock, e.g. "
        "dynamixel:///dev/ttyUSB0?baud=1000000; tests marked hardware run only with such a bus. "
        "Default: the twin, on virtual time.",
    )
    group.addoption(
        "--twin-scenario",
        metavar="PATH",
        default=None,
        help="the scenario whose servos servo_bus simulates on the twin and expects on --twin-bus "
        f"(default: ini twin_scenario, else {DEFAULT_SCENARIO} under the rootdir if present)",
    )
    group.addoption(
        "--twin-scenarios",
        metavar="PATH",
        action="append",
        default=[],
        help="collect this scenario file (or glob) as tests, one per assertion; repeatable. "
        "Files named scenario_*.yaml are collected anyway.",
    )
    parser.addini("twin_scenario", "the scenario servo_bus stands for (as --twin-scenario)", default="")
    parser.addini(
        "twin_scenarios",
        "scenario files (or globs) to collect as tests, one per assertion (as --twin-scenarios)",
        type="paths",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hardware: needs real servos; skipped unless --twin-bus names a bus of real servos "
        "(dynamixel://, feetech://)",
    )
    config.addinivalue_line(
        "markers",
        "realtime: runs on the wall clock and needs a machine that keeps up; "
        "-m 'not realtime' deselects these on a busy CI machine",
    )
    url = config.getoption("twin_bus")
    if url is not None and not bus_scheme(url):
        raise pytest.UsageError(f"--twin-bus takes a bus URL such as dynamixel:///dev/ttyUSB0, got {url!r}")
    here = config.invocation_params.dir
    from_option = {p for pattern in config.getoption("twin_scenarios") for p in _files(here / pattern)}
    from_ini = {p for pattern in config.getini("twin_scenarios") for p in _files(Path(pattern))}
    args = [_arg_path(config, a) for a in config.args]
    named = {p for p in args if p is not None and p.suffix in _SUFFIXES}
    config.stash[SETTINGS] = TwinSettings(url, _machine_scenario(config), from_option | from_ini | named)
    # A plain `pytest` runs the ini's scenario files too; `pytest tests/test_x.py` runs only what it names.
    wanted = from_option if config.args_source == pytest.Config.ArgsSource.ARGS else from_option | from_ini
    for path in sorted(wanted):
        if not any(_covers(arg, path) for arg in args):
            config.args.append(str(path))


def _files(pattern: Path) -> list[Path]:
    """The scenario files a path or glob names; UsageError when it names none."""
    if glob.has_magic(str(pattern)):
        found = [Path(p).resolve() for p in sorted(glob.glob(str(pattern), recursive=True))]
    else:
        found = [pattern.resolve()] if pattern.is_file() else []
    if not found:
        raise pytest.UsageError(f"no scenario file at {pattern}")
    return found


def _arg_path(config: pytest.Config, arg: str) -> Path | None:
    path = config.invocation_params.dir / arg.split("::", 1)[0]
    return path.resolve() if path.exists() else None


def _covers(arg: Path | None, path: Path) -> bool:
    return arg is not None and (arg == path or arg in path.parents)


def _machine_scenario(config: pytest.Config) -> Path | None:
    option = config.getoption("twin_scenario")
    ini = config.getini("twin_scenario")
    if option:
        path = config.invocation_params.dir / option
    elif ini:
        path = (config.inipath.parent if config.inipath else config.rootpath) / ini
    else:
        default = config.rootpath / DEFAULT_SCENARIO
        return default if default.is_file() else None
    if not path.is_file():
        raise pytest.UsageError(f"no scenario file at {path} (--twin-scenario or ini twin_scenario)")
    return path


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.suffix not in _SUFFIXES:
        return None
    listed = file_path.resolve() in parent.config.stash[SETTINGS].scenario_files
    if listed or file_path.name.startswith("scenario_"):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[SETTINGS].on_hardware:
        return
    skip = pytest.mark.skip(reason=HARDWARE_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("hardware") is not None:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str | None:
    url = config.stash[SETTINGS].bus_url
    return f"servotwin: servos on {url}, wall clock" if url is not None else None


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


class TwinRunner:
    """`twin_run(scenario, *overrides, seed=None)`: run a scenario, on the twin or on --twin-bus.

    `scenario` is a path (relative to the rootdir) or a loaded Scenario; `overrides` are
    `path=value` strings as for `twin run --set`. Returns a TwinRunResult: a RunResult with
    `metric(path)` and `assert_metrics(*expressions)`.
    """

    def __init__(self, settings: TwinSettings, rootpath: Path) -> None:
        self.settings = settings
        self.rootpath = rootpath

    @property
    def bus_url(self) -> str | None:
        return self.settings.bus_url

    def __call__(
        self, scenario: str | os.PathLike[str] | Scenario, *overrides: str, seed: int | None = None
    ) -> TwinRunResult:
        from twin.api import load

        if isinstance(scenario, str | os.PathLike):
            scenario = load(self.rootpath / scenario, overrides)
        elif overrides:
            raise TypeError("overrides apply to a scenario file: give its path")
        return self.settings.run(scenario, seed)


@pytest.fixture(scope="session")
def twin_bus_url(pytestconfig: pytest.Config) -> str | None:
    """The --twin-bus URL; None on the twin."""
    return pytestconfig.stash[SETTINGS].bus_url


@pytest.fixture(scope="session")
def twin_scenario(pytestconfig: pytest.Config) -> Path:
    """The scenario file servo_bus stands for (--twin-scenario, ini twin_scenario, or the default)."""
    path = pytestconfig.stash[SETTINGS].scenario
    if path is None:
        _fail(
            f"no scenario for the twin: give --twin-scenario PATH, set twin_scenario in the ini file, "
            f"or add {DEFAULT_SCENARIO} under the rootdir"
        )
    return path


@pytest.fixture(scope="session")
def twin_run(pytestconfig: pytest.Config) -> TwinRunner:
    """Run a scenario: `twin_run(path, "duration=3", seed=None)` -> TwinRunResult."""
    return TwinRunner(pytestconfig.stash[SETTINGS], pytestconfig.rootpath)


@pytest.fixture(scope="module")
def servo_bus(pytestconfig: pytest.Config) -> Iterator[ServoBus]:
    """A connected ServoBus for the module, closed (torque off) after it.

    On the twin: the scenario's servos in its simulated plant, on virtual time (`wait()`
    advances it). With --twin-bus: that bus, checked against the scenario's servos when there
    is a scenario; `wait()` sleeps.
    """
    from servo_core.errors import TwinError
    from twin.api import load
    from twin.testing.bus import open_scenario_bus, open_url_bus

    settings = pytestconfig.stash[SETTINGS]
    try:
        scenario = load(settings.scenario) if settings.scenario is not None else None
        if settings.bus_url is not None:
            bus = open_url_bus(settings.bus_url, scenario, exclusive=settings.on_hardware)
        elif scenario is not None:
            bus = open_scenario_bus(scenario)
        else:
            _fail(
                "servo_bus on the twin needs a scenario: give --twin-scenario PATH, set twin_scenario "
                f"in the ini file, or add {DEFAULT_SCENARIO} under the rootdir"
            )
    except TwinError as exc:
        _fail(f"servo_bus: {exc}")
    settings.buses.append(bus)
    try:
        yield bus
    finally:
        settings.buses.remove(bus)
        bus.close()
