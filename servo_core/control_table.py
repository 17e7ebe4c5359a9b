"""Control tables as data: the register maps of the servos the twin models.

Addresses and sizes follow the vendors' tables (ROBOTIS e-Manual for the
X series, Feetech's STS memory table). Values are little-endian. Feetech marks the sign
of some fields with a bit instead of two's complement (`sign_bit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from servo_core.units import decode_sign_magnitude

__all__ = ["Access", "ControlTable", "Register", "reg"]

Access = Literal["R", "RW"]


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int
    access: Access
    eeprom: bool = False
    signed: bool = False  # two's complement
    sign_bit: int | None = None  # Feetech sign-magnitude fields
    unit: str = ""  # what one count means, e.g. "0.229 rpm", "0.1 V"; "" for plain numbers or flags
    lowest: int = field(init=False, repr=False, compare=False)  # the range a value saturates to
    highest: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bits = 8 * self.size
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.signed else (0, (1 << bits) - 1)
        if self.sign_bit is not None:
            lo, hi = -((1 << self.sign_bit) - 1), (1 << self.sign_bit) - 1
        object.__setattr__(self, "lowest", lo)
        object.__setattr__(self, "highest", hi)

    def decode(self, raw: bytes) -> int:
        value = int.from_bytes(raw, "little")
        if self.sign_bit is not None:
            return decode_sign_magnitude(value, self.sign_bit)
        if self.signed and value >= 1 << (8 * self.size - 1):
            value -= 1 << (8 * self.size)
        return value

    def encode(self, value: int) -> bytes:
        """Little-endian bytes of `value`, saturated to the register's range."""
        lo, hi = self.lowest, self.highest
        value = lo if value < lo else (hi if value > hi else value)
        if self.sign_bit is not None:
            if value < 0:
                value = -value | (1 << self.sign_bit)
            return value.to_bytes(self.size, "little")
        return value.to_bytes(self.size, "little", signed=self.signed)


@dataclass(frozen=True)
class ControlTable:
    protocol: str
    size: int
    registers: tuple[Register, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {r.name: r for r in self.registers})

    def __getitem__(self, name: str) -> Register:
        return self._by_name[name]  # type: ignore[attr-defined]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]


def reg(name: str, address: int, size: int, access: Access = "RW", **kw: object) -> Register:
    return Register(name, address, size, access, **kw)  # type: ignore[arg-type]
