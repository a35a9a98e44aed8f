"""The bridge's settled sequences, stored-row lookups and the dashboard's latest reading, on
MariaDB and SQLite."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from plantmodel import Reading
from plantmodel.sequence import SeqState
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.unit.test_model import EXAMPLE

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def reading(unit: int, automate: int, seq: int, ts: datetime, **values: object) -> Reading:
    return Reading.from_dict({**EXAMPLE, "unit": unit, "automate": automate, "seq": seq,
                              "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), **values})


def test_sequences_lookups_and_latest(database_url: str) -> None:
    engine = create_db_engine(database_url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    future = T0 + timedelta(minutes=4)
    with sessions.begin() as s:
        queries.insert_readings(s, [(reading(3, 7, 0, future), T0), (reading(3, 7, 1, T0 + timedelta(seconds=1)), T0),
                                    (reading(3, 8, 0, T0), T0), (reading(3, 8, 1, T0 + timedelta(seconds=2)), T0)])
        # Unit 3 automate 7: the bridge settled seq 1 as the newest (seq 0 was stamped 4 min ahead).
        queries.save_sequences(s, {(3, 7): SeqState(1, 1, T0 + timedelta(seconds=1), future, [], None)}, T0)
    with sessions() as s:
        latest = {(r.unit_id, r.automate_no): r.seq for r in queries.latest_readings(s)}
        assert latest == {(3, 7): 1, (3, 8): 1}  # 3/8 has no sequence row: newest timestamp
        states = queries.load_sequences(s)
        assert states[(3, 7)] == SeqState(1, 1, T0 + timedelta(seconds=1), future, [], None)
        assert (states[(3, 8)].confirmed, states[(3, 8)].newest) == (1, 1)  # resumed from the newest row
        found = queries.stored_readings(s, {(3, 7, future), (3, 7, T0), (3, 8, T0)})
        assert set(found) == {(3, 7, future), (3, 8, T0)}
        assert found[(3, 7, future)][1] == 0 and found[(3, 7, future)][2]["ph"] == EXAMPLE["ph"]
    with sessions.begin() as s:  # upsert: the row is replaced, not duplicated
        queries.save_sequences(s, {(3, 7): SeqState(1, 4, T0, future, [[3, 4]], T0)}, T0)
    with sessions() as s:
        assert queries.load_sequences(s)[(3, 7)].ahead == [[3, 4]]
    engine.dispose()


def test_device_state_keeps_the_newest_whoever_writes_last(database_url: str) -> None:
    """Two bridges may handle a unit's offline (its will) and online out of order: one upsert keeps
    the state with the newest time."""
    engine = create_db_engine(database_url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    seen = []
    for state, second in [("online", 5), ("offline", 3), ("offline", 7), ("online", 7), ("online", 6)]:
        with sessions.begin() as s:
            queries.set_device_state(s, "units/1", state, T0 + timedelta(seconds=second),
                                     T0 + timedelta(seconds=second))
        with sessions() as s:
            (row,) = queries.device_states(s)
            seen.append((row.state, row.ts.second, row.received_at.second))
    engine.dispose()
    assert seen == [("online", 5, 5), ("online", 5, 5), ("offline", 7, 7), ("online", 7, 7), ("online", 7, 7)]


def test_a_locked_source_waits_for_the_holder_to_commit(database_url: str) -> None:
    """What several bridges count on, on MariaDB (row locks) and SQLite (the write lock): a second
    transaction locking a source gets it only once the first has committed, and reads its version."""
    engine = create_db_engine(database_url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        queries.create_sources(s, ["units/1/automates/1"])
    got: list[dict[str, int]] = []
    with sessions.begin() as first:
        assert queries.lock_sources(first, ["units/1/automates/1"]) == {"units/1/automates/1": 0}

        def second() -> None:
            with sessions.begin() as s:
                got.append(queries.lock_sources(s, ["units/1/automates/1"]))

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive() and got == []  # waiting for the first
        queries.bump_versions(first, ["units/1/automates/1"])
    thread.join(10)
    engine.dispose()
    assert got == [{"units/1/automates/1": 1}]
