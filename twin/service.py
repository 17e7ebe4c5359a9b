"""Write your own service: everything a service may use, in one import.

from twin.service import Service, ServiceParams, handles, Counter
"""

from twin.control.commands import Alarm, EStop, JointStates, MoveCommand, Setpoints, SineCommand
from twin.patterns.eventbus import Event
from twin.services.api import (
    Counter,
    Gauge,
    Histogram,
    Message,
    Refused,
    RequestFailed,
    RequestTimeout,
    Service,
    ServiceContext,
    ServiceError,
    ServiceParams,
    handles,
)

__all__ = [
    "Alarm",
    "Counter",
    "EStop",
    "Event",
    "Gauge",
    "Histogram",
    "JointStates",
    "Message",
    "MoveCommand",
    "Refused",
    "RequestFailed",
    "RequestTimeout",
    "Service",
    "ServiceContext",
    "ServiceError",
    "ServiceParams",
    "Setpoints",
    "SineCommand",
    "handles",
]
