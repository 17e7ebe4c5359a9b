"""PyBullet without its build banner on stdout.

PyBullet's C code prints "pybullet build time: ..." on import, straight to
the process's file descriptors, which would clutter the CLI's output and
corrupt machine-readable output. The import and each connection happen here
with fds 1 and 2 pointed at /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = ["connect_direct", "pybullet", "quiet_output"]


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
    """A new private PyBullet client in DIRECT mode (no GUI, no global state)."""
    pb = pybullet()
    with quiet_output():
        return pb.connect(pb.DIRECT)
