"""The pytest plugin `servotwin`: options, markers, fixtures, scenario files as tests.

Most tests run pytest inside pytest (`pytester`): in-process where that is enough, in a
subprocess where a real user's command line matters (JUnit XML, a serial bus).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

# pytester unloads what an in-process run imported, and the hypothesis plugin imports
# hypothesis in every run: imported here once, it stays (a run takes 0.2 s, not 1.5 s).
import hypothesis  # noqa: F401
import pytest
import yaml

from hw_adapters import BusError, PingInfo, ServoBus, ServoState
from hw_adapters.mock import open_mock_bus
from twin.testing import assert_metrics, metric
from twin.testing.bus import ClockedBus, open_url_bus

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pytest" / "test_machine.py"
PAN_TILT = ROOT / "scenarios" / "pan_tilt.yaml"


@pytest.fixture
def machine_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: the README's example test file and the scenario it names."""
    pytester.makeini("[pytest]\n")
    (pytester.path / "scenarios").mkdir()
    shutil.copy(PAN_TILT, pytester.path / "scenarios" / "pan_tilt.yaml")
    (pytester.path / "tests").mkdir()
    shutil.copy(EXAMPLE, pytester.path / "tests" / "test_machine.py")
    return pytester


def write_scenario(path: Path, assertions: list[str], **changes: object) -> Path:
    data = yaml.safe_load(PAN_TILT.read_text())
    data.update({"duration": 2.0, "assertions": assertions, **changes})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- what pytest shows ---------------------------------------------------------------------


def test_the_options_ini_keys_and_markers_are_registered(pytester: pytest.Pytester) -> None:
    helped = pytester.runpytest("--help").stdout.str()
    for name in ("--twin-bus=URL", "--twin-scenario=PATH", "--twin-scenarios=PATH", "twin_scenario (string)"):
        assert name in helped
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.hardware: needs real servos" in markers
    assert "@pytest.mark.realtime: runs on the wall clock" in markers
    assert "-m 'not realtime'" in markers


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--twin-bus", "/dev/ttyUSB0"], "--twin-bus takes a bus URL"),
        (["--twin-scenario", "missing.yaml"], "no scenario file at"),
        (["--twin-scenarios", "nothing_*.yaml"], "no scenario file at"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], complaint: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert complaint in result.stderr.str()


def test_a_bus_on_the_command_line_shows_in_the_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    assert (
        "servotwin: servos on mock://?ids=1" in pytester.runpytest("--twin-bus", "mock://?ids=1").stdout.str()
    )
    assert "servotwin: servos on" not in pytester.runpytest().stdout.str()


# -- markers --------------------------------------------------------------------------------


def test_hardware_tests_run_only_on_a_bus_of_real_servos(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hardware
        def test_on_the_bench():
            pass

        def test_anywhere():
            pass
        """
    )
    on_twin = pytester.runpytest("-rs")
    on_twin.assert_outcomes(passed=1, skipped=1)
    on_twin.stdout.fnmatch_lines(["*needs real servos: run with --twin-bus dynamixel://*"])
    pytester.runpytest("--twin-bus", "mock://?ids=1").assert_outcomes(passed=1, skipped=1)
    # No fixture opens the bus here, so a port that is not there does not matter.
    pytester.runpytest("--twin-bus", "dynamixel:///dev/no-such-port").assert_outcomes(passed=2)
    pytester.runpytest("--twin-bus", "feetech:///dev/no-such-port").assert_outcomes(passed=2)


# -- fixtures on the twin ------------------------------------------------------------------------


def test_the_readme_example_passes_on_the_twin(machine_project: pytest.Pytester) -> None:
    result = machine_project.runpytest("-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*test_machine.py:*: needs real servos*"])


def test_servo_bus_moves_on_virtual_time_and_is_closed_after_the_module(
    machine_project: pytest.Pytester,
) -> None:
    machine_project.makepyfile(
        test_bus="""
        import math
        import time

        import pytest

        from hw_adapters import BusError

        BUSES = []

        def test_wait_advances_the_twin_not_the_wall_clock(servo_bus):
            BUSES.append(servo_bus)
            servo_bus.set_torque([1], True)
            start = servo_bus.read_states([1])[1].position
            servo_bus.write_goals({1: start + 1.0})
            began = time.monotonic()
            servo_bus.wait(5.0)
            assert time.monotonic() - began < 4.0
            assert servo_bus.read_states([1])[1].position == pytest.approx(start + 1.0, abs=0.03)

        def test_the_module_shares_one_bus(servo_bus):
            assert servo_bus is BUSES[0]
            assert servo_bus.read_states([1])[1].position > 0.9, "still where the last test left it"

        def teardown_module():
            with pytest.raises(BusError, match="closed"):
                BUSES[0].read_states([1])
        """
    )
    machine_project.runpytest("test_bus.py").assert_outcomes(passed=2)


def test_servo_bus_has_the_servos_of_the_chosen_scenario(machine_project: pytest.Pytester) -> None:
    six = yaml.safe_load((ROOT / "scenarios" / "arm6_pick_place.yaml").read_text())
    (machine_project.path / "arm.yaml").write_text(yaml.safe_dump(six))
    ids = [s["id"] for s in six["plant"]["servos"]]
    machine_project.makepyfile(
        test_ids=f"""
        def test_ids(servo_bus):
            assert [p.id for p in servo_bus.scan(range(12))] == {ids}
        """
    )
    machine_project.runpytest("test_ids.py", "--twin-scenario", "arm.yaml").assert_outcomes(passed=1)
    machine_project.runpytest("test_ids.py").assert_outcomes(failed=1)  # the default: pan_tilt's two


def test_servo_bus_without_a_scenario_says_how_to_give_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(servo_bus): pass")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*servo_bus on the twin needs a scenario: give --twin-scenario PATH*"])


def test_twin_run_applies_overrides_and_seed_and_checks_metrics(machine_project: pytest.Pytester) -> None:
    machine_project.makepyfile(
        test_runs="""
        import pytest

        def test_runs(twin_run):
            a = twin_run("scenarios/pan_tilt.yaml", "duration=1.5", seed=4)
            assert (a.scenario.duration, a.seed) == (1.5, 4)
            assert a.metric("driver.cycles") == pytest.approx(150, abs=2)
            a.assert_metrics("commands.failed == 0", "driver.cycles > 100")
            with pytest.raises(AssertionError, match=r"driver.cycles > 1000: measured 1\\d\\d"):
                a.assert_metrics("commands.failed == 0", "driver.cycles > 1000")
            assert twin_run.bus_url is None
        """
    )
    machine_project.runpytest("test_runs.py").assert_outcomes(passed=1)


# -- helpers -------------------------------------------------------------------------------


RESULT = SimpleNamespace(
    metrics={"tracking": {"max_error_deg": 1.5, "joints": {"pan": {"max_error_deg": None}}}, "name": "x"},
    error="",
)


def test_metric_reads_dotted_paths_and_names_the_closest_when_there_is_none() -> None:
    assert metric(RESULT, "tracking.max_error_deg") == 1.5
    with pytest.raises(LookupError, match="did you mean 'tracking.max_error_deg'"):
        metric(RESULT, "tracking.max_eror_deg")
    with pytest.raises(LookupError, match="no number at 'name'"):
        metric(RESULT, "name")


def test_assert_metrics_names_every_failure_with_what_was_measured() -> None:
    assert_metrics(RESULT, "tracking.max_error_deg < 2", "tracking.max_error_deg>=1.5")
    with pytest.raises(AssertionError) as raised:
        assert_metrics(
            RESULT,
            "tracking.max_error_deg < 1",
            "tracking.max_error_deg < 2",
            "tracking.joints.pan.max_error_deg < 9",
        )
    assert str(raised.value) == (
        "tracking.max_error_deg < 1: measured 1.5; tracking.joints.pan.max_error_deg < 9: measured no samples"
    )
    with pytest.raises(ValueError, match="cannot parse assertion"):
        assert_metrics(RESULT, "tracking.max_error_deg is small")
    stopped = SimpleNamespace(metrics=RESULT.metrics, error="port lost")
    with pytest.raises(AssertionError, match=r"the run stopped early: port lost"):
        assert_metrics(stopped, "tracking.max_error_deg < 1")


def test_a_bus_lends_its_port_for_a_run_and_opens_it_again() -> None:
    bus = open_url_bus("mock://?ids=1-2&model=xl430-w250")
    first = bus.inner
    with bus.released(), pytest.raises(BusError, match="lent to a twin_run"):
        bus.read_states([1])
    assert bus.inner is not first
    assert sorted(bus.read_states([1, 2])) == [1, 2]
    bus.wait(0.1)  # mock:// servos have their own (instant) clock
    bus.close()
    with pytest.raises(BusError, match="closed"):
        bus.read_states([1])


class Recording(ServoBus):
    """Ideal servos that record each call and say it took 0.25 s."""

    def __init__(self) -> None:
        self.servos = open_mock_bus("mock://?ids=1-2&model=xl430-w250")
        self.calls: list[str] = []

    def _took(self, name: str) -> None:
        self.calls.append(name)
        self.last_duration_s = 0.25

    def ping(self, servo_id: int) -> PingInfo | None:
        self._took("ping")
        return self.servos.ping(servo_id)

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        self._took("read_states")
        return self.servos.read_states(ids)

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self._took("write_goals")
        self.servos.write_goals(goals)

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        self._took("set_torque")
        self.servos.set_torque(ids, enabled)

    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        self._took("arm_watchdog")
        return True

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        self._took("disarm_watchdog")

    def close(self) -> None:
        self.calls.append("close")


def test_the_fixture_bus_passes_every_call_on_and_counts_its_wire_time() -> None:
    inner = Recording()
    spent: list[float] = []
    waited: list[float] = []
    bus = ClockedBus(inner, waiter=waited.append, spent=spent.append)
    assert bus.ping(1) is not None and bus.ping(9) is None
    assert [p.id for p in bus.scan(range(4))] == [1, 2]  # four pings, one scan of 1 s
    bus.set_torque([1, 2], True)
    bus.write_goals({1: 0.5})
    assert bus.read_states([1])[1].position == pytest.approx(0.5, abs=0.01)
    assert bus.arm_watchdog([1], 0.5) is True
    bus.disarm_watchdog([1])
    bus.wait(2.0)
    bus.close()
    bus.close()
    after_scan = ["set_torque", "write_goals", "read_states", "arm_watchdog", "disarm_watchdog", "close"]
    assert inner.calls == ["ping"] * 6 + after_scan
    assert sum(spent) == pytest.approx(2 * 0.25 + 1.0 + 5 * 0.25)
    assert waited == [2.0]


def test_the_plugin_imports_nothing_heavy() -> None:
    # `twin/__init__.py` itself imports the runtime; the plugin must add nothing to it.
    code = (
        "import sys, types; pkg = types.ModuleType('twin'); pkg.__path__ = [sys.argv[1]]; "
        "sys.modules['twin'] = pkg; import twin.testing.plugin; "
        "heavy = ('simpy', 'pybullet', 'numpy', 'pydantic', 'yaml', 'matplotlib', 'hw_adapters', "
        "'sim_models', 'twin.api', 'twin.scenario'); print(' '.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "twin")], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


# -- scenario files as tests ---------------------------------------------------------------


def test_junit_xml_has_one_testcase_per_scenario_assertion(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    assertions = ["commands.failed == 0", "tracking.max_error_deg < 0.001", "driver.cycles >= 150"]
    write_scenario(pytester.path / "machine.yaml", assertions)
    result = pytester.runpytest_subprocess("--twin-scenarios", "machine.yaml", "--junitxml", "out.xml")
    result.assert_outcomes(passed=2, failed=1)
    cases = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    got = {c.get("name"): c.find("failure") for c in cases}
    assert list(got) == assertions
    assert got["commands.failed == 0"] is None and got["driver.cycles >= 150"] is None
    failure = got["tracking.max_error_deg < 0.001"]
    assert failure is not None
    assert failure.get("message", "").startswith("tracking.max_error_deg < 0.001: measured ")
    assert "(pan_tilt, seed 7)" in failure.get("message", "")


def test_a_scenario_file_runs_once_for_all_its_assertions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import twin.api

    calls = []
    real_run = twin.api.run

    def counting_run(*args: object, **kwargs: object) -> twin.api.RunResult:
        calls.append(args)
        return real_run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(twin.api, "run", counting_run)
    write_scenario(pytester.path / "scenario_head.yaml", ["commands.failed == 0", "driver.cycles > 100"])
    write_scenario(pytester.path / "other.yaml", ["commands.failed == 0"])  # neither named nor listed
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*scenario_head.yaml::commands.failed == 0 PASSED*"])
    assert len(calls) == 1


def test_the_ini_lists_scenario_files_for_a_plain_pytest_only(pytester: pytest.Pytester) -> None:
    (pytester.path / "machines").mkdir()
    write_scenario(pytester.path / "machines" / "head.yaml", ["commands.failed == 0"])
    pytester.makeini("[pytest]\ntestpaths = tests\ntwin_scenarios = machines/*.yaml\n")
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_one.py").write_text("def test_one():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=2)
    pytester.runpytest("tests/test_one.py").assert_outcomes(passed=1)


def test_a_broken_scenario_file_is_a_collection_error_naming_the_field(pytester: pytest.Pytester) -> None:
    write_scenario(pytester.path / "scenario_bad.yaml", ["commands.failed == 0"], duration=-1)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*scenario_bad.yaml:*duration*"])
    assert "Traceback" not in result.stdout.str()


# -- the same example against servos on a serial bus -----------------------------------------------


@pytest.fixture
def emulated_head(tmp_path: Path) -> Iterator[Path]:
    """`twin emulate` serving the pan-tilt head's two servos on a pseudo-terminal."""
    link = tmp_path / "link"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twin",
            "emulate",
            str(PAN_TILT),
            "--protocol",
            "dynamixel",
            "--link",
            str(link),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        printed = proc.stdout.readline().strip()  # printed once the link is ready
        assert printed == str(link), proc.stderr.read() if proc.poll() is not None else printed
        yield link
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.realtime
def test_the_readme_example_passes_unchanged_on_a_dynamixel_bus(
    machine_project: pytest.Pytester, emulated_head: Path
) -> None:
    bus = f"dynamixel://{emulated_head}?baud=1000000"
    result = machine_project.runpytest_subprocess("-rs", "--twin-bus", bus)
    result.assert_outcomes(passed=3)  # the hardware test too: the emulator answers as the servos would
    result.stdout.fnmatch_lines([f"servotwin: servos on {bus}, wall clock"])
