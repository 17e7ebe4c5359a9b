"""Prompt wake-ups for a serving or control thread, without privileges (Linux).

Such a thread sleeps most of the time and must run the moment a byte arrives
or a deadline comes. On a busy machine the default scheduling lets it wait
out a CPU hog's time slice (milliseconds), and a timed sleep ends up to 50 us
late (the default timer slack). Two per-thread settings need no privileges:

- `request_short_slice(s)`: the EEVDF scheduler (Linux 6.12+) takes a slice
  request through sched_setattr (sched_runtime); a woken thread with a short
  slice preempts a thread with a long one. Older kernels ignore it.
- `tighten_timer_slack(s)`: prctl(PR_SET_TIMERSLACK): timed sleeps (select,
  sleep) end within `s` of their deadline.

Both act on the calling thread, return whether the kernel took the setting and
never raise; `prompt_wakeups()` applies both for a `with` block. Real-time
policies (SCHED_FIFO) would need CAP_SYS_NICE: not used.
"""

from __future__ import annotations

import ctypes
import platform
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["prompt_wakeups", "request_short_slice", "tighten_timer_slack"]

# sched_setattr / sched_getattr syscall numbers; other architectures are not tried.
_SCHED_ATTR_CALLS = {"x86_64": (314, 315), "aarch64": (274, 275), "arm64": (274, 275)}
# struct sched_attr (v1): size, policy, flags, nice, priority, runtime, deadline, period, util min/max.
_SCHED_ATTR = struct.Struct("=IIQiIQQQII")
_FAIR_POLICIES = (0, 3)  # SCHED_OTHER, SCHED_BATCH: the slice request applies to these
_PR_SET_TIMERSLACK, _PR_GET_TIMERSLACK = 29, 30


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _sched_attr() -> list[int] | None:
    """The calling thread's sched_attr fields, or None where they cannot be had."""
    libc, calls = _libc(), _SCHED_ATTR_CALLS.get(platform.machine())
    if libc is None or calls is None:
        return None
    buf = ctypes.create_string_buffer(_SCHED_ATTR.size)
    if libc.syscall(calls[1], 0, buf, _SCHED_ATTR.size, 0) != 0:
        return None
    return list(_SCHED_ATTR.unpack(buf.raw))


def _set_slice_ns(ns: int) -> bool:
    fields, libc = _sched_attr(), _libc()
    if fields is None or libc is None or fields[1] not in _FAIR_POLICIES:
        return False
    fields[0], fields[2], fields[5] = _SCHED_ATTR.size, 0, ns
    buf = ctypes.create_string_buffer(_SCHED_ATTR.pack(*fields), _SCHED_ATTR.size)
    if libc.syscall(_SCHED_ATTR_CALLS[platform.machine()][0], 0, buf, 0) != 0:
        return False
    # A kernel without custom slices takes the call and keeps no slice: read it back.
    after = _sched_attr()
    return after is not None and after[5] != 0


def request_short_slice(seconds: float = 0.0001) -> bool:
    """Ask for a scheduler slice of `seconds` for the calling thread (the kernel clamps it to >= 0.1 ms)."""
    return seconds > 0 and _set_slice_ns(int(seconds * 1e9))


def _timer_slack_ns() -> int | None:
    libc = _libc()
    if libc is None:
        return None
    ns = libc.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    return int(ns) if ns >= 0 else None


def tighten_timer_slack(seconds: float = 1e-6) -> bool:
    """Let the calling thread's timed sleeps end within `seconds` of their deadline."""
    libc = _libc()
    if libc is None or not seconds > 0:
        return False
    ns = max(1, int(seconds * 1e9))
    if libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0) != 0:
        return False
    return _timer_slack_ns() == ns


@contextmanager
def prompt_wakeups() -> Iterator[tuple[bool, bool]]:
    """A short slice and a tight timer slack for the calling thread inside the block; its own after.

    Yields (short slice taken, timer slack taken).
    """
    attr, slack = _sched_attr(), _timer_slack_ns()
    try:
        yield request_short_slice(), tighten_timer_slack()
    finally:
        if attr is not None and attr[5]:
            _set_slice_ns(attr[5])
        libc = _libc()
        if slack is not None and libc is not None:
            libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(slack), 0, 0, 0)
