"""The bridge's two hot statements on MariaDB, written as SQL text in one go.

Each batch inserts its readings and upserts the settled seqs of their automates: about 30 values
per reading. Through SQLAlchemy and PyMySQL every value goes through a bind processor and a
per-value escape dispatch, which was a third of the bridge's CPU. The values here are of known
types, already validated by the model (ids and seqs are ints, measures finite numbers, times aware
datetimes, boot ids and ``ahead`` restricted to ``[A-Za-z0-9_,\\[\\]-]``; any other string is
escaped by PyMySQL's own ``escape_string``), so they are formatted directly, the way PyMySQL would
write them. ``tests/integration/test_bulk.py`` checks the rows match the SQLAlchemy path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymysql.converters import escape_string
from sqlalchemy.orm import Session

_DT_FORMAT = "'%04d-%02d-%02d %02d:%02d:%02d.%06d'"


def _dt(value: datetime | None) -> str:
    if value is None:
        return "NULL"
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
    # As PyMySQL writes it (DATETIME(3) keeps the milliseconds); %-formatting is the fastest way.
    return _DT_FORMAT % (value.year, value.month, value.day, value.hour, value.minute, value.second,
                         value.microsecond)


def _num(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} cannot be stored")
    text = repr(value)
    # As PyMySQL does: a float literal with an exponent is a DOUBLE, never a DECIMAL.
    return text if isinstance(value, int) or "e" in text else text + "e0"


def _int(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return str(value)


def _str(value: str | None) -> str:
    return "NULL" if value is None else f"'{escape_string(value)}'"


def literal(value: int | str | datetime) -> str:
    """An id, a key string or a time as a SQL literal."""
    if isinstance(value, datetime):
        return _dt(value)
    if isinstance(value, str):
        return _str(value)
    return _int(value)


def execute(session: Session, sql: str) -> None:
    # no_parameters: PyMySQL gets the text as is (no %-formatting of it).
    session.connection().exec_driver_sql(sql, execution_options={"no_parameters": True})


def insert_rows(session: Session, head: str, rows: Iterable[str], tail: str = "", chunk: int = 1000) -> None:
    """``head`` VALUES row, row… ``tail``, in statements of at most ``chunk`` rows."""
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            execute(session, f"{head} VALUES {','.join(batch)}{tail}")
            batch = []
    if batch:
        execute(session, f"{head} VALUES {','.join(batch)}{tail}")


def reading_rows(rows: Sequence[tuple[int, int, int, datetime, datetime, datetime | None, Sequence[float]]]
                 ) -> Iterable[str]:
    """(unit, automate, seq, ts, received_at, stored_at, measures in column order) as VALUES rows."""
    for unit, automate, seq, ts, rx, stored, measures in rows:
        values = ",".join(map(_num, measures))
        yield f"({_int(unit)},{_int(automate)},{_int(seq)},{_dt(ts)},{_dt(rx)},{_dt(stored)},{values})"


def sequence_rows(rows: Iterable[tuple[Any, ...]]) -> Iterable[str]:
    """(unit, automate, confirmed, newest, newest_ts, max_ts, ahead, gap_since, boot, prev_boot,
    updated_at) as VALUES rows."""
    for u, a, confirmed, newest, newest_ts, max_ts, ahead, gap_since, boot, prev_boot, updated in rows:
        yield (f"({_int(u)},{_int(a)},{_int(confirmed)},{_int(newest)},{_dt(newest_ts)},{_dt(max_ts)},{_str(ahead)},"
               f"{_dt(gap_since)},{_str(boot)},{_str(prev_boot)},{_dt(updated)})")
