"""User services that the service tests name by class path, e.g.
`class: "tests.twin.services.fixtures_services:Ticker"`."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field

from servo_core.errors import TwinError
from twin.services.api import Counter, Message, Service, ServiceParams, handles


class TickerParams(ServiceParams):
    period_ms: float = Field(default=100.0, gt=0)


class Ticker(Service[TickerParams]):
    """Counts a tick every period."""

    Params = TickerParams
    ticks = Counter("periods seen")

    def start(self) -> None:
        self.ctx.every(self.params.period_ms / 1000.0, self.ticks.inc)


class PublisherParams(ServiceParams):
    topic: str = "news"
    period_ms: float = Field(default=100.0, gt=0)


class Publisher(Service[PublisherParams]):
    Params = PublisherParams
    published = Counter("events published")

    def start(self) -> None:
        self.ctx.every(self.params.period_ms / 1000.0, self._publish, start_s=0.05)

    def _publish(self) -> None:
        self.published.inc()
        self.ctx.publish(self.params.topic, {"n": self.published.value})


class SubscriberParams(ServiceParams):
    topic: str = "news"


class Subscriber(Service[SubscriberParams]):
    Params = SubscriberParams
    received = Counter("events received")

    def start(self) -> None:
        self.ctx.subscribe(self.params.topic, lambda event: self.received.inc())


class EchoParams(ServiceParams):
    prefix: str = ""


class Echo(Service[EchoParams]):
    """Echoes a string; `boom` requests fail with a ValueError (a bug in the service)."""

    Params = EchoParams
    echoed = Counter("requests echoed")

    @handles("echo", str)
    def echo(self, request: Message) -> str:
        self.echoed.inc()
        return self.params.prefix + request.body

    @handles("boom")
    def boom(self, request: Message) -> str:
        raise ValueError("kaboom")


class CallerParams(ServiceParams):
    target: str = "echo"
    at_s: float = 0.1


class Caller(Service[CallerParams]):
    """Calls its target once with `echo` and once with `boom`; keeps what came back."""

    Params = CallerParams
    replies = Counter("calls answered")
    errors = Counter("calls answered with an error")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.answers: list[Any] = []
        self.error_texts: list[str] = []

    def start(self) -> None:
        self.ctx.at(self.params.at_s, lambda: self._call("echo", "hi"))
        self.ctx.at(self.params.at_s + 0.1, lambda: self._call("boom", None))

    def _call(self, kind: str, body: Any) -> Generator[simpy.Event, Any, None]:
        try:
            answer = yield from self.ctx.call(self.params.target, kind, body)
        except TwinError as exc:
            self.errors.inc()
            self.error_texts.append(str(exc))
        else:
            self.replies.inc()
            self.answers.append(answer)


class ServoToucher(Service[ServiceParams]):
    """Reaches for the servo bus it may not have."""

    touched = Counter("times it got the bus")

    def start(self) -> None:
        self.ctx.at(0.1, self._touch)

    def _touch(self) -> None:
        self.ctx.servo_bus  # noqa: B018 - the access is the point
        self.touched.inc()


class NotAService:
    """A class that is not a Service."""
