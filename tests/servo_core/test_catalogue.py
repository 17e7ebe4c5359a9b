"""Servo models by registration: built-in YAML files and plugins' files, callables and specs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from servo_core.catalogue import SERVO_MODELS, ServoSpec, catalogue, model_name, servo_spec
from servo_core.errors import ConfigError

BUILT_IN = {"xl430-w250", "xm430-w350", "xl330-m288", "sts3215", "sts3250"}


def test_built_in_models() -> None:
    assert set(catalogue()) >= BUILT_IN
    assert set(SERVO_MODELS.names()) >= BUILT_IN
    assert model_name("dynamixel", 1060) == "xl430-w250"
    assert model_name("feetech", 1060) == "unknown-1060"


def test_unknown_model_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as info:
        servo_spec("ax12")
    assert str(info.value).startswith(
        "unknown servo model 'ax12'; registered: sts3215, sts3215-c001, sts3215-c044, sts3215-c046, sts3250,"
    )
    assert "xl330-m077, xl330-m288, xl330-m288-identified, xl430-w250" in str(info.value)


@pytest.fixture
def custom_yaml(tmp_path: Path) -> Path:
    text = (Path(__file__).parents[2] / "servo_core" / "catalogue" / "xl430_w250.yaml").read_text()
    text = text.replace("name: xl430-w250", "name: my-servo").replace("value: 1060", "value: 4242")
    path = tmp_path / "my_servo.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        SERVO_MODELS.unregister(name)


def test_a_registered_yaml_file_is_a_model(custom_yaml: Path, registered: list[str]) -> None:
    SERVO_MODELS.register("my-servo", custom_yaml, origin="a test")
    registered.append("my-servo")
    spec = servo_spec("my-servo")
    assert spec.model_number == 4242 and spec.protocol == "dynamixel"
    assert "my-servo" in catalogue()
    assert model_name("dynamixel", 4242) == "my-servo"


def test_a_callable_or_a_spec_is_a_model(custom_yaml: Path, registered: list[str]) -> None:
    SERVO_MODELS.register("my-servo", lambda: str(custom_yaml), origin="a test")
    registered.append("my-servo")
    other = dataclasses.replace(servo_spec("sts3215"), name="other", model_number=9)
    SERVO_MODELS.register("other", other, origin="a test")
    registered.append("other")
    SERVO_MODELS.register("third", lambda: dataclasses.replace(other, name="third"), origin="a test")
    registered.append("third")
    assert servo_spec("my-servo").model_number == 4242
    assert servo_spec("other") is other
    assert isinstance(servo_spec("third"), ServoSpec)


def test_a_file_describing_another_model_is_refused(custom_yaml: Path, registered: list[str]) -> None:
    SERVO_MODELS.register("not-mine", custom_yaml, origin="a test")
    registered.append("not-mine")
    with pytest.raises(ConfigError, match="registered with a file describing 'my-servo'"):
        servo_spec("not-mine")


def test_a_bad_file_names_itself(tmp_path: Path, registered: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nprotocol: herkulex\n")
    SERVO_MODELS.register("bad", bad, origin="a test")
    registered.append("bad")
    with pytest.raises(ConfigError, match="bad.yaml: missing fields"):
        servo_spec("bad")
    with pytest.raises(ConfigError, match="claimed twice"):
        SERVO_MODELS.register("xl430-w250", bad, origin="a test")
    with pytest.raises(ConfigError, match="expected a path"):
        SERVO_MODELS.register("number", 42, origin="a test")  # type: ignore[arg-type]
