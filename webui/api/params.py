"""Query-string parsing shared by the API routes. Every problem is an :class:`ApiError` naming the
parameter, and an unknown parameter is refused rather than silently ignored."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import request

from webui.api import ApiError


def query(allowed: Iterable[str]) -> Mapping[str, str]:
    """The request's query arguments, refusing unknown and repeated ones."""
    allowed = set(allowed)
    args = request.args
    unknown = sorted(set(args) - allowed)
    if unknown:
        hint = ", ".join(sorted(allowed)) or "none"
        raise ApiError(400, f"unknown parameter {unknown[0]!r} (allowed: {hint})")
    for key in args:
        if len(args.getlist(key)) > 1:
            raise ApiError(400, f"parameter {key!r} given more than once")
    return {k: args[k] for k in args}


def parse_time(name: str, raw: str) -> datetime:
    """ISO 8601 (``2025-09-01T09:30:00Z``, with offset, or naive meaning UTC) -> aware UTC."""
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ApiError(400, f"{name}={raw!r} is not an ISO 8601 date-time (e.g. 2025-09-01T09:30:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_range(args: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """``start`` and ``end`` (each optional); start after end is an error."""
    start = parse_time("start", args["start"]) if args.get("start") else None
    end = parse_time("end", args["end"]) if args.get("end") else None
    if start and end and start > end:
        raise ApiError(400, f"start ({args['start']}) is after end ({args['end']})")
    return start, end


def parse_int(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ApiError(400, f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ApiError(400, f"{name}={value} must be <= {maximum}")
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
            raise ApiError(404, f"page {self.number} is out of range (there are {pages} page(s) of {self.size})")
        return pages


PAGE_PARAMS = ("page", "per_page")


def page(args: Mapping[str, str], *, default_size: int = 100, max_size: int = 1000) -> Page:
    number = parse_int("page", args["page"], minimum=1) if "page" in args else 1
    size = parse_int("per_page", args["per_page"], minimum=1, maximum=max_size) if "per_page" in args \
        else default_size
    return Page(number, size)
