"""Backups (``python -m store backup|restore``) on MariaDB and SQLite: a restore gives back every table
row for row (edge values included), refuses to overwrite data unless forced, never uses a damaged
file; rotation removes only our own old files; a failed dump leaves nothing behind; the password
never reaches a command line; a least-privilege MariaDB account is enough to back up."""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import URL, make_url

from store import models as orm
from store.__main__ import build_parser
from store.backup import BackupError, BackupSettings, backup, list_backups, restore
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.processes import REPO
from tests.servers import MariaDBServer, free_port

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 10, 15, 0, 123456, tzinfo=UTC)
BIG, SMALL = 2**63 - 1, -(2**63)
# Values a text dump could round, clip or drop: shortest-repr doubles, extremes, negative zero.
FLOATS = [0.1 + 0.2, 1 / 3, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 123456789.12345678,
          -1e-300, math.pi, 4012.0, 6.123456789012345]
# Text a dump must escape: 4-byte UTF-8, quotes, backslashes, control characters, NUL, SQL.
TEXTS = ["zoë 🧀 中文 Ωmega", "", "trailing spaces  ", "quote ' \" back\\slash \\N", "line\nbreak\r\n\ttab",
         "nul\x00byte", "'; DROP TABLE readings; --", "NULL", "*/ /*!50000 x */ DELIMITER ;;"]
BACKUP_NAME = r"plant_\d+-\d{8}T\d{6}Z\.sql\.gz|plant-\d{8}T\d{6}Z\.sqlite\.gz"


def fill(url: str) -> None:
    """Rows in every table, edge values included."""
    engine = create_db_engine(url)
    init_schema(engine)
    later = T0 + timedelta(microseconds=1)
    with make_sessionmaker(engine).begin() as s:
        s.add_all([
            orm.Unit(id=1, created_at=T0),
            orm.Unit(id=2**31 - 1, created_at=datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
            orm.Unit(id=-(2**31), created_at=datetime(1000, 1, 1, tzinfo=UTC)),
            orm.Meter(id="shellypro1pm-bc08cd250b98", first_seen=T0, last_seen=later),
            orm.Meter(id="mètre-🧀", first_seen=T0, last_seen=T0),
        ])
        s.flush()
        s.add_all([
            orm.Automate(unit_id=1, automate_no=1, type="0x0000BA27", created_at=T0),
            orm.Automate(unit_id=2**31 - 1, automate_no=2**31 - 1, type="é中🧀'\"\\\n\t", created_at=later),
        ])
        s.flush()
        s.add_all([
            orm.AutomateSequence(unit_id=1, automate_no=1, confirmed=BIG, newest=SMALL, newest_ts=T0, max_ts=later,
                                 ahead="[[7, 9], [12, 12]]", gap_since=T0, boot="9f2c61d0", prev_boot="0",
                                 updated_at=T0),
            orm.AutomateSequence(unit_id=2, automate_no=3, confirmed=0, newest=-1, newest_ts=None, max_ts=None,
                                 ahead="", gap_since=None, boot=None, prev_boot=None, updated_at=later),
            orm.SourceVersion(source="units/1/automates/1", version=BIG),
            orm.SourceVersion(source="meters/mètre-🧀", version=SMALL),
            orm.MeterState(meter_id="shellypro1pm-bc08cd250b98", status='{"apower": 2411.7, "label": "cuve n°3 🧀"}',
                           complete=True, updated_at=T0),
            orm.MeterState(meter_id="m2", status="{}", complete=False, updated_at=later),
            orm.DeviceState(device="bridge", state="online", ts=T0, received_at=later),
            orm.DeviceState(device="units/1", state="offline", ts=later, received_at=T0),
            orm.Threshold(scope="*", measure="tank_temp_c", low=None, high=4.0, deadband=0.2, severity="warning",
                          updated_at=T0, updated_by="zoë"),
            orm.Threshold(scope="units/1/automates/1", measure="ph", low=-1e-300, high=None, deadband=0.1 + 0.2,
                          severity="critical", updated_at=later, updated_by="cli"),
            orm.Alarm(source="units/1/automates/1", unit_id=1, automate_no=1, meter_id=None, measure="tank_temp_c",
                      bound="high", severity="warning", state="active", value=4.6, limit_value=4.0,
                      last_value=0.1 + 0.2, raised_at=T0, cleared_at=None, acknowledged_at=None,
                      acknowledged_by=None),
            orm.Alarm(source="meters/mètre-🧀", unit_id=None, automate_no=None, meter_id="mètre-🧀", measure="apower",
                      bound="high", severity="critical", state="cleared", value=3812.4, limit_value=3500,
                      last_value=-0.0, raised_at=T0, cleared_at=later, acknowledged_at=later,
                      acknowledged_by="zoë 🧀"),
            orm.User(username="admin", password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", role="admin",
                     token_hash=None, created_at=T0, updated_at=T0, last_login_at=None, session_version=None),
            orm.User(username="zoë 🧀", password_hash="x" * 255, role="viewer", token_hash="ab" * 32,
                     created_at=T0, updated_at=later, last_login_at=later, session_version=2**31 - 1),
            orm.ThresholdChange(changed_at=T0, changed_by="zoë", scope="*", measure="ph", action="set",
                                old_value=None, new_value='{"low": 6.8, "high": 7.2}'),
            orm.ThresholdChange(changed_at=later, changed_by="cli", scope="*", measure="ph", action="delete",
                                old_value='{"low": 6.8}', new_value=None),
            orm.Device(device="meters/mètre-🧀", name="Chargeur 🧀", model="SPSW-201XE16EU", generation=2,
                       firmware="20230913-114244/v1.14.0-gcb84623", disabled=True, first_seen=T0, last_seen=later,
                       removed_at=None, updated_at=later, updated_by="zoë"),
            orm.Device(device="units/1", name=None, model=None, generation=None, firmware=None, disabled=False,
                       first_seen=None, last_seen=None, removed_at=later, updated_at=None, updated_by=None),
            orm.DeviceToken(device="units/1", token_hash="cd" * 32, label="ligne 1", created_at=T0,
                            created_by="admin", revoked_at=later, revoked_by="zoë", last_used_at=later),
            orm.SwitchAction(meter_id="mètre-🧀", requested_at=T0, requested_by="zoë", remote_addr="::1",
                             from_state="on", to_state="off", outcome="confirmed", answered_at=later,
                             detail='{"was_on": true}'),
            orm.AuditEntry(at=T0, actor="zoë 🧀", address="::1", action="alarm.acknowledge",
                           details='{"note":"cuve n°3 vidée 🧀\\n"}', prev_hash="0" * 64, hash="a" * 64),
            orm.AuditEntry(at=later, actor=None, address=None, action="login.failed", details="{}",
                           prev_hash="a" * 64, hash="b" * 64),
            orm.NotificationRoute(name="Astreinte 🧀", channel="webhook", target="https://hooks.example/x?a=1&b=é",
                                  min_severity="critical", scope="units/1", events="raise,clear",
                                  escalate_after_min=2**31 - 1, enabled=True, updated_at=T0, updated_by="zoë"),
            orm.NotificationRoute(name="mail", channel="email", target="a@b.fr,c@d.fr", min_severity="info",
                                  scope="*", events="raise", escalate_after_min=None, enabled=False,
                                  updated_at=later, updated_by="env"),
            orm.Notification(alarm_id=BIG, route_id=1, event="escalate", created_at=T0, status="failed",
                             attempts=2**31 - 1, next_attempt_at=None, sent_at=None, last_error="é" * 512),
            orm.Notification(alarm_id=1, route_id=2, event="raise", created_at=later, status="sent", attempts=1,
                             next_attempt_at=later, sent_at=later, last_error=None),
            orm.NotificationAttempt(notification_id=BIG, at=T0, ok=False, error="SSH-2.0 🧀"),
            orm.NotificationAttempt(notification_id=1, at=later, ok=True, error=None),
            orm.PowerReading(meter_id="mètre-🧀", ts=T0, received_at=T0, stored_at=None, output=None, apower=None,
                             voltage=None, current=None, freq=None, pf=None, energy_wh=None, ret_energy_wh=None,
                             temperature_c=None),
            orm.PowerReading(id=2**53 + 1, meter_id="shellypro1pm-bc08cd250b98", ts=later, received_at=later,
                             stored_at=later, output=False, apower=FLOATS[0], voltage=229.5, current=FLOATS[1],
                             freq=50.02, pf=-0.0, energy_wh=FLOATS[3], ret_energy_wh=0.0, temperature_c=-40.0),
        ])
        for i in range(len(FLOATS)):
            values = FLOATS[i:] + FLOATS[:i]  # every measure column gets every value
            s.add(orm.Reading(unit_id=1, automate_no=1, seq=(BIG - i, i, SMALL + i)[i % 3],
                              ts=T0 + timedelta(seconds=i, microseconds=111 * i), received_at=later,
                              stored_at=None if i % 2 else T0,
                              **dict(zip(("tank_temp_c", "ext_temp_c", "milk_kg", "product_kg", "ph", "k_mg_l",
                                          "nacl_g_l", "salmonella_ppm", "ecoli_ppm", "listeria_ppm"), values,
                                         strict=True))))
        # The rollups and each meter's latest sample: every column, extreme values, a measure with none.
        s.add(orm.PowerReadingLatest(meter_id="mètre-🧀", ts=later))
        for level, rollup in [*orm.READING_ROLLUPS.items(), *orm.POWER_ROLLUPS.items()]:
            automate = rollup in orm.READING_ROLLUPS.values()
            keys = {"unit_id": 1, "automate_no": 1} if automate else {"meter_id": "mètre-🧀"}
            values: dict[str, Any] = {}
            for k, name in enumerate(c.name[:-2] for c in rollup.__table__.columns if c.name.endswith("_n")):
                empty = k == 1
                values |= {f"{name}_n": 0 if empty else 2**31 - 1,
                           f"{name}_min": None if empty else FLOATS[k % len(FLOATS)],
                           f"{name}_max": None if empty else FLOATS[(k + 1) % len(FLOATS)],
                           f"{name}_sum": None if empty else FLOATS[(k + 2) % len(FLOATS)]}
            s.add(rollup(**keys, bucket=-(2**40) if level == "minute" else 2**40, **values))
        for i, t in enumerate(TEXTS):
            s.add(orm.RejectedMessage(received_at=T0 + timedelta(microseconds=i), topic=t, payload=t * 3,
                                      payload_bytes=len(t.encode()), reason=t))
    engine.dispose()


def _value(v: Any) -> Any:
    # Bit-exact floats (-0.0 == 0.0 and 0.30000000000000004 == 0.3 would hide a rounding dump).
    return ("float", v.hex()) if isinstance(v, float) else (type(v).__name__, v)


def snapshot(url: str) -> tuple[list[str], list[Any], dict[str, list[tuple[Any, ...]]]]:
    """(table names, their definitions, every row of every table of our models in key order)."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            if engine.dialect.name == "sqlite":
                ddl = [tuple(r) for r in conn.execute(text("SELECT type, name, sql FROM sqlite_master ORDER BY name"))]
            else:  # SHOW CREATE TABLE: columns, keys, indexes, engine, charset, AUTO_INCREMENT counter
                ddl = [tuple(conn.execute(text(f"SHOW CREATE TABLE `{t}`")).one()) for t in tables]
            rows = {t.name: [tuple(map(_value, r)) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                    for t in orm.Base.metadata.sorted_tables if t.name in tables}
            if "alembic_version" in tables:  # the schema's revision travels with the data
                rows["alembic_version"] = [tuple(r) for r in conn.execute(text("SELECT * FROM alembic_version"))]
    finally:
        engine.dispose()
    return tables, ddl, rows


def assert_same(after: Any, before: Any) -> None:
    tables, ddl, rows = before
    assert tables == sorted([*orm.Base.metadata.tables, "alembic_version"])
    assert all(rows.values()), [t for t, r in rows.items() if not r]  # fill() covers every table
    assert after[0] == tables
    assert after[1] == ddl
    for name in rows:
        assert after[2][name] == rows[name], name


def wipe(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)  # type: ignore[operator]
        return
    engine = create_db_engine(url)
    orm.Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []
    engine.dispose()


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), "BACKUP_KEEP": "", "BACKUP_MAX_AGE_DAYS": "", **env}
    return subprocess.run([sys.executable, "-m", "store", *args], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def only_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_backup_wipe_restore_gives_every_row_back(database_url: str, tmp_path: Path) -> None:
    fill(database_url)
    before = snapshot(database_url)
    env = {"DATABASE_URL": database_url, "BACKUP_DIR": str(tmp_path / "backups")}

    result = cli(["backup"], env)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "backups").iterdir())
    assert len(files) == 1 and re.fullmatch(BACKUP_NAME, files[0].name), files
    assert f"written: {files[0]}" in result.stderr
    assert mode(files[0]) == 0o600 and mode(tmp_path / "backups") == 0o700

    wipe(database_url)
    result = cli(["restore", str(files[0])], env)
    assert result.returncode == 0, result.stderr
    assert "restored" in result.stderr
    assert_same(snapshot(database_url), before)
    if database_url.startswith("sqlite"):
        assert mode(Path(make_url(database_url).database)) == 0o600  # type: ignore[arg-type]


def test_restore_refuses_a_database_with_tables_unless_forced(database_url: str, tmp_path: Path) -> None:
    fill(database_url)
    before = snapshot(database_url)
    file = backup(BackupSettings(database_url, tmp_path)).path
    engine = create_db_engine(database_url)
    with engine.begin() as conn:  # changed since the backup: a row more, a table more
        conn.execute(orm.Unit.__table__.insert().values(id=77, created_at=T0))
        conn.execute(text("CREATE TABLE later_release (x INTEGER)"))
    engine.dispose()
    changed = snapshot(database_url)
    env = {"DATABASE_URL": database_url}

    result = cli(["restore", str(file)], env)
    assert result.returncode == 1
    line = only_error_line(result)
    held = len(orm.Base.metadata.tables) + 2  # + alembic_version, later_release
    assert f"is not empty ({held} tables: " in line and "--force" in line
    assert snapshot(database_url) == changed  # untouched

    result = cli(["restore", "--force", str(file)], env)
    assert result.returncode == 0, result.stderr
    assert f"replaced the {held} tables" in result.stderr
    assert_same(snapshot(database_url), before)  # exactly the backup: the new row and table are gone


def test_a_damaged_backup_is_refused_before_the_database_is_touched(database_url: str, tmp_path: Path) -> None:
    fill(database_url)
    before = snapshot(database_url)
    file = backup(BackupSettings(database_url, tmp_path / "b")).path
    truncated = tmp_path / file.name
    truncated.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(BackupError, match="not a complete gzip file"):
        restore(database_url, truncated, force=True)
    content = gzip.decompress(file.read_bytes())
    if database_url.startswith("sqlite"):
        half = len(content) // 2  # the schema (first pages) intact, table pages overwritten
        damaged = content[:half] + b"\xff" * (len(content) - half)
        match = "is damaged"
    else:  # a dump that stopped half-way, in a well-formed gzip file
        damaged = content[: content.rindex(b"-- Dump completed")]
        match = "not a complete MariaDB dump"
    truncated.write_bytes(gzip.compress(damaged))
    with pytest.raises(BackupError, match=match):
        restore(database_url, truncated, force=True)
    assert snapshot(database_url) == before


def test_rotation_keeps_the_newest_and_touches_nothing_else(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    init_schema(create_db_engine(url))
    folder = tmp_path / "backups"
    folder.mkdir()
    now = datetime(2026, 11, 21, 3, 0, 0, tzinfo=UTC)
    ours = [folder / f"plant-{(now - timedelta(days=d)):%Y%m%dT%H%M%S}Z.sqlite.gz" for d in (1, 2, 3, 4, 5)]
    foreign = [folder / name for name in (
        "plant-20200101T000000Z.sql.gz",  # the other kind (a MariaDB dump)
        "plantx-20200101T000000Z.sqlite.gz", "other-20200101T000000Z.sqlite.gz",  # other databases
        "plant-20200101T000000Z.sqlite.gz.bak", "plant-notes.txt", "plant-20201399T000000Z.sqlite.gz",
        ".plant-20261121T025900Z.123.partial", "plant-20261121T025900Z.sqlite.gz.tmp")]
    for path in ours + foreign:
        path.write_bytes(b"x")
    (folder / "plant-20200102T000000Z.sqlite.gz").mkdir()  # named like ours, but a folder
    foreign.append(folder / "plant-20200102T000000Z.sqlite.gz")
    os.utime(folder / ".plant-20261121T025900Z.123.partial", (now.timestamp(),) * 2)  # a backup under way
    killed = folder / ".plant-20261119T030000Z.4242.partial"  # left by a backup killed two days ago
    killed.write_bytes(b"x")
    os.utime(killed, ((now - timedelta(days=2)).timestamp(),) * 2)

    result = backup(BackupSettings(url, folder, keep=3), now=now)
    assert result.path.name == "plant-20261121T030000Z.sqlite.gz"
    assert sorted(result.rotated) == sorted(ours[2:])
    assert sorted(folder.iterdir()) == sorted([result.path, *ours[:2], *foreign])

    # A second backup in the same second gets its own name; --keep 0 keeps all of them.
    second = backup(BackupSettings(url, folder, keep=0), now=now)
    assert second.path.name == "plant-20261121T030000Z-1.sqlite.gz" and second.rotated == ()
    assert [b.path for b in list_backups(folder, "plant", "sqlite")] == [second.path, result.path, *ours[:2]]

    # By age (the time in the name), 30 h: the ones taken 36 h and 60 h before go, the new ones stay.
    third = backup(BackupSettings(url, folder, keep=0, max_age_days=1.25), now=now + timedelta(hours=12))
    assert sorted(third.rotated) == sorted(ours[:2])
    assert sorted(folder.iterdir()) == sorted([third.path, second.path, result.path, *foreign])

    # Never the backup just written, even when the clock went back (a backup from "the future").
    future = folder / "plant-20301121T030000Z.sqlite.gz"
    future.write_bytes(b"x")
    fourth = backup(BackupSettings(url, folder, keep=1), now=now + timedelta(hours=13))
    assert sorted(fourth.rotated) == sorted([third.path, second.path, result.path])
    assert sorted(folder.iterdir()) == sorted([future, fourth.path, *foreign])

    # Names follow the order taken, even when rotation freed an earlier name of the same second.
    fifth = backup(BackupSettings(url, folder, keep=1), now=now + timedelta(hours=13))
    assert fifth.path.name == "plant-20261121T160000Z-1.sqlite.gz" and fifth.rotated == (fourth.path,)
    sixth = backup(BackupSettings(url, folder, keep=1), now=now + timedelta(hours=13))
    assert sixth.path.name == "plant-20261121T160000Z-2.sqlite.gz" and sixth.rotated == (fifth.path,)


@pytest.mark.parametrize("failure", ["bad password", "unreachable port"])
def test_a_failed_dump_leaves_no_file(mariadb: MariaDBServer, tmp_path: Path, failure: str) -> None:
    url = make_url(mariadb.create_database())
    if failure == "bad password":
        url, expected = url.set(password="wrong-pw-Zq9"), "Access denied"
    else:
        url, expected = url.set(port=free_port()), "Can't connect"
    folder = tmp_path / "backups"
    folder.mkdir()
    result = cli(["backup"], {"DATABASE_URL": url.render_as_string(hide_password=False), "BACKUP_DIR": str(folder)})
    assert result.returncode == 1
    line = only_error_line(result)
    assert line.startswith("error: mariadb-dump failed (exit 2): ") and expected in line, line
    assert "wrong-pw-Zq9" not in line and mariadb.password not in line
    assert list(folder.iterdir()) == []  # no backup, no partial file


NASTY_PASSWORD = " pw\"q'uo\\te #semi;colon=é\ttab "


def test_least_privilege_account_and_no_password_on_the_command_line(mariadb: MariaDBServer,
                                                                     tmp_path: Path) -> None:
    url = make_url(mariadb.create_database())
    fill(url.render_as_string(hide_password=False))
    before = snapshot(url.render_as_string(hide_password=False))
    account = f"backup_{url.database}"
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{account}'@'%%' IDENTIFIED BY %s", (NASTY_PASSWORD,))
        cur.execute(f"GRANT SELECT, SHOW VIEW, TRIGGER ON `{url.database}`.* TO '{account}'@'%'")
    backup_url = URL.create("mariadb+pymysql", username=account, password=NASTY_PASSWORD, host="127.0.0.1",
                            port=mariadb.port, database=url.database, query={"charset": "utf8mb4"})

    # A mariadb-dump first on PATH that records how it was called, then runs the real one.
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "dump-call"
    (fake / "mariadb-dump").write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > '{record}.argv'\n"
        "options=\"${1#--defaults-extra-file=}\"\n"
        f"stat -c '%a' \"$options\" > '{record}.mode'\n"
        f"printf '%s' \"$options\" > '{record}.path'\n"
        f"exec '{shutil.which('mariadb-dump')}' \"$@\"\n")
    (fake / "mariadb-dump").chmod(0o755)
    env = {"DATABASE_URL": backup_url.render_as_string(hide_password=False), "BACKUP_DIR": str(tmp_path / "b"),
           "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    result = cli(["backup"], env)
    assert result.returncode == 0, result.stderr

    argv = Path(f"{record}.argv").read_text().splitlines()
    assert argv[0].startswith("--defaults-extra-file=")
    assert "--single-transaction" in argv and "--skip-lock-tables" in argv and argv[-1] == url.database
    assert not any(NASTY_PASSWORD.strip() in a or "password" in a.lower() for a in argv), argv
    assert Path(f"{record}.mode").read_text().strip() == "600"
    assert not Path(Path(f"{record}.path").read_text()).exists()  # removed afterwards
    assert NASTY_PASSWORD.strip() not in result.stderr

    # The least-privilege dump is complete: restored (by the owner's account) into a new database.
    (file,) = (tmp_path / "b").iterdir()
    target = mariadb.create_database()
    restore(target, file)
    assert_same(snapshot(target), before)


def test_every_backs_up_until_sigterm(tmp_path: Path) -> None:
    """``backup --every``: the compose job; a signal stops it at once, between two backups."""
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    init_schema(create_db_engine(url))
    folder = tmp_path / "backups"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": url, "BACKUP_DIR": str(folder)}
    with subprocess.Popen([sys.executable, "-m", "store", "backup", "--every", "0.2", "--keep", "2"], cwd=REPO,
                          env=env, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True) as proc:
        try:
            deadline = time.monotonic() + 15
            while len(list_backups(folder, "plant", "sqlite")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # two more turns: rotation at work
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=5)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.count("written: ") >= 3 and "older backup(s) rotated away" in err and "stopped" in err, err
    assert len(list_backups(folder, "plant", "sqlite")) == 2, (sorted(folder.iterdir()), err)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no partial file left


def test_help_and_the_compose_command_parse() -> None:
    parser = build_parser()
    parser.parse_args(["backup", "--every", "86400"])
    parser.parse_args(["restore", "x.sql.gz", "--force"])
    for argv in (["--help"], ["backup", "--help"], ["restore", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(argv)
        assert exit_.value.code == 0


def test_a_crafted_dump_runs_no_client_command_and_reads_no_local_file(mariadb: MariaDBServer, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup file is input like any other: one planted in the backups folder must not run a
    shell (`\\!`, `system`) nor copy our files (the environment holds DATABASE_URL's password) into
    the database through LOAD DATA LOCAL INFILE."""
    url = mariadb.create_database()
    monkeypatch.setenv("DATABASE_URL", url)  # what `python -m store restore` has in its environment
    marker = tmp_path / "shell-ran"
    crafted = tmp_path / "plant_1-20261121T030000Z.sql.gz"
    for body in (f"CREATE TABLE loot (x LONGBLOB);\n\\! touch {marker}\nsystem touch {marker}\n",
                 "CREATE TABLE loot (x LONGBLOB);\n"
                 "LOAD DATA LOCAL INFILE '/proc/self/environ' INTO TABLE loot LINES TERMINATED BY '\\0';\n"):
        crafted.write_bytes(gzip.compress((body + "-- Dump completed on 2026-11-21  3:00:00\n").encode()))
        with pytest.raises(BackupError):
            restore(url, crafted, force=True)
        assert not marker.exists()
        engine = create_db_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT x FROM loot")).scalars().all() if inspect(conn).has_table("loot") \
                    else []
        finally:
            engine.dispose()
        assert not any(b"DATABASE_URL" in bytes(r) for r in rows)


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
def test_files_planted_by_another_user_push_no_backup_out(tmp_path: Path) -> None:
    """Three files named like tomorrow's backups, planted by another user: with BACKUP_KEEP=3 they
    used to count as the newest three, and every real backup was rotated away."""
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    init_schema(create_db_engine(url))
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o700)
    now = datetime(2026, 11, 21, 3, 0, 0, tzinfo=UTC)
    real = [backup(BackupSettings(url, folder, keep=3), now=now - timedelta(days=d)).path for d in (3, 2, 1)]
    planted = [folder / f"plant-{(now + timedelta(hours=h)):%Y%m%dT%H%M%S}Z.sqlite.gz" for h in (-12, 24, 48)]
    for path in planted:
        path.write_bytes(b"x")
        os.chown(path, 65534, 65534)  # nobody
    latest = backup(BackupSettings(url, folder, keep=3), now=now)
    assert sorted(latest.rotated) == [real[0]]  # the oldest real one, as if nothing had been planted
    assert all(p.exists() for p in (*real[1:], latest.path, *planted))  # and theirs are not ours to delete
    # A folder others may write to, or someone else's, is refused outright; so is such a file to restore.
    folder.chmod(0o777)
    with pytest.raises(BackupError, match="writable by other users"):
        backup(BackupSettings(url, folder, keep=3), now=now)
    folder.chmod(0o1777)  # sticky (like /tmp): others may still plant files
    with pytest.raises(BackupError, match="writable by other users"):
        backup(BackupSettings(url, folder, keep=3), now=now)
    folder.chmod(0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(BackupError, match="belongs to uid 65534"):
        backup(BackupSettings(url, folder, keep=3), now=now)
    latest.path.chmod(0o666)
    with pytest.raises(BackupError, match="writable by other users"):
        restore(url, latest.path, force=True)
    # A partial file someone else left is not ours to remove (it used to fail every backup).
    os.chown(folder, 0, 0)
    stale = folder / ".plant-20200101T000000Z.1.partial"
    stale.write_bytes(b"x")
    os.chown(stale, 65534, 65534)
    os.utime(stale, (0, 0))
    backup(BackupSettings(url, folder, keep=3), now=now + timedelta(minutes=1))
    assert stale.exists()


def test_a_real_dump_with_a_statement_slipped_in_is_refused_untouched(mariadb: MariaDBServer, tmp_path: Path) -> None:
    """Restores run as plant_admin: `SET PASSWORD` in a backup file would hand that account to
    whoever could write the file; a trigger would acknowledge every alarm."""
    url = mariadb.create_database()
    fill(url)
    before = snapshot(url)
    file = backup(BackupSettings(url, tmp_path / "b")).path
    content = gzip.decompress(file.read_bytes())
    for evil in (b"SET PASSWORD = PASSWORD('attacker-known-1');\n",
                 b"CREATE TRIGGER ack BEFORE INSERT ON alarms FOR EACH ROW SET NEW.acknowledged_by = 'alice';\n"):
        tampered = tmp_path / file.name
        tampered.write_bytes(gzip.compress(content.replace(b"UNLOCK TABLES;\n", b"UNLOCK TABLES;\n" + evil, 1)))
        with pytest.raises(BackupError, match="not something mariadb-dump writes"):
            restore(url, tampered, force=True)
        assert snapshot(url) == before
    restore(url, file, force=True)  # the untouched backup still restores
    assert snapshot(url) == before


def test_a_sqlite_backup_with_a_trigger_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    fill(url)
    before = snapshot(url)
    file = backup(BackupSettings(url, tmp_path / "b")).path
    raw = tmp_path / "raw.db"
    raw.write_bytes(gzip.decompress(file.read_bytes()))
    with sqlite3.connect(raw) as conn:
        conn.execute("CREATE TRIGGER ack AFTER INSERT ON alarms BEGIN "
                     "UPDATE alarms SET acknowledged_by = 'alice' WHERE id = NEW.id; END")
    tampered = tmp_path / file.name
    tampered.write_bytes(gzip.compress(raw.read_bytes()))
    with pytest.raises(BackupError, match="trigger ack"):
        restore(url, tampered, force=True)
    assert snapshot(url) == before
