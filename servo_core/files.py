"""Reading files that users name (scenarios, robot descriptions): regular files of bounded size.

One rule for every such file, so that none of them is read whole whatever its size: it must
be a regular file (not a directory, FIFO or device, which could block or never end) of at
most `MAX_INPUT_FILE_BYTES`; only that many bytes and one more are ever read.
"""

from __future__ import annotations

import os
import stat

from servo_core.errors import ConfigError

__all__ = ["MAX_INPUT_FILE_BYTES", "InputFileError", "read_input_file"]

MAX_INPUT_FILE_BYTES = 8 * 1024 * 1024
"""Largest scenario or robot file read (8 MiB; the shipped ones are under 20 KiB)."""


class InputFileError(ConfigError):
    """A file that cannot be read as input; `reason` says why without naming the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_input_file(path: str | os.PathLike[str], limit: int = MAX_INPUT_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path`; InputFileError when it is missing, not a
    regular file, unreadable or larger than `limit` bytes."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError(name, "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(name, "is not a regular file")
        with open(name, "rb") as stream:
            raw = stream.read(limit + 1)
    except FileNotFoundError:
        raise InputFileError(name, "file not found") from None
    except PermissionError:
        raise InputFileError(name, "permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputFileError(name, f"cannot read the file: {reason}") from None
    if len(raw) > limit:
        raise InputFileError(name, f"file is larger than {_size(limit)}")
    return raw


def _size(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n % mib == 0 else f"{n:,} bytes"
