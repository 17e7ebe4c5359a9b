"""The gateway: the single entry for clients' requests.

Routes map a request kind to the service (and the request kind there) that
handles it. Before forwarding, the gateway checks the client's token (one per
client service, compared in constant time), the client's rate limit, and the
request body against the schema the target service declares. Refusals never
echo a token. Downstream failures come back as a clear error instead of a hang.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Generator, Mapping
from typing import Any

import simpy
from pydantic import Field, SecretStr, field_validator

from twin.patterns.rate_limiter import RateLimiter
from twin.services.api import Counter, Message, Refused, Service, ServiceParams, check_body
from twin.services.messages import service_of

__all__ = ["Gateway", "GatewayParams", "RateLimit", "Route"]


class RateLimit(ServiceParams):
    limit: int = Field(ge=1, le=1_000_000, description="requests per period")
    period_ms: float = Field(default=1000.0, gt=0)


class Route(ServiceParams):
    to: str = Field(description="the service that handles this kind of request")
    kind: str | None = Field(default=None, description="the request kind there (default: the same)")


class GatewayParams(ServiceParams):
    request_timeout_ms: float = Field(default=500.0, gt=0)
    clients: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="client service -> token; when set, only these clients, each with its token",
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="per client, unless client_rate_limits says"
    )
    client_rate_limits: dict[str, RateLimit] = Field(
        default_factory=dict, description="client -> its own limit"
    )

    @field_validator("clients")
    @classmethod
    def _tokens_not_empty(cls, clients: dict[str, SecretStr]) -> dict[str, SecretStr]:
        empty = sorted(name for name, token in clients.items() if not token.get_secret_value())
        if empty:
            raise ValueError(f"empty token for client(s) {', '.join(empty)}: an empty token admits anyone")
        return clients

    routes: dict[str, Route] = Field(
        default_factory=lambda: {"command": Route(to="planner", kind="plan")},
        description="request kind -> where it goes (default: command -> planner's plan)",
    )


class Gateway(Service[GatewayParams]):
    Params = GatewayParams
    description = "authenticates, rate-limits, validates and routes clients' requests"
    forwarded = Counter("requests forwarded")
    unauthorized = Counter("requests from unknown clients or with a wrong token")
    rate_limited = Counter("requests beyond a client's rate limit")
    invalid = Counter("requests of an unknown kind or with a body the target refuses")

    @classmethod
    def check_topology(
        cls, params: Any, services: Mapping[str, type[Service[Any]]]
    ) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        names = ", ".join(sorted(services))
        for client in params.clients:
            if client not in services:
                problems.append((("clients", client), f"no service named {client!r}; services: {names}"))
        for client in params.client_rate_limits:
            if client not in services:
                problems.append(
                    (("client_rate_limits", client), f"no service named {client!r}; services: {names}")
                )
        for kind, route in params.routes.items():
            target = services.get(route.to)
            if target is None:
                problems.append((("routes", kind, "to"), f"no service named {route.to!r}; services: {names}"))
                continue
            wanted = route.kind or kind
            kinds = target.request_kinds()
            if wanted not in kinds:
                handled = ", ".join(sorted(kinds)) or "none"
                problems.append(
                    (("routes", kind), f"{route.to} handles no {wanted!r} requests; it handles: {handled}")
                )
        return problems

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._limiters: dict[str, RateLimiter] = {}

    def handler(self, kind: str) -> tuple[Callable[[Message], Any], Any] | None:
        # The route's target checks the body (in _route): the gateway takes any body.
        return (self._route, object) if kind in self.params.routes else super().handler(kind)

    def kinds_handled(self) -> list[str]:
        return sorted({*self.params.routes, *super().kinds_handled()})

    @classmethod
    def request_kinds(cls) -> dict[str, Any]:
        return {}  # the routes decide, per scenario; see handler()

    def _route(self, request: Message) -> Generator[simpy.Event, Any, Any]:
        client = service_of(request.sender)
        self._authorize(client, request.token)
        self._limit(client)
        route = self.params.routes[request.kind]
        kind = route.kind or request.kind
        try:
            body = check_body(route.to, kind, self.ctx.request_schema(route.to, kind), request.body)
        except Refused:
            self.invalid.inc()
            raise
        self.forwarded.inc()
        # A timeout, an error reply or a pattern's refusal goes back to the client as an error.
        return (
            yield from self.ctx.call(
                route.to, kind, body, on_behalf_of=request, timeout_s=self.params.request_timeout_ms / 1000.0
            )
        )

    def _authorize(self, client: str, token: str) -> None:
        clients = self.params.clients
        if not clients:
            return
        expected = clients.get(client)
        given = token.encode()
        # Compare in constant time even for unknown clients, so timing tells nothing.
        wanted = expected.get_secret_value().encode() if expected is not None else b"\0" * max(len(given), 1)
        if not hmac.compare_digest(given, wanted) or expected is None:
            self.unauthorized.inc()
            raise Refused(f"client {client!r} is not authorized")

    def _limit(self, client: str) -> None:
        limit = self.params.client_rate_limits.get(client, self.params.rate_limit)
        if limit is None:
            return
        limiter = self._limiters.get(client)
        if limiter is None:
            limiter = self._limiters[client] = RateLimiter(
                self.ctx.env, limit.limit, limit.period_ms / 1000.0, name=f"{self.ctx.service}:{client}"
            )
        if not limiter.try_acquire():
            self.rate_limited.inc()
            raise Refused(f"rate limit exceeded for client {client!r}")
