"""The public service API, seen from scenarios: user services named by class path, their params,
metrics, events, calls and failures; bad input; the servo bus; tokens; plugin registries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import twin
from servo_core import plugins
from servo_core.plugins import PluginError, Registry
from twin.scenario.problems import ScenarioError

from ..conftest import BASE

FIX = "tests.twin.services.fixtures_services"
QUIET_TASK = {"type": "waypoints", "steps": [{"at_s": 0.1, "pose": {"pan": 5}, "duration_s": 0.2}]}


def topology(*extra: dict[str, Any], gateway: dict[str, Any] | None = None) -> dict[str, Any]:
    services = []
    for svc in BASE["topology"]["services"]:
        if svc["type"] == "gateway" and gateway:
            svc = {**svc, **gateway}
        services.append(svc)
    return {**BASE["topology"], "services": services + list(extra)}


def user(cls: str, name: str, **params: Any) -> dict[str, Any]:
    return {"class": f"{FIX}:{cls}", "name": name, "node": "robot", **params}


def run(
    write_scenario: Callable[..., Path], *extra: dict[str, Any], duration: float = 1.0, **changes: Any
) -> Any:
    changes.setdefault("topology", topology(*extra))
    changes.setdefault("task", QUIET_TASK)
    changes.setdefault("assertions", [])
    return twin.run(twin.load(write_scenario(duration=duration, **changes)))


def problems(write_scenario: Callable[..., Path], **changes: Any) -> list[Any]:
    changes.setdefault("task", QUIET_TASK)
    changes.setdefault("assertions", [])
    path = write_scenario(**changes)
    with pytest.raises(ScenarioError) as info:
        twin.load(path)
    found = info.value.problems
    for problem in found:  # one line per problem, with file:line and a field path
        assert "\n" not in str(problem)
        assert problem.file.endswith("scenario.yaml")
    return found


def at(found: list[Any], path: str) -> list[Any]:
    return [p for p in found if p.path == path or p.path.startswith(path + ".")]


# -- user services at run time ------------------------------------------------------------------


def test_a_user_service_with_its_own_params_does_periodic_work(write_scenario: Callable[..., Path]) -> None:
    result = run(write_scenario, user("Ticker", "ticker", period_ms=50), duration=1.0)
    ticks = result.metrics["ticker"]["ticks"]
    assert 19 <= ticks <= 21, ticks  # 1.0 s / 50 ms, from t = 0
    assert result.metrics["services"]["ticker"]["replicas"] == 1
    assert result.metrics["services"]["ticker"]["failures"] == 0
    assert result.service_failures == []


def test_a_user_service_replicas_add_up_their_counters(write_scenario: Callable[..., Path]) -> None:
    result = run(write_scenario, {**user("Ticker", "ticker", period_ms=100), "replicas": 3}, duration=1.0)
    assert 29 <= result.metrics["ticker"]["ticks"] <= 33
    assert result.metrics["services"]["ticker"]["replicas"] == 3


def test_events_published_by_one_user_service_reach_another(write_scenario: Callable[..., Path]) -> None:
    result = run(
        write_scenario,
        user("Publisher", "pub", topic="news", period_ms=100),
        {**user("Subscriber", "sub", topic="news"), "node": "ops"},
        duration=1.0,
    )
    published = result.metrics["pub"]["published"]
    assert published >= 9
    assert result.metrics["events"]["news"]["published"] == published
    # The last one may still be in flight when the run ends.
    assert published - 1 <= result.metrics["sub"]["received"] <= published
    assert result.metrics["sub"]["received"] > 0


def test_the_topology_counts_each_publisher_to_subscriber_edge_exactly(
    write_scenario: Callable[..., Path],
) -> None:
    """Two publishers on one topic: each edge carries its own publisher's events, not the
    subscriber's total."""
    result = run(
        write_scenario,
        user("Publisher", "fast", topic="news", period_ms=50),
        user("Publisher", "slow", topic="news", period_ms=200),
        {**user("Subscriber", "sub", topic="news"), "node": "ops"},
        duration=1.0,
    )
    _, edges = result.topology
    news = {e.src: e for e in edges if e.channel == "event:news"}
    assert set(news) == {"fast", "slow"} and all(e.dst == "sub" for e in news.values())
    for name in ("fast", "slow"):
        published = result.metrics[name]["published"]
        assert published - 1 <= news[name].messages <= published, name
    assert news["fast"].messages + news["slow"].messages == result.metrics["sub"]["received"]


def test_a_user_service_calls_another_and_a_handler_bug_is_contained(
    write_scenario: Callable[..., Path],
) -> None:
    from twin.assembly import build

    scenario = twin.load(
        write_scenario(
            duration=1.0,
            task=QUIET_TASK,
            assertions=[],
            topology=topology(
                user("Echo", "echo", prefix=">"),
                {**user("Caller", "caller", target="echo"), "node": "ops"},
            ),
        )
    )
    result = twin.run(scenario)
    assert result.metrics["caller"]["replies"] == 1
    assert result.metrics["caller"]["errors"] == 1
    assert result.metrics["echo"]["echoed"] == 1
    assert result.metrics["services"]["echo"]["failures"] >= 1
    assert result.metrics["services"]["echo"]["errors"] >= 1
    assert result.metrics["services"]["caller"]["failures"] == 0
    (failure,) = result.service_failures
    assert failure[0] == "echo" and "ValueError" in failure[1] and "kaboom" in failure[1]
    assert result.metrics["tracking"]  # the run went on to the end and was measured
    # What the caller saw: the reply body, and an error naming the failure.
    machine = build(scenario)
    try:
        machine.env.run(until=1.0)
    finally:
        machine.close()
    caller = machine.services["caller"].objects[0]
    assert caller.answers == [">hi"]  # type: ignore[attr-defined]
    (text,) = caller.error_texts  # type: ignore[attr-defined]
    assert "echo failed" in text and "ValueError" in text


def test_only_the_service_given_the_servo_bus_may_touch_servos(write_scenario: Callable[..., Path]) -> None:
    result = run(write_scenario, user("ServoToucher", "toucher"))
    assert result.metrics["toucher"]["touched"] == 0
    assert result.metrics["services"]["toucher"]["failures"] == 1
    (failure,) = result.service_failures
    assert failure[0] == "toucher"
    assert "was not given the servo bus" in failure[1]


def test_the_gateway_never_echoes_a_token(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    right, wrong = "R1ght-t0ken-8271", "Wr0ng-t0ken-5512"
    topo = topology(gateway={"clients": {"operator": right}})
    topo["services"] = [
        {**svc, "token": wrong} if svc.get("type") == "operator" else svc for svc in topo["services"]
    ]
    result = run(write_scenario, topology=topo)
    assert result.metrics["gateway"]["unauthorized"] == 1
    assert result.metrics["commands"]["failed"] == 1
    trace = result.tracer.write(tmp_path / "trace.json").read_text()
    texts = {
        "metrics": json.dumps(result.metrics),
        "failures": json.dumps(result.service_failures),
        "trace": trace,
        "chrome": json.dumps(result.tracer.to_chrome()),
        "assertions": repr(result.assertions),
    }
    for where, text in texts.items():
        for token in (right, wrong):
            assert token not in text, f"{where} shows a token"


# -- bad input ------------------------------------------------------------------------------------


def test_a_class_path_that_does_not_import_is_reported(write_scenario: Callable[..., Path]) -> None:
    found = problems(
        write_scenario,
        topology=topology({"class": "tests.twin.no_such_module:Thing", "name": "x", "node": "robot"}),
    )
    (problem,) = at(found, "topology.services.5")
    assert problem.path == "topology.services.5.class"
    assert problem.line is not None
    assert "cannot import" in problem.message and "no_such_module" in problem.message


def test_a_class_without_the_named_attribute_is_reported(write_scenario: Callable[..., Path]) -> None:
    found = problems(write_scenario, topology=topology(user("Nope", "x")))
    (problem,) = at(found, "topology.services.5")
    assert problem.path == "topology.services.5.class" and "has no 'Nope'" in problem.message


def test_a_class_that_is_not_a_service_is_reported(write_scenario: Callable[..., Path]) -> None:
    found = problems(write_scenario, topology=topology(user("NotAService", "x")))
    (problem,) = at(found, "topology.services.5")
    assert problem.path == "topology.services.5.class"
    assert "NotAService" in problem.message and "not a" in problem.message and "Service" in problem.message


def test_params_that_fail_the_service_model_are_reported_by_field(
    write_scenario: Callable[..., Path],
) -> None:
    found = problems(
        write_scenario,
        topology=topology(user("Ticker", "ticker", period_ms="often", colour="red")),
    )
    paths = {p.path: p for p in at(found, "topology.services.5")}
    assert set(paths) == {"topology.services.5.period_ms", "topology.services.5.colour"}
    assert "unknown key" in paths["topology.services.5.colour"].message
    assert all(p.line is not None for p in paths.values())


def test_a_param_out_of_range_is_reported(write_scenario: Callable[..., Path]) -> None:
    found = problems(write_scenario, topology=topology(user("Ticker", "ticker", period_ms=-5)))
    (problem,) = at(found, "topology.services.5")
    assert problem.path == "topology.services.5.period_ms"


def test_an_unknown_type_lists_the_registered_types(write_scenario: Callable[..., Path]) -> None:
    found = problems(write_scenario, topology=topology({"type": "camera", "node": "robot"}))
    (problem,) = at(found, "topology.services.5")
    assert problem.path == "topology.services.5.type"
    assert "'camera'" in problem.message
    for name in ("driver", "gateway", "operator", "planner", "telemetry"):
        assert name in problem.message


def test_an_assertion_on_an_undeclared_user_metric_is_refused(write_scenario: Callable[..., Path]) -> None:
    good = write_scenario(
        topology=topology(user("Ticker", "ticker")), task=QUIET_TASK, assertions=["ticker.ticks > 0"]
    )
    twin.load(good)  # a declared metric is fine
    found = problems(
        write_scenario, topology=topology(user("Ticker", "ticker")), assertions=["ticker.tocks > 0"]
    )
    (problem,) = found
    assert problem.path == "assertions.0" and "ticker.tocks" in problem.message


def test_a_gateway_client_with_an_empty_token_is_refused(write_scenario: Callable[..., Path]) -> None:
    found = problems(write_scenario, topology=topology(gateway={"clients": {"operator": ""}}))
    gateway = at(found, "topology.services.1")
    assert gateway and all(p.path.startswith("topology.services.1.clients") for p in gateway)
    assert any("empty token" in p.message for p in gateway)
    assert all(p.line is not None for p in gateway)


def test_a_gateway_client_that_is_no_service_is_flagged(write_scenario: Callable[..., Path]) -> None:
    found = problems(write_scenario, topology=topology(gateway={"clients": {"operater": "tok-1234"}}))
    (problem,) = found
    assert problem.path == "topology.services.1.clients.operater"
    assert "no service named 'operater'" in problem.message
    assert "tok-1234" not in str(problem)


def test_a_gateway_route_to_a_service_without_that_kind_is_flagged(
    write_scenario: Callable[..., Path],
) -> None:
    routes = {
        "command": {"to": "planner", "kind": "plan"},
        "shout": {"to": "echo"},
        "lost": {"to": "nowhere"},
    }
    found = problems(write_scenario, topology=topology(user("Echo", "echo"), gateway={"routes": routes}))
    by_path = {p.path: p.message for p in found}
    assert "handles no 'shout' requests" in by_path["topology.services.1.routes.shout"]
    assert "boom, echo" in by_path["topology.services.1.routes.shout"]
    assert "no service named 'nowhere'" in by_path["topology.services.1.routes.lost.to"]
    assert len(found) == 2


# -- registries -----------------------------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name: str, obj: Any, dist: str | None = None, error: Exception | None = None) -> None:
        self.name = name
        self.value = f"fake:{name}"
        self.group = "test.widgets"
        self.dist = None if dist is None else SimpleNamespace(name=dist, version="1.2")
        self._obj, self._error = obj, error

    def load(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._obj


def test_registry_reports_duplicate_claims_and_broken_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    points = [
        FakeEntryPoint("gear", object(), dist="acme-rig"),
        FakeEntryPoint("gear", object(), dist="other-rig"),
        FakeEntryPoint("builtin", object(), dist="acme-rig"),
        FakeEntryPoint("broken", None, dist="shaky-rig", error=RuntimeError("no driver")),
        EntryPoint("lost", "tests.twin.no_such_module:Widget", "test.widgets"),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [p for p in points if p.group == group])
    registry: Registry[object] = Registry("test.widgets", "widget")
    registry.register("builtin", object())
    with pytest.raises(PluginError) as info:
        registry.load_plugins()
    lines = info.value.problems
    assert len(lines) == 4, lines
    text = "\n".join(lines)
    assert str(info.value) == text
    assert any("'builtin' is claimed twice" in line and "acme-rig 1.2" in line for line in lines)
    assert any(
        "'gear' is claimed twice" in line and "acme-rig" in line and "other-rig" in line for line in lines
    )
    assert any("shaky-rig 1.2" in line and "RuntimeError: no driver" in line for line in lines)
    assert any(
        "'lost'" in line and "unknown distribution" in line and "ModuleNotFoundError" in line
        for line in lines
    )
    assert "gear" in registry.names()  # the first claim stands


def test_registry_check_rejects_a_plugin_that_is_not_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.twin.services.fixtures_services import NotAService, Ticker
    from twin.services.api import is_service_class

    points = [
        FakeEntryPoint("ticker", Ticker, dist="acme-rig"),
        FakeEntryPoint("nope", NotAService, dist="acme-rig"),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: points)
    registry: Registry[type] = Registry("test.widgets", "service type", check=is_service_class)
    with pytest.raises(PluginError) as info:
        registry.load_plugins()
    (line,) = info.value.problems
    assert "'nope'" in line and "acme-rig 1.2" in line and "not a twin.service.Service subclass" in line
    assert registry.get("ticker") is Ticker


def test_subscriptions_must_name_a_service(write_scenario: Callable[..., Path]) -> None:
    topology = {**BASE["topology"], "subscriptions": [{"service": "telemetri", "topic": "joint_states"}]}
    path = write_scenario(topology=topology)
    with pytest.raises(ScenarioError) as info:
        twin.load(path)
    assert "topology.subscriptions.0.service: no service named 'telemetri'" in str(info.value)
