"""Schema evolution with Alembic, on MariaDB and SQLite: the revisions build exactly the ORM's schema;
a database from before migrations (the last release's schema.sql, holding data, even with columns and
an index an older release lacked) is upgraded by ``python -m store upgrade`` without losing a row and
with its rollups filled; services refuse a database at another revision, naming the command."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from store import migrate
from store.db import SchemaOutdated, create_db_engine, init_schema
from store.models import Base
from tests.processes import REPO
from tests.servers import MariaDBServer, find_binary

pytestmark = pytest.mark.integration

OLD_SCHEMA = REPO / "tests" / "fixtures" / "schema-before-migrations.sql"  # main's schema.sql of 2026-12-01
T0 = datetime(2026, 11, 30, 22, 17, 0, tzinfo=UTC)
AUTOMATE = ("tank_temp_c", "ext_temp_c", "milk_kg", "product_kg", "ph", "k_mg_l", "nacl_g_l", "salmonella_ppm",
            "ecoli_ppm", "listeria_ppm")
METER = ("apower", "voltage", "current", "freq", "pf", "energy_wh", "ret_energy_wh", "temperature_c")


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_every_revision_builds_exactly_the_orm_schema(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        command.upgrade(migrate.alembic_config(conn, stdout=io.StringIO()), "head")
        conn.commit()
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert differences == []
    # and it is sensitive: a model column the migrations do not create is reported
    extra = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    extra.tables["readings"].append_column(sa.Column("lactose_g_l", sa.Double(), nullable=True))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), extra)
    assert [d[0] for d in differences] == ["add_column"], differences
    engine.dispose()


# -- a database from before migrations, holding data ------------------------------------------------------

def legacy_database(database_url: str, mariadb: MariaDBServer | None) -> sa.Engine:
    """The last release's schema (MariaDB: its schema.sql through the mariadb client; SQLite: what its
    create_all made, which is the baseline revision without alembic_version), from an OLDER release
    still: without rejected_messages.source and its index, alarms.detail and users.session_version."""
    engine = create_db_engine(database_url)
    if mariadb is not None:
        database = sa.engine.make_url(database_url).database
        with OLD_SCHEMA.open("rb") as sql:
            subprocess.run([find_binary("mariadb"), f"--socket={mariadb.socket}", "-uroot", str(database)],
                           stdin=sql, check=True, capture_output=True)
    else:
        with engine.connect() as conn:
            command.upgrade(migrate.alembic_config(conn, stdout=io.StringIO()), "0001")
            conn.execute(sa.text("DROP TABLE alembic_version"))
            conn.commit()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_rejected_messages_source" + (" ON rejected_messages" if mariadb else "")))
        for table, column in (("rejected_messages", "source"), ("alarms", "detail"), ("users", "session_version")):
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    return engine


def fill(engine: sa.Engine) -> dict[str, Any]:
    """Readings of 3 automates over 2.5 h (one a minute, some seconds apart), power readings of 2
    meters (one without temperature), and a row in most other tables. Returns the raw values."""
    readings: list[dict[str, Any]] = []
    for unit, automate in ((1, 1), (1, 2), (2, 1)):
        for i in range(150):
            ts = T0 + timedelta(seconds=i * 61 + automate)
            values = {m: round(1 + (i * 7 + k * 13 + unit) % 50 / 10, 1) for k, m in enumerate(AUTOMATE)}
            readings.append({"unit_id": unit, "automate_no": automate, "seq": i, "ts": ts, "received_at": ts,
                             "stored_at": ts, **values})
    samples: list[dict[str, Any]] = []
    for meter in ("shellypro1pm-a", "shellypro1pm-b"):
        for i in range(400):
            ts = T0 + timedelta(seconds=i * 10)
            values: dict[str, Any] = {m: float(i % 17) + 0.5 for m in METER}
            if meter.endswith("b"):
                values["temperature_c"] = None
            samples.append({"meter_id": meter, "ts": ts, "received_at": ts, "stored_at": ts, "output": True,
                            **values})
    dt = sa.DateTime()
    readings_t = sa.table("readings", *(sa.column(c) for c in readings[0]))
    power_t = sa.table("power_readings", *(sa.column(c) for c in samples[0]))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO units (id, created_at) VALUES (1, :t), (2, :t)").bindparams(
            sa.bindparam("t", type_=dt)), {"t": T0.replace(tzinfo=None)})
        conn.execute(sa.text("INSERT INTO automates (unit_id, automate_no, type, created_at) VALUES "
                             "(1, 1, '0x0000BA20', :t), (1, 2, '0x0000BA21', :t), (2, 1, '0x0000BA22', :t)"),
                     {"t": T0.replace(tzinfo=None)})
        conn.execute(sa.text("INSERT INTO meters (id, first_seen, last_seen) VALUES ('shellypro1pm-a', :t, :t), "
                             "('shellypro1pm-b', :t, :t)"), {"t": T0.replace(tzinfo=None)})
        naive = [{k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in r.items()}
                 for r in readings]
        conn.execute(readings_t.insert(), naive)
        conn.execute(power_t.insert(), [{k: v.replace(tzinfo=None) if isinstance(v, datetime) else v
                                         for k, v in r.items()} for r in samples])
        conn.execute(sa.text(
            "INSERT INTO alarms (source, unit_id, automate_no, measure, bound, severity, state, value, limit_value, "
            "last_value, raised_at) VALUES ('units/1/automates/1', 1, 1, 'tank_temp_c', 'high', 'warning', "
            "'active', 4.6, 4.0, 4.6, :t)"), {"t": T0.replace(tzinfo=None)})
        conn.execute(sa.text(
            "INSERT INTO rejected_messages (received_at, topic, payload, payload_bytes, reason) VALUES "
            "(:t, 'plant/units/1/automates/1/readings', '{}', 2, 'field missing')"), {"t": T0.replace(tzinfo=None)})
        conn.execute(sa.text(
            "INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES "
            "('alice', 'x', 'admin', :t, :t)"), {"t": T0.replace(tzinfo=None)})
        conn.execute(sa.text(
            "INSERT INTO audit_log (at, actor, action, details, prev_hash, hash) VALUES "
            f"(:t, 'alice', 'login.ok', '{{}}', '{'0' * 64}', '{'1' * 64}')"), {"t": T0.replace(tzinfo=None)})
        conn.execute(sa.text(
            "INSERT INTO thresholds (scope, measure, low, high, deadband, severity, updated_at, updated_by) VALUES "
            "('*', 'ph', 6.8, 7.2, 0.2, 'warning', :t, 'alice')"), {"t": T0.replace(tzinfo=None)})
    return {"readings": readings, "samples": samples}


def counts(engine: sa.Engine) -> dict[str, int]:
    tables = sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        return {t: int(conn.scalar(sa.text(f"SELECT COUNT(*) FROM {t}")) or 0) for t in tables
                if t != "alembic_version"}


def expected_rollups(rows: list[dict[str, Any]], keys: tuple[str, ...], measures: tuple[str, ...],
                     width: int) -> dict[tuple[Any, ...], dict[str, tuple[int, float | None, float | None, float]]]:
    groups: dict[tuple[Any, ...], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        seconds = int(r["ts"].timestamp())
        key = (*(r[k] for k in keys), seconds - seconds % width)
        for m in measures:
            if r[m] is not None:
                groups[key][m].append(r[m])
    return {key: {m: (len(v), min(v, default=None), max(v, default=None), math.fsum(v))
                  for m in measures for v in [vals.get(m, [])]} for key, vals in groups.items()}


def stored_rollups(engine: sa.Engine, table: str, keys: tuple[str, ...], measures: tuple[str, ...]
                   ) -> dict[tuple[Any, ...], dict[str, tuple[int, float | None, float | None, float]]]:
    cols = ", ".join(f"{m}_n, {m}_min, {m}_max, {m}_sum" for m in measures)
    out = {}
    with engine.connect() as conn:
        for row in conn.execute(sa.text(f"SELECT {', '.join(keys)}, bucket, {cols} FROM {table}")):
            key, rest = tuple(row[:len(keys) + 1]), row[len(keys) + 1:]
            out[key] = {m: (rest[4 * i], rest[4 * i + 1], rest[4 * i + 2], rest[4 * i + 3] or 0.0)
                        for i, m in enumerate(measures)}
    return out


def assert_rollups_equal(got: dict[Any, Any], want: dict[Any, Any]) -> None:
    assert got.keys() == want.keys()
    for key, per_measure in want.items():
        for m, (n, lo, hi, total) in per_measure.items():
            g = got[key][m]
            assert (g[0], g[1], g[2]) == (n, lo, hi), (key, m, g)
            assert math.isclose(g[3], total, rel_tol=1e-9, abs_tol=1e-9), (key, m, g)


@pytest.mark.parametrize("kind", ["mariadb", "sqlite"])
def test_upgrade_a_database_from_before_migrations_loses_no_row(kind: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    mariadb = request.getfixturevalue("mariadb") if kind == "mariadb" else None
    url = mariadb.create_database("legacy") if mariadb else f"sqlite:///{tmp_path / 'legacy.db'}"
    engine = legacy_database(url, mariadb)
    data = fill(engine)
    before = counts(engine)
    assert before["readings"] == 450 and before["power_readings"] == 800

    with pytest.raises(SchemaOutdated) as info:  # what a service says at start
        init_schema(engine)
    assert "before schema migrations" in str(info.value) and "python -m store upgrade" in str(info.value)
    check = run_cli("store", "upgrade", "--check", url=url)
    assert check.returncode == 1 and "created before schema migrations" in check.stdout, check

    result = run_cli("store", "upgrade", url=url)
    assert result.returncode == 0, result.stderr
    assert f"done: legacy -> {migrate.head_revision()}" in result.stdout, result.stdout

    after = counts(engine)
    assert {t: n for t, n in after.items() if t in before} == before  # not a row lost
    inspector = sa.inspect(engine)
    assert "source" in {c["name"] for c in inspector.get_columns("rejected_messages")}
    assert "ix_rejected_messages_source" in {i["name"] for i in inspector.get_indexes("rejected_messages")}
    assert "session_version" in {c["name"] for c in inspector.get_columns("users")}
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                       Base.metadata)
    assert differences == []  # now exactly this release's schema

    # The new tables were filled from the rows already stored.
    keys_r, keys_p = ("unit_id", "automate_no"), ("meter_id",)
    for level, width in (("minute", 60), ("hour", 3600)):
        assert_rollups_equal(stored_rollups(engine, f"readings_{level}", keys_r, AUTOMATE),
                             expected_rollups(data["readings"], keys_r, AUTOMATE, width))
        assert_rollups_equal(stored_rollups(engine, f"power_readings_{level}", keys_p, METER),
                             expected_rollups(data["samples"], keys_p, METER, width))
    with engine.connect() as conn:
        latest = dict(conn.execute(sa.text("SELECT meter_id, ts FROM power_readings_latest")).all())
    newest = T0 + timedelta(seconds=399 * 10)
    assert {m: str(t)[:19] for m, t in latest.items()} == {
        "shellypro1pm-a": newest.strftime("%Y-%m-%d %H:%M:%S"), "shellypro1pm-b": newest.strftime("%Y-%m-%d %H:%M:%S")}

    init_schema(engine)  # services start now
    again = run_cli("store", "upgrade", url=url)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert run_cli("store", "upgrade", "--check", url=url).returncode == 0
    engine.dispose()


def test_services_refuse_a_database_at_another_revision(database_url: str) -> None:
    engine = create_db_engine(database_url)
    init_schema(engine)
    for revision, expected in (("0001", "at revision 0001; this release needs"),
                               ("9999", "which this release does not know")):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
        # the real service: it exits at once with one line naming what to do (never waits, never writes)
        result = run_cli("bridge", "run", url=database_url)
        assert result.returncode != 0, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "python -m store upgrade" in result.stderr or "newer release" in result.stderr
    engine.dispose()


def test_services_started_together_on_an_empty_database_create_it_once(database_url: str, tmp_path: Path) -> None:
    # SQLite: 20 new files (a race there is rare: switching a new file to WAL while another
    # connection creates the tables failed about one round in five before it was waited for).
    urls = [database_url] if database_url.startswith("mariadb") else [
        f"sqlite:///{tmp_path / f'new{i}.db'}" for i in range(20)]
    for url in urls:
        engines = [create_db_engine(url) for _ in range(4)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(engines))

        def start(engine: sa.Engine, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors
                  ) -> None:
            barrier.wait()
            try:
                init_schema(engine)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [], url
        with engines[0].connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [
                migrate.head_revision()]
        for e in engines:
            e.dispose()


def test_a_new_measure_is_one_helper_call_in_a_revision(database_url: str) -> None:
    """What a revision adding a measure runs (store.migrations.helpers.add_measure): the raw column,
    nullable (older rows have no value), and count/min/max/sum in both rollup tables, the count 0 in
    the rollup rows that exist, and no default left behind (the models have none)."""
    from alembic.operations import Operations

    from store.migrations.helpers import add_measure

    engine = create_db_engine(database_url)
    init_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO readings_hour (unit_id, automate_no, bucket, "
                             + ", ".join(f"{m}_n, {m}_min, {m}_max, {m}_sum" for m in AUTOMATE) + ") VALUES (1, 1, 0, "
                             + ", ".join("1, 2, 2, 2" for _ in AUTOMATE) + ")"))
    with engine.begin() as conn:  # what an earlier run, killed after its first ALTER on MariaDB, left
        conn.execute(sa.text("ALTER TABLE readings ADD COLUMN lactose_g_l DOUBLE NULL"))
    with engine.connect() as conn, Operations.context(MigrationContext.configure(conn)):
        add_measure("automate", "lactose_g_l")
        add_measure("automate", "lactose_g_l")  # and once more: nothing left to add
        conn.commit()
    inspector = sa.inspect(engine)
    raw = {c["name"]: c for c in inspector.get_columns("readings")}
    assert raw["lactose_g_l"]["nullable"]
    for level in ("minute", "hour"):
        cols = {c["name"]: c for c in inspector.get_columns(f"readings_{level}")}
        assert {"lactose_g_l_n", "lactose_g_l_min", "lactose_g_l_max", "lactose_g_l_sum"} <= cols.keys()
        assert not cols["lactose_g_l_n"]["nullable"] and cols["lactose_g_l_n"]["default"] is None
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT lactose_g_l_n, lactose_g_l_max, tank_temp_c_max FROM readings_hour")
                            ).one() == (0, None, 2.0)
    engine.dispose()


def test_an_upgrade_killed_half_way_runs_again(database_url: str) -> None:
    """MariaDB's DDL is not transactional: a SIGKILLed upgrade can leave some of a revision's new
    tables behind while the revision is still the old one. Running the upgrade again finishes it."""
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        command.upgrade(migrate.alembic_config(conn, stdout=io.StringIO()), "0001")
        conn.execute(sa.text("CREATE TABLE readings_minute (half_made INTEGER)"))  # what the kill left
        conn.commit()
    result = run_cli("store", "upgrade", url=database_url)
    assert result.returncode == 0, result.stderr
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    engine.dispose()


def test_retention_deletes_nothing_before_the_upgrade(database_url: str) -> None:
    """Installed, not yet upgraded: the hourly retention job must not purge raw years the upgrade
    has still to roll up (they would be gone from the charts for good)."""
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        command.upgrade(migrate.alembic_config(conn, stdout=io.StringIO()), "0001")
        conn.commit()
    old = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=1000)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO units (id, created_at) VALUES (1, :t)"), {"t": old})
        conn.execute(sa.text("INSERT INTO automates (unit_id, automate_no, type, created_at) VALUES "
                             "(1, 1, '0x0000BA20', :t)"), {"t": old})
        conn.execute(sa.text("INSERT INTO readings (unit_id, automate_no, seq, ts, received_at, "
                             + ", ".join(AUTOMATE) + ") VALUES (1, 1, 0, :t, :t, "
                             + ", ".join("1" for _ in AUTOMATE) + ")"), {"t": old})
    for args in (("store", "retention"), ("store", "retention", "--dry-run")):
        result = run_cli(*args, url=database_url)
        assert result.returncode == 1, result
        assert "retention deletes nothing until it is upgraded" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT COUNT(*) FROM readings")) == 1
    assert run_cli("store", "upgrade", url=database_url).returncode == 0
    with engine.connect() as conn:  # rolled up by the upgrade, then purged from the raw rows
        assert conn.scalar(sa.text("SELECT SUM(tank_temp_c_n) FROM readings_hour")) == 1
    assert run_cli("store", "retention", url=database_url).returncode == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT COUNT(*) FROM readings")) == 0
        assert conn.scalar(sa.text("SELECT SUM(tank_temp_c_n) FROM readings_hour")) == 1
    engine.dispose()
