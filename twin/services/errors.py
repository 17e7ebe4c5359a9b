"""Errors of service-to-service traffic (a leaf: the messaging, the pipeline and services use them)."""

from __future__ import annotations

from servo_core.errors import TwinError

__all__ = ["Refused", "RequestFailed", "RequestRefused", "RequestTimeout", "ServiceError"]


class RequestTimeout(TwinError):
    """No reply arrived within the request's timeout."""


class RequestFailed(TwinError):
    """The callee answered with an error."""


class RequestRefused(RequestFailed):
    """The callee refused the request (unknown client, rate limit, invalid body, unknown kind)."""


class ServiceError(TwinError):
    """Raised by a handler to answer its request with this error (the service itself is fine)."""


class Refused(ServiceError):
    """Raised by a handler to refuse a request (unknown client, over a rate limit, invalid body)."""
