"""Query-string and JSON-body parsing shared by the API routes. Every problem is an
:class:`ApiError` naming the parameter, and an unknown parameter is refused rather than silently
ignored."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import request
from flask_babel import gettext as _

from webui.api import ApiError

MIN_YEAR, MAX_YEAR = 1001, 9998
_INT = re.compile(r"-?[0-9]{1,18}")  # fits a BIGINT: no overflow further down


def query(allowed: Iterable[str]) -> Mapping[str, str]:
    """The request's query arguments, refusing unknown and repeated ones."""
    allowed = set(allowed)
    args = request.args
    unknown = sorted(set(args) - allowed)
    if unknown and not allowed:
        raise ApiError(400, _("unknown parameter %(name)s (allowed: none)", name=repr(unknown[0])))
    if unknown:
        raise ApiError(400, _("unknown parameter %(name)s (allowed: %(allowed)s)", name=repr(unknown[0]),
                              allowed=", ".join(sorted(allowed))))
    for key in args:
        if len(args.getlist(key)) > 1:
            raise ApiError(400, _("parameter %(name)s given more than once", name=repr(key)))
    return {k: args[k] for k in args}


def parse_time(name: str, raw: str) -> datetime:
    """ISO 8601 (``2025-09-01T09:30:00Z``, with offset, or naive meaning UTC) -> aware UTC."""
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, _("%(name)s=%(value)s is not an ISO 8601 date-time (e.g. 2025-09-01T09:30:00Z)",
                              name=name, value=repr(raw))) from None
    # MariaDB's DATETIME range (and room for the API's default windows around it).
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ApiError(400, _("%(name)s=%(value)s: the year must be within %(min)s..%(max)s",
                              name=name, value=repr(raw), min=MIN_YEAR, max=MAX_YEAR))
    return value


def time_range(args: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """``start`` and ``end`` (each optional); start after end is an error."""
    # ``in``, not truthiness: an empty ``start=`` is an error, not a silently dropped filter.
    start = parse_time("start", args["start"]) if "start" in args else None
    end = parse_time("end", args["end"]) if "end" in args else None
    if start and end and start > end:
        raise ApiError(400, _("start (%(start)s) is after end (%(end)s)", start=args["start"], end=args["end"]))
    return start, end


def parse_int(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    # Plain ASCII digits only: int() would also take "1_000", " 7 " and non-Latin digits.
    if not _INT.fullmatch(raw):
        raise ApiError(400, _("%(name)s=%(value)s is not an integer", name=name, value=repr(raw)))
    value = int(raw)
    if minimum is not None and value < minimum:
        raise ApiError(400, _("%(name)s=%(value)s must be >= %(minimum)s", name=name, value=value, minimum=minimum))
    if maximum is not None and value > maximum:
        raise ApiError(400, _("%(name)s=%(value)s must be <= %(maximum)s", name=name, value=value, maximum=maximum))
    return value


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def check(self, total: int) -> int:
        """The page count; a page past the end (other than page 1 of nothing) is a 404."""
        pages = max(1, math.ceil(total / self.size))
        if self.number > pages:
            raise ApiError(404, _("page %(page)s is out of range (there are %(pages)s page(s) of %(size)s)",
                                  page=self.number, pages=pages, size=self.size))
        return pages


PAGE_PARAMS = ("page", "per_page")


def page(args: Mapping[str, str], *, default_size: int = 100, max_size: int = 1000) -> Page:
    number = parse_int("page", args["page"], minimum=1) if "page" in args else 1
    size = parse_int("per_page", args["per_page"], minimum=1, maximum=max_size) if "per_page" in args \
        else default_size
    return Page(number, size)


def choice(args: Mapping[str, str], name: str, choices: Iterable[str], default: str) -> str:
    choices = tuple(choices)
    value = args.get(name, default)
    if value not in choices:
        raise ApiError(400, _("%(name)s=%(value)s must be one of %(choices)s", name=name, value=repr(value),
                              choices=", ".join(choices)))
    return value


def text(args: Mapping[str, str], name: str) -> str | None:
    """An optional string parameter; present but empty is an error (never an ignored filter)."""
    if name not in args:
        return None
    if not args[name].strip():
        raise ApiError(400, _("parameter %(name)s is empty", name=repr(name)))
    return args[name]


def required(args: Mapping[str, str], name: str) -> str:
    value = text(args, name)
    if value is None:
        raise ApiError(400, _("parameter %(name)s is required", name=repr(name)))
    return value


# -- JSON bodies ------------------------------------------------------------------------------------

def json_body(allowed: Iterable[str], required_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The request's JSON object, refusing unknown and missing keys."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested past Python's recursion limit: get_json's silent does not cover it
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, _("the body must be a JSON object (Content-Type: application/json)"))
    allowed = set(allowed)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, _("unknown field %(name)s (allowed: %(allowed)s)", name=repr(unknown[0]),
                              allowed=", ".join(sorted(allowed))))
    for key in required_keys:
        if key not in data:
            raise ApiError(400, _("field %(key)s is required", key=repr(key)))
    return data


def no_body() -> None:
    """For a route that takes no body: none, or ``{}``; anything else is a 400, never ignored."""
    if request.get_data(cache=True):
        json_body(())


def body_str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ApiError(400, _("field %(key)s must be a string", key=repr(key)))
    return value


def body_number(data: Mapping[str, Any], key: str) -> float | None:
    """A finite number or null. The checks of :func:`plantmodel.jsonutil.number`, said here in the
    request's language (the model's reasons, shared with the device decoders, stay English)."""
    value = data[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, _("field %(key)s must be a number, got %(kind)s", key=repr(key),
                              kind=type(value).__name__))
    try:
        result = float(value)
    except OverflowError:  # an integer too large for a float (10**400 written out as digits)
        raise ApiError(400, _("field %(key)s is not a finite number (too large)", key=repr(key))) from None
    if not math.isfinite(result):
        raise ApiError(400, _("field %(key)s is not a finite number", key=repr(key)))
    return result
