"""PyBullet without its build banner on stdout.

PyBullet's C code prints "pybullet build time: ..." on import, straight to
the process's file descriptors, which would clutter the CLI's output and
corrupt machine-readable output. The import and each connection happen here
with fds 1 and 2 pointed at /dev/null.

Clients are reused: `release` empties a client's world and keeps it for the next
`connect_direct` in this process, so a sweep worker running one scenario after another
connects once (a connection costs about 2 ms, emptying one about 0.2 ms).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = ["MAX_IDLE", "connect_direct", "pybullet", "quiet_output", "release"]

MAX_IDLE = 2
"""Emptied clients kept for reuse; more are disconnected."""
_idle: list[int] = []


def _flush_c_stdout() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no libc to flush: nothing is buffered there
        pass


@contextlib.contextmanager
def quiet_output() -> Iterator[None]:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no standard fds at all: nothing to protect
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                _flush_c_stdout()  # anything still in libc's buffer goes to /dev/null
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def pybullet() -> ModuleType:
    with quiet_output():
        import pybullet as pb
    return pb


def connect_direct() -> int:
    """A private PyBullet client in DIRECT mode (no GUI, no global state) with an empty world:
    one handed back by `release`, else a new connection. Its user sets gravity, time step and
    solver iterations, as on a new one."""
    pb = pybullet()
    while _idle:
        client = _idle.pop()  # atomic: two threads never get the same client
        if pb.isConnected(client):
            return client
    with quiet_output():
        return pb.connect(pb.DIRECT)


def release(client: int) -> None:
    """Done with `client`: its world is emptied (resetSimulation) and the client kept for the
    next `connect_direct`, or disconnected when MAX_IDLE are kept already."""
    pb = pybullet()
    if not pb.isConnected(client):
        return
    if len(_idle) >= MAX_IDLE:
        pb.disconnect(client)
        return
    pb.resetSimulation(physicsClientId=client)
    _idle.append(client)
