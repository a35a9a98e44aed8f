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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
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
    keep 4 bytes per character)."""

    def write(self, text: str) -> int:
        self.append(text)
        return len(text)


def csv_chunks(fmt: CsvFormat, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               time_columns: Iterable[str] = ()) -> Iterator[str]:
    """The CSV text in chunks of about :data:`CHUNK` characters, the header first."""
    parts = _Parts()
    if fmt.spreadsheet:
        parts.write(BOM)
    writer = csv.writer(parts, delimiter=fmt.delimiter, lineterminator="\n")
    size = writer.writerow(fmt.header(columns, time_columns))
    for row in rows:
        size += writer.writerow([fmt.cell(v) for v in row])
        if size >= CHUNK:
            yield "".join(parts)
            parts.clear()
            size = 0
    yield "".join(parts)


def csv_response(chunks: Iterator[str], filename: str) -> Response:
    """A streamed ``text/csv`` attachment (``charset=utf-8``: the BOM and the notes' accents)."""
    resp = Response(stream_with_context(chunks), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp
