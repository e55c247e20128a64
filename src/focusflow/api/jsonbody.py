"""Parsing a JSON request body: every bad body is ``malformed``, never a server error.

``json.loads`` refuses text that is not JSON with ValueError, but a body nested
past the interpreter's recursion limit (a few kilobytes of ``[``) makes it raise
RecursionError instead, which no route expects: the client got a 500. Both are
the client's fault and get the documented ``malformed`` (400). The field
readers below check one field of a parsed body each (``invalid_parameter``);
a ``default`` of None leaves an absent field None.

The recursion limit is no bound to rely on: py-evm raises it to 100,000 when
the node loads the EVM (its interpreter recurses once per call level), and
``json.loads`` nesting that deep overflows the C stack and kills the process.
So nesting is measured before parsing: a body nested deeper than
MAX_JSON_DEPTH is refused without being parsed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, overload

from focusflow.core.errors import DecodeError, InvalidParameterError
from focusflow.core.jsontext import too_deep


def parse_json(body: bytes | str) -> Any:
    """The JSON value of a request body; DecodeError (``malformed``) if it is none
    or nests deeper than MAX_JSON_DEPTH."""
    if too_deep(body):
        raise DecodeError("request body is nested too deeply")
    try:
        return json.loads(body)
    except RecursionError:
        raise DecodeError("request body is nested too deeply") from None
    except ValueError:
        raise DecodeError("request body is not JSON") from None


@overload
def number_field(
    doc: Mapping[str, object], name: str, default: float, lo: float, hi: float
) -> float: ...
@overload
def number_field(
    doc: Mapping[str, object], name: str, default: None, lo: float, hi: float
) -> float | None: ...
def number_field(
    doc: Mapping[str, object], name: str, default: float | None, lo: float, hi: float
) -> float | None:
    """A finite number in ``[lo, hi]`` (as float), or ``default`` when absent."""
    value = doc.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be in [{lo:g}, {hi:g}], got {value}")
    return float(value)


@overload
def integer_field(doc: Mapping[str, object], name: str, default: int, lo: int, hi: int) -> int: ...
@overload
def integer_field(
    doc: Mapping[str, object], name: str, default: None, lo: int, hi: int
) -> int | None: ...
def integer_field(
    doc: Mapping[str, object], name: str, default: int | None, lo: int, hi: int
) -> int | None:
    """An integer (not a bool) in ``lo..hi``, or ``default`` when absent.

    JSON has one number type: ``8.0`` is the integer 8 (JSON Schema says so,
    and clients that compute a value in floating point send it that way).
    """
    value = doc.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def flag_field(doc: Mapping[str, object], name: str, default: bool = False) -> bool:
    value = doc.get(name, default)
    if not isinstance(value, bool):
        raise InvalidParameterError(f"{name} must be true or false")
    return value


def text_field(doc: Mapping[str, object], name: str, limit: int) -> str:
    """A string of 1 to ``limit`` characters (required)."""
    value = doc.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidParameterError(f"{name} must be a string of 1 to {limit} characters")
    return value


def object_body(doc: object, fields: set[str]) -> dict[str, object]:
    """A parsed body that is a JSON object with no field outside ``fields``."""
    if not isinstance(doc, dict):
        raise InvalidParameterError("the request body must be a JSON object")
    unknown = sorted(set(doc) - fields)
    if unknown:
        raise InvalidParameterError(f"unknown field {unknown[0]!r}")
    return doc


def list_field(doc: Mapping[str, object], name: str, limit: int) -> list[object]:
    """A list of 1 to ``limit`` items (required); the items are the caller's to check."""
    value = doc.get(name)
    if not isinstance(value, list) or not value:
        raise InvalidParameterError(f"{name} must be a non-empty list")
    if len(value) > limit:
        raise InvalidParameterError(f"{name} holds at most {limit} items, got {len(value)}")
    return value
