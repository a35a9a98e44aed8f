"""Strict JSON decoding shared by every parser in the model."""

from __future__ import annotations

import json
import math
from typing import Any

from plantmodel.errors import ValidationError


def _reject_constant(name: str) -> Any:
    raise ValidationError(f"{name} is not a number (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    # Fix (property tests): 1e400 decodes to inf without parse_constant being asked; in a field no
    # parser looks at (a Shelly status keeps every field) it reached the bridge's meter state, which
    # dumps() (allow_nan=False) then could not write.
    value = float(text)
    if not math.isfinite(value):
        raise ValidationError(f"number {text[:40]} is out of range (JSON numbers must be finite)")
    return value


def loads_object(payload: bytes | str, what: str) -> dict[str, Any]:
    """Decode a UTF-8 JSON object; NaN/Infinity and non-objects are refused."""
    if isinstance(payload, bytes | bytearray):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{what} is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(payload, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValidationError:
        raise
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None
    except ValueError as exc:
        # Fix (property tests): an integer of more than 4300 digits makes json.loads raise a plain
        # ValueError (Python's int-string limit), which escaped as a non-ValidationError (the bridge
        # held the message forever instead of rejecting it).
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def dumps(data: Any) -> str:
    # Compact UTF-8 (°C stays °C), so mosquitto_sub shows it on one readable line.
    return json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def require_int(data: dict[str, Any], key: str, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
    if key not in data:
        raise ValidationError(f"missing field {key!r}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"field {key!r} must be an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise ValidationError(f"field {key!r} = {value} is below {minimum}")
    if maximum is not None and value > maximum:
        raise ValidationError(f"field {key!r} = {value} is above {maximum}")
    return value


def number(value: Any, key: str) -> float:
    """A JSON number (int or float, never bool), finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"field {key!r} must be a number, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"field {key!r} is not a finite number")
    if isinstance(value, int):
        # Fix (property tests): an integer too large for a float (10**400) was accepted, and float()
        # of it raised OverflowError further on (a 500 on PUT /api/thresholds with "low": 1e400 written
        # out as digits).
        try:
            float(value)
        except OverflowError:
            raise ValidationError(f"field {key!r} is not a finite number (too large)") from None
    return value


def require_number(data: dict[str, Any], key: str) -> float:
    if key not in data:
        raise ValidationError(f"missing field {key!r}")
    return number(data[key], key)


def require_str(data: dict[str, Any], key: str) -> str:
    if key not in data:
        raise ValidationError(f"missing field {key!r}")
    value = data[key]
    if not isinstance(value, str):
        raise ValidationError(f"field {key!r} must be a string, got {_kind(value)}")
    return value


def optional_text(value: Any, what: str, size: int, *, minimum: int = 0) -> str | None:
    """A short text a device says of itself (model, firmware): absent (None), or printable and of
    ``minimum``..``size`` characters, so that it fits its column and logs cleanly."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isprintable() or not minimum <= len(value) <= size:
        span = f"{minimum} to {size}" if minimum else f"at most {size}"
        raise ValidationError(f"{what} must be printable text of {span} characters")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
