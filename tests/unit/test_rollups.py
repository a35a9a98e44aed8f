"""store.rollups' pure aggregation: rows -> per (source, minute) partials -> hour partials, and the
literal SQL rows of the MariaDB upsert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store import rollups

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)  # on an hour boundary
B0 = int(T0.timestamp())


def test_rows_of_one_minute_make_one_partial_per_measure() -> None:
    rows = [(("m1",), T0 + timedelta(seconds=s), v) for s, v in
            [(0, (1.0, 5.0)), (10, (3.0, None)), (59.999, (2.0, 7.0))]]
    out = rollups.minute_partials(rows)
    assert out == {("m1", B0): [(3, 1.0, 3.0, 6.0), (2, 5.0, 7.0, 12.0)]}


def test_each_minute_and_source_is_its_own_bucket() -> None:
    rows = [((1, 2), T0 + timedelta(seconds=59), (1.0,)), ((1, 2), T0 + timedelta(seconds=60), (2.0,)),
            ((1, 3), T0 + timedelta(seconds=61), (4.0,)),
            # another zone, same instant: the same bucket
            ((1, 2), (T0 + timedelta(seconds=30)).astimezone(datetime.now().astimezone().tzinfo), (9.0,))]
    out = rollups.minute_partials(rows)
    assert out == {(1, 2, B0): [(2, 1.0, 9.0, 10.0)], (1, 2, B0 + 60): [(1, 2.0, 2.0, 2.0)],
                   (1, 3, B0 + 60): [(1, 4.0, 4.0, 4.0)]}


def test_a_measure_missing_in_every_row_stays_empty() -> None:
    out = rollups.minute_partials([(("m",), T0, (None, 1.0)), (("m",), T0, (None, 2.0))])
    assert out[("m", B0)] == [rollups.EMPTY, (2, 1.0, 2.0, 3.0)]


def test_hours_are_the_merge_of_their_minutes() -> None:
    rows = [(("m",), T0 + timedelta(minutes=i), (float(i % 7), None if i % 2 else float(i))) for i in range(150)]
    levels = rollups.level_partials(rows)
    assert len(levels["minute"]) == 150
    hours = levels["hour"]
    assert sorted(hours) == [("m", B0), ("m", B0 + 3600), ("m", B0 + 7200)]
    for h, (lo, hi) in enumerate([(0, 60), (60, 120), (120, 150)]):
        a = [float(i % 7) for i in range(lo, hi)]
        b = [float(i) for i in range(lo, hi) if i % 2 == 0]
        assert hours[("m", B0 + 3600 * h)] == [(len(a), min(a), max(a), sum(a)), (len(b), min(b), max(b), sum(b))]


def test_merge_keeps_the_other_side_of_an_empty_one() -> None:
    assert rollups.merge(rollups.EMPTY, (2, 1.0, 3.0, 4.0)) == (2, 1.0, 3.0, 4.0)
    assert rollups.merge((2, 1.0, 3.0, 4.0), rollups.EMPTY) == (2, 1.0, 3.0, 4.0)
    assert rollups.merge((2, 1.0, 3.0, 4.0), (1, -1.0, 2.0, -1.0)) == (3, -1.0, 3.0, 3.0)
    assert rollups.merge(rollups.EMPTY, rollups.EMPTY) == rollups.EMPTY


def test_epoch_seconds_floor_before_1970() -> None:
    assert rollups.epoch_s(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)) == -1
    out = rollups.minute_partials([(("m",), datetime(1969, 12, 31, 23, 59, 30, tzinfo=UTC), (1.0,))])
    assert list(out) == [("m", -60)]


def test_literal_rows_keep_doubles_doubles_and_escape_keys() -> None:
    row = rollups._literal_row(("a'b",), [(2, 1.0, 2.5, 3.5), rollups.EMPTY, (1, 4, 4, 4)])
    assert row == "('a\\'b',2,1.0e0,2.5e0,3.5e0,0,NULL,NULL,NULL,1,4e0,4e0,4e0)"  # an int value: still a DOUBLE
    with pytest.raises(ValueError):
        rollups._literal_row(("m",), [(1, float("inf"), 1.0, 1.0)])
    with pytest.raises(TypeError):
        rollups._literal_row((True,), [])


def test_upsert_text_names_every_column_once() -> None:
    for kind in (rollups.READINGS, rollups.POWER):
        for level in ("minute", "hour"):
            cols = rollups._columns(kind)
            assert len(cols) == len(set(cols)) == len(kind.keys) + 1 + 4 * len(kind.measures)
            assert set(cols) == {c.name for c in kind.table(level).columns}
            tail = rollups._mariadb_tail(kind, level)
            assert tail.count("=") == 4 * len(kind.measures)
