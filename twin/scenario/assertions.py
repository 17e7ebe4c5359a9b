"""Scenario assertions: `metric.path OP number`, parsed without eval.

Grammar:  assertion := path ws* op ws* number
          path      := segment ("." segment)*     segment := [A-Za-z0-9_-]+
          op        := "<" | "<=" | ">" | ">=" | "==" | "!="
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["ASSERTION_PATTERN", "Assertion", "parse_assertion"]

_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
# One pattern for Python and for the JSON Schema that editors check with JavaScript: it uses
# only syntax that ECMA-262 and Python's `re` both accept, with numbered groups (path, op, number).
# (Python's \d and \s also match non-ASCII digits and spaces, as they always did here.)
ASSERTION_PATTERN = (
    r"^\s*([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\s*(<=|>=|==|!=|<|>)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_PATTERN = re.compile(ASSERTION_PATTERN)


@dataclass(frozen=True)
class Assertion:
    path: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.path} {self.op} {self.bound:g}"

    def holds(self, measured: float) -> bool:
        if isinstance(measured, float) and math.isnan(measured):
            return False
        return bool(_OPS[self.op](measured, self.bound))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": ASSERTION_PATTERN,
            "description": "metric path, comparison, number; e.g. 'tracking.max_error_deg < 2.0'",
        }


def _validate(value: object) -> Assertion:
    if isinstance(value, Assertion):
        return value
    if not isinstance(value, str):
        raise ValueError("an assertion is a string like 'tracking.max_error_deg < 2.0'")
    return parse_assertion(value)


def parse_assertion(text: str) -> Assertion:
    """Parse one assertion; ValueError explains what is wrong."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(
            f"cannot parse assertion {text!r}: expected 'metric.path OP number' with OP one of "
            + " ".join(_OPS)
        )
    path, op, number = match.groups()
    return Assertion(path, op, float(number))
