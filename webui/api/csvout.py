"""The one CSV writer of the API's downloads (readings, alarms, audit trail), in two variants.

``standard`` (the default): ``,`` separator, ``.`` decimals, times as UTC ISO 8601 text, no BOM:
what scripts read, byte for byte what the readings CSV always was. ``spreadsheet``
(``?format=spreadsheet``): what a French plant's spreadsheet opens without an import dialog:
``;`` separator, decimal comma, a UTF-8 BOM (so accents survive), times as local date-times in the
plant's zone, named in the header (``ts (Europe/Paris)``).

Rows are written as the download proceeds, :data:`CHUNK` characters at a time; the caller's row
iterator owns its database session (it outlives the request handler).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from typing import Any

from flask import Response, stream_with_context

from plantmodel.readings import format_ts
from plantmodel.timezone import plant_zone
from webui.api.params import choice
from webui.state import web_state

log = logging.getLogger(__name__)

CHUNK = 32 * 1024  # characters handed to the server at a time (small: each is copied a few times)
FORMAT_PARAM = "format"
FORMATS = ("standard", "spreadsheet")
BOM = "\ufeff"
# A text cell a spreadsheet would run as a formula (a note typed as "=HYPERLINK(...)"): quoted by a
# leading apostrophe in the spreadsheet variant, the one read by a program that evaluates formulas.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class CsvFormat:
    """How cells are written: ``zone`` None is the standard variant."""

    zone: tzinfo | None = None
    zone_name: str = "UTC"

    @property
    def spreadsheet(self) -> bool:
        return self.zone is not None

    @property
    def delimiter(self) -> str:
        return ";" if self.spreadsheet else ","

    def header(self, columns: Sequence[str], time_columns: Iterable[str]) -> list[str]:
        """The column names; in the spreadsheet variant each time column says its zone."""
        if not self.spreadsheet:
            return list(columns)
        times = set(time_columns)
        return [f"{c} ({self.zone_name})" if c in times else c for c in columns]

    def cell(self, value: Any) -> Any:
        """One value as written: None empty, booleans true/false, times and numbers per variant."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            if self.zone is None:
                return format_ts(value)
            # Seconds and milliseconds a spreadsheet recognises as a date-time; the zone is in the header.
            local = value.astimezone(self.zone)
            return local.strftime("%Y-%m-%d %H:%M:%S") + f",{local.microsecond // 1000:03d}"
        if isinstance(value, float):
            # repr: lossless, as the standard variant writes it (csv's own float formatting).
            return repr(value).replace(".", ",") if self.spreadsheet else value
        if isinstance(value, str) and self.spreadsheet and value.startswith(_FORMULA_START):
            return "'" + value
        return value


def csv_format(args: Mapping[str, str]) -> CsvFormat:
    """The variant asked for by ``?format=`` (standard by default), in the plant's zone."""
    if choice(args, FORMAT_PARAM, FORMATS, "standard") == "standard":
        return CsvFormat()
    name = web_state().settings.plant_tz
    return CsvFormat(plant_zone(name), name)


class _Parts(list[str]):
    """What ``csv.writer`` writes, as a list of lines (a StringIO reused after ``truncate`` would
    keep 4 bytes per character); ``write`` is ``list.append`` itself: no Python call per row."""

    write = list.append


RowFormatter = Callable[[Sequence[Any]], Sequence[Any]]
BATCH_ROWS = 64  # rows handed to ``writerows`` at a time, between checks of the chunk's size


def csv_chunks(fmt: CsvFormat, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               time_columns: Iterable[str] = (), formatter: RowFormatter | None = None) -> Iterator[str]:
    """The CSV text in chunks of about :data:`CHUNK` characters, the header first.

    Each row goes through ``formatter`` (see :func:`typed_rows`), by default :meth:`CsvFormat.cell`
    on every value."""
    if formatter is None:
        cell = fmt.cell

        def formatter(row: Sequence[Any]) -> list[Any]:
            return [cell(v) for v in row]

    parts = _Parts()
    if fmt.spreadsheet:
        parts.write(BOM)
    writer = csv.writer(parts, delimiter=fmt.delimiter, lineterminator="\n")
    writer.writerow(fmt.header(columns, time_columns))
    size = sum(map(len, parts))
    rows = iter(rows)
    while True:
        before = len(parts)
        # writerows and map loop in C; islice keeps what is held to one batch of rows.
        writer.writerows(map(formatter, islice(rows, BATCH_ROWS)))
        if len(parts) == before:
            break
        size += sum(map(len, islice(parts, before, None)))
        if size >= CHUNK:
            yield "".join(parts)
            parts.clear()
            size = 0
    yield "".join(parts)


def typed_rows(fmt: CsvFormat, columns: Sequence[str], *, time_columns: Iterable[str] = (),
               bool_columns: Iterable[str] = ()) -> RowFormatter:
    """A row formatter for rows whose types are known by column, written as :meth:`CsvFormat.cell`
    writes them: each time column a datetime (naive ones are UTC) or None, each boolean column
    anything truthy (the driver's 0/1) or None; the other columns numbers or None (anything else
    through :meth:`CsvFormat.cell`). The converter of each column is chosen once, not per value."""
    times, flags = set(time_columns), set(bool_columns)
    if fmt.zone is None:
        # csv.writer writes numbers (repr of floats) and None (empty) as the standard variant does:
        # only the time and boolean columns are converted.
        changed = [(i, _standard_time if c in times else _bool_cell) for i, c in enumerate(columns)
                   if c in times or c in flags]

        def standard(row: Sequence[Any]) -> Sequence[Any]:
            cells = list(row)
            for i, convert in changed:
                cells[i] = convert(cells[i])
            return cells

        return standard
    zone, cell = fmt.zone, fmt.cell
    # One cache of the UTC offset per time column: each column's times come in order, not all of them.
    special = [(i, _LocalTimes(zone, cell) if c in times else _bool_cell) for i, c in enumerate(columns)
               if c in times or c in flags]

    def spreadsheet(row: Sequence[Any]) -> list[Any]:
        # Conditions inline, no call per number: floats with a decimal comma, ints and None as
        # csv writes them, datetimes left for ``special``, any other value through ``cell``.
        cells = [repr(v).replace(".", ",") if (t := v.__class__) is float
                 else v if t is int or v is None or t is datetime else cell(v) for v in row]
        for i, convert in special:
            cells[i] = convert(row[i])
        return cells

    return spreadsheet


class _LocalTimes:
    """Times (naive ones are UTC) as the spreadsheet variant writes them, local in ``zone``.

    Rows come in time order: the UTC offset is kept for the current UTC hour when it is the same at
    both of its ends (no zone changes its offset twice within an hour), so most values cost one
    comparison and one addition instead of a time zone conversion."""

    __slots__ = ("cell", "hi", "lo", "offset", "zone")

    def __init__(self, zone: tzinfo, cell: Callable[[Any], Any]) -> None:
        self.zone, self.cell = zone, cell
        self.lo = self.hi = datetime.min
        self.offset = timedelta(0)

    def __call__(self, value: datetime | None) -> Any:
        if value is None:
            return ""
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if not self.lo <= value < self.hi and not self._window(value):
            return self.cell(value.replace(tzinfo=UTC))
        text = (value + self.offset).isoformat(" ", "milliseconds")
        return text[:19] + "," + text[20:]

    def _window(self, value: datetime) -> bool:
        """Cache the offset of ``value``'s UTC hour; False when it changes within that hour or the
        local year could have fewer than four digits (``cell``'s strftime does not pad it)."""
        lo = value.replace(minute=0, second=0, microsecond=0)
        if lo.year < 1001 or lo.year >= 9999:
            return False
        hi = lo + _HOUR
        offset = lo.replace(tzinfo=UTC).astimezone(self.zone).utcoffset()
        last = (hi - _TICK).replace(tzinfo=UTC).astimezone(self.zone).utcoffset()
        if offset is None or offset != last:
            return False
        self.lo, self.hi, self.offset = lo, hi, offset
        return True


_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)


def _standard_time(value: datetime | None) -> str:
    """:func:`format_ts` of ``value`` (naive: UTC), by one C call when the year has four digits."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        if value.utcoffset():
            value = value.astimezone(UTC)
        value = value.replace(tzinfo=None)
    if value.year < 1000:  # isoformat pads the year, format_ts's strftime does not
        return format_ts(value.replace(tzinfo=UTC))
    return value.isoformat(timespec="milliseconds") + "Z"


def _bool_cell(value: Any) -> str:
    return "" if value is None else "true" if value else "false"


def csv_response(chunks: Iterator[str], filename: str) -> Response:
    """A streamed ``text/csv`` attachment (``charset=utf-8``: the BOM and the notes' accents)."""
    resp = Response(stream_with_context(chunks), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp
