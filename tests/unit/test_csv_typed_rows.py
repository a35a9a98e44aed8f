"""The readings CSV's per-column row formatter (``csvout.typed_rows``) writes exactly what the
per-value ``CsvFormat.cell`` wrote before it, in both variants: times at 0 and 999 ms, naive (UTC)
or aware, around summer-time changes and odd historical offsets, None, booleans as 0/1, awkward
floats. :func:`reference_csv` is the previous code, kept as the reference."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plantmodel.readings import format_ts
from webui.api.csvout import BOM, CHUNK, CsvFormat, csv_chunks, typed_rows

COLUMNS = ("ts", "received_at", "stored_at", "output", "seq", "apower", "pf")
TIMES = ("ts", "received_at", "stored_at")
BOOLS = ("output",)
FLOATS = [0.0, -0.0, 3.25, -3.25, 4000.0, 1e-7, 1.5e16, 0.1 + 0.2, 123456789.123456789, 2.0 ** 53 + 2, 5e-324,
          1.7976931348623157e308]


def reference_cell(fmt: CsvFormat, value: Any) -> Any:
    """``CsvFormat.cell`` as it was before the row formatters."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if fmt.zone is None:
            return format_ts(value)
        local = value.astimezone(fmt.zone)
        return local.strftime("%Y-%m-%d %H:%M:%S") + f",{local.microsecond // 1000:03d}"
    if isinstance(value, float):
        return repr(value).replace(".", ",") if fmt.spreadsheet else value
    if isinstance(value, str) and fmt.spreadsheet and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def reference_csv(fmt: CsvFormat, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The previous readings CSV: aware times, booleans made bool, then ``reference_cell``."""
    out: list[str] = [BOM] if fmt.spreadsheet else []

    class Lines:
        def write(self, text: str) -> None:
            out.append(text)

    writer = csv.writer(Lines(), delimiter=fmt.delimiter, lineterminator="\n")
    writer.writerow(fmt.header(columns, TIMES))
    for row in rows:
        cells = [v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for v in row]
        cells = [None if v is None else bool(v) if c in BOOLS else v for c, v in zip(columns, cells, strict=True)]
        writer.writerow([reference_cell(fmt, v) for v in cells])
    return "".join(out)


def typed_csv(fmt: CsvFormat, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    formatter = typed_rows(fmt, columns, time_columns=TIMES, bool_columns=BOOLS)
    return "".join(csv_chunks(fmt, columns, rows, time_columns=TIMES, formatter=formatter))


def variants() -> list[CsvFormat]:
    return [CsvFormat()] + [CsvFormat(ZoneInfo(name), name)
                            for name in ("Europe/Paris", "Africa/Monrovia", "Australia/Lord_Howe", "UTC")]


def edge_rows() -> list[list[Any]]:
    """Times at 0 and 999 ms, every minute across summer-time changes (Paris; Lord Howe's 30-minute
    shift; Monrovia's 1972 change at 00:44:30 UTC), a year under 1000; None in every column."""
    instants = [datetime(2026, 11, 21, 10, 15), datetime(2026, 11, 21, 10, 15, 0, 999_999),
                datetime(2026, 11, 21, 10, 15, 0, 999_000), datetime(999, 12, 31, 23, 59, 59, 1000),
                datetime(1000, 1, 1, 0, 0, 0, 1000), datetime(9999, 12, 30, 23, 59, 59, 999_999)]
    for start in (datetime(2026, 3, 29), datetime(2026, 10, 25), datetime(2026, 4, 4, 14), datetime(1972, 1, 6, 23)):
        instants += [start + timedelta(minutes=m, seconds=s, milliseconds=ms)
                     for m in range(0, 180, 7) for s, ms in ((0, 0), (29, 999), (30, 500))]
    rows: list[list[Any]] = []
    for i, ts in enumerate(instants):
        output = (None, 0, 1, True, False)[i % 5]
        rows.append([ts, ts + timedelta(seconds=1, milliseconds=1), None if i % 3 else ts, output, i,
                     FLOATS[i % len(FLOATS)], None if i % 4 == 0 else 0.98])
    rows.append([None] * len(COLUMNS))
    return rows


@pytest.mark.parametrize("fmt", variants(), ids=lambda f: f.zone_name if f.spreadsheet else "standard")
def test_typed_rows_write_what_the_cells_wrote(fmt: CsvFormat) -> None:
    rows = edge_rows()
    expected = reference_csv(fmt, COLUMNS, rows)
    assert typed_csv(fmt, COLUMNS, rows) == expected
    # Aware times (any zone) are the same instants.
    paris = ZoneInfo("Europe/Paris")
    aware = [[v.replace(tzinfo=UTC).astimezone(paris) if isinstance(v, datetime) else v for v in row]
             for row in rows if row[0] is None or 1000 < row[0].year < 9999]
    assert typed_csv(fmt, COLUMNS, aware) == reference_csv(fmt, COLUMNS, aware)


def test_standard_cells_and_chunks() -> None:
    fmt = CsvFormat()
    row = [datetime(2026, 11, 21, 10, 15), datetime(2026, 11, 21, 10, 15, 0, 999_999), None, 1, 7, 4000.0, None]
    text = typed_csv(fmt, COLUMNS, [row])
    assert text.splitlines()[1] == "2026-11-21T10:15:00.000Z,2026-11-21T10:15:00.999Z,,true,7,4000.0,"
    many = [row] * 3000  # several chunks, each about CHUNK characters, whole lines
    chunks = list(csv_chunks(fmt, COLUMNS, many, time_columns=TIMES,
                             formatter=typed_rows(fmt, COLUMNS, time_columns=TIMES, bool_columns=BOOLS)))
    assert len(chunks) > 3 and all(c.endswith("\n") for c in chunks)
    assert max(map(len, chunks)) < CHUNK + 64 * 200
    assert "".join(chunks) == reference_csv(fmt, COLUMNS, many)


def test_other_values_in_number_columns_go_through_cell() -> None:
    fmt = CsvFormat(ZoneInfo("Europe/Paris"), "Europe/Paris")
    row = [None, None, None, None, "=HYPERLINK(1)", True, "a.b"]
    assert typed_csv(fmt, COLUMNS, [row]) == reference_csv(fmt, COLUMNS, [row])
