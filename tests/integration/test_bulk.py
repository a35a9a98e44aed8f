"""The bridge's SQL-text fast path (store.bulk) stores exactly what the SQLAlchemy path stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from plantmodel import Reading
from plantmodel.sequence import SeqState
from store import models as orm
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.servers import MariaDBServer

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 10, 15, 0, 123456, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


def readings() -> list[tuple[Reading, datetime]]:
    values = [
        (3.4, 11.2, 4012, 35, 7.0, 41, 1.3, 22, 40, 31),
        (-39.999, 0.1, 0, 1e-05, 6.123456789012345, 99999.5, 0.0, 1e3, 2.5e-7, 123456),
        (149.0, -40, 1.0000000000000002, 35.5, 14, 0.3, 299.99, 0, 0.0001, 7),
    ]
    out = []
    for i, v in enumerate(values):
        r = Reading(3, i + 1, "0x0000BA27", 2**62 + i, (T0 + timedelta(seconds=i)).astimezone(PARIS), *v,
                    boot="b-1_x")
        out.append((r, T0 + timedelta(milliseconds=7 * i)))
    return out


def rows(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    engine = create_db_engine(url)
    with make_sessionmaker(engine)() as session:
        r = orm.Reading
        got = [tuple(row) for row in session.execute(
            select(*[c for c in r.__table__.c if c.name != "id"]).order_by(r.automate_no))]
        s = orm.AutomateSequence
        seqs = [tuple(row) for row in session.execute(select(*s.__table__.c).order_by(s.automate_no))]
    engine.dispose()
    return got, seqs


def test_fast_path_rows_equal_the_sqlalchemy_rows(mariadb: MariaDBServer) -> None:
    states = {
        (3, 1): SeqState(5, 9, T0, T0 + timedelta(hours=1), [[7, 7], [9, 9]], T0, "b-1_x", "0"),
        (3, 2): SeqState(-1, 0, None, None, [], None, None, None),
    }
    stored_at = T0 + timedelta(seconds=2, microseconds=999)
    urls = []
    for fast in (True, False):
        url = mariadb.create_database()
        urls.append(url)
        engine = create_db_engine(url)
        init_schema(engine)
        with make_sessionmaker(engine).begin() as session:
            queries.insert_readings(session, readings(), stored_at, new_only=fast)
            if fast:
                queries.save_sequences(session, states, stored_at)
            else:  # the SQLAlchemy upsert the fast path replaces
                queries.upsert(session, orm.AutomateSequence.__table__, [
                    {"unit_id": u, "automate_no": a, "confirmed": st.confirmed, "newest": st.newest,
                     "newest_ts": st.newest_ts, "max_ts": st.max_ts, "ahead": st.ahead_json(),
                     "gap_since": st.gap_since, "boot": st.boot, "prev_boot": st.prev_boot, "updated_at": stored_at}
                    for (u, a), st in states.items()], ["unit_id", "automate_no"], [])
        engine.dispose()
    fast_rows, slow_rows = rows(urls[0]), rows(urls[1])
    assert fast_rows == slow_rows
    assert len(fast_rows[0]) == 3 and len(fast_rows[1]) == 2

    # And an upsert overwrites: the stored states follow.
    engine = create_db_engine(urls[0])
    with make_sessionmaker(engine).begin() as session:
        queries.save_sequences(session, {(3, 2): SeqState(4, 4, T0, T0, [], None, "b2", None)}, stored_at)
    with make_sessionmaker(engine)() as session:
        assert queries.load_sequences(session)[(3, 2)] == SeqState(4, 4, T0.replace(microsecond=123000),
                                                                   T0.replace(microsecond=123000), [], None, "b2")
    engine.dispose()


def test_fast_path_refuses_a_stored_key(mariadb: MariaDBServer) -> None:
    """The bridge counts on it: a reading it believed new but that is stored raises."""
    engine = create_db_engine(mariadb.create_database())
    init_schema(engine)
    with make_sessionmaker(engine).begin() as session:
        queries.insert_readings(session, readings()[:1], T0, new_only=True)
    with pytest.raises(IntegrityError), make_sessionmaker(engine).begin() as session:
        queries.insert_readings(session, readings()[:1], T0, new_only=True)
    engine.dispose()
