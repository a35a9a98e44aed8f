"""The audit trail's hash chain on a real MariaDB with the accounts of accounts.sql: entries written
by the web UI's own code on its (datavision) account; an entry edited, inserted or deleted with the
administrator's account, each seen by the real ``python -m store audit verify`` (exit status and
output); several writers at once leave one unforked chain."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select, text

from plantmodel.readings import utcnow
from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from store import audit as trail
from store import models as orm
from store import queries
from store.accounts import ACCOUNTS, account_url, apply_accounts
from store.db import create_db_engine, make_sessionmaker
from tests.processes import REPO
from tests.servers import MariaDBServer
from tests.webapp import TS, USERS, add_user, csrf, login
from webui import create_app
from webui.settings import WebSettings

pytestmark = pytest.mark.integration
PASSWORDS = {"admin": "audit-admin-pw-1", "delegate": "audit-delegate-pw-2", "collector": "audit-coll-pw-3",
             "datavision": "audit-dv-pw-4", "retention": "audit-ret-pw-5"}


@dataclass
class Plant:
    urls: dict[str, str]
    root: Engine
    datavision: Engine
    app: Flask


@pytest.fixture(scope="module")
def plant(mariadb: MariaDBServer) -> Iterator[Plant]:
    url = mariadb.create_database("audit")
    database = url.rsplit("/", 1)[1].split("?")[0]
    apply_accounts(mariadb.root_url(), database, PASSWORDS)
    urls = {role: account_url(url, role, PASSWORDS[role]) for role in ACCOUNTS}
    root = create_db_engine(mariadb.root_url(database))
    datavision = create_db_engine(urls["datavision"])
    admin_sessions = make_sessionmaker(create_db_engine(urls["admin"]))
    for name, (role, password) in USERS.items():
        add_user(admin_sessions, name, role, password)
    app = create_app(WebSettings(database_url=urls["datavision"], secret_key="test", plant_tz="Europe/Paris",
                                 plant_language="en"),
                     sessionmaker=make_sessionmaker(datavision))
    app.config["TESTING"] = True
    yield Plant(urls, root, datavision, app)
    datavision.dispose()
    root.dispose()


def _fresh_chain(plant: Plant, *, gap_after: int | None = None) -> None:
    """An empty trail, then five entries written by the web UI (log-ins, a failure, an acknowledgement
    with its corrective action); ``gap_after``: the ids jump after that many entries (as a rolled-back
    insert leaves them)."""
    with plant.root.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(text("ALTER TABLE audit_log AUTO_INCREMENT = 1"))
        conn.execute(text("DELETE FROM alarms"))
    with make_sessionmaker(plant.root).begin() as session:
        queries.save_alarm_events(session, [
            Alarm(AutomateSource(1, 1), "salmonella_ppm", 90.0, 50.0, "high", "critical", "active", TS, TS)])
    client = plant.app.test_client()
    assert login(client, "operator", "not-the-password").status_code == 401
    assert login(client, "viewer").status_code == 302
    if gap_after is not None:
        with plant.root.begin() as conn:
            conn.execute(text("ALTER TABLE audit_log AUTO_INCREMENT = 100"))
    assert login(client, "operator").status_code == 302
    with plant.datavision.connect() as conn:
        alarm_id = conn.execute(text("SELECT id FROM alarms")).scalar_one()
    resp = client.post(f"/api/alarms/{alarm_id}/ack", json={"note": "Lot 7 held", "disposition": "hold"},
                       headers=csrf(client))
    assert resp.status_code == 200, resp.get_json()
    admin = plant.app.test_client()
    assert login(admin, "admin").status_code == 302
    assert admin.get("/api/audit").get_json()["total"] == 5


def _verify(plant: Plant, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, on the web UI's account (reading is all it needs)."""
    env = {**os.environ, "DATABASE_URL": plant.urls["datavision"]}
    return subprocess.run([sys.executable, "-m", "store", "audit", "verify", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _ids(plant: Plant) -> list[int]:
    with plant.root.connect() as conn:
        return list(conn.execute(text("SELECT id FROM audit_log ORDER BY id")).scalars())


def _as_admin(plant: Plant, sql: str, **params: object) -> None:
    engine = create_db_engine(plant.urls["admin"])
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def test_an_intact_chain_verifies_and_its_head_can_be_pinned(plant: Plant) -> None:
    _fresh_chain(plant)
    done = _verify(plant)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "entries: 5" in done.stdout and "audit trail intact" in done.stdout
    head = done.stdout.split("head: ")[1].split()[0]
    with plant.root.connect() as conn:
        actions = list(conn.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars())
    assert actions == ["login.failed", "login.ok", "login.ok", "alarm.acknowledge", "login.ok"]
    # Deleting the newest entry leaves an intact, shorter chain: only the recorded head shows it.
    _as_admin(plant, "DELETE FROM audit_log WHERE id = :id", id=max(_ids(plant)))
    assert _verify(plant).returncode == 0
    pinned = _verify(plant, "--expect-head", head)
    assert pinned.returncode == 1 and "is no longer in the chain" in pinned.stdout, pinned.stdout


def test_an_edited_entry_is_detected(plant: Plant) -> None:
    _fresh_chain(plant)
    ack = _ids(plant)[3]
    _as_admin(plant, "UPDATE audit_log SET details = REPLACE(details, 'hold', 'release') WHERE id = :id", id=ack)
    done = _verify(plant)
    assert done.returncode == 1
    assert f"problem: entry {ack}: its content does not match its hash (edited)" in done.stdout, done.stdout
    assert done.stdout.count("problem:") == 1 and "TAMPERED" in done.stdout


def test_a_deleted_entry_is_detected(plant: Plant) -> None:
    _fresh_chain(plant)
    ids = _ids(plant)
    _as_admin(plant, "DELETE FROM audit_log WHERE id = :id", id=ids[1])  # a log-in nobody should know of
    done = _verify(plant)
    assert done.returncode == 1
    assert f"problem: entry {ids[2]}: does not chain to the entry before it" in done.stdout, done.stdout
    assert "entries: 4" in done.stdout


def test_an_inserted_entry_is_detected(plant: Plant) -> None:
    _fresh_chain(plant, gap_after=2)
    ids = _ids(plant)
    assert ids[:2] == [1, 2] and ids[2] >= 100
    # A forged entry in the gap, its own hash right: it cannot take the next entry's prev_hash (unique), and
    # the next entry does not chain to it.
    at = utcnow() - timedelta(hours=1)
    details = trail.canonical_details({"username": "mallory", "role": "admin"})
    prev = "f" * 64
    _as_admin(plant, "INSERT INTO audit_log (id, at, actor, address, action, details, prev_hash, hash) "
                     "VALUES (50, :at, 'admin', '127.0.0.1', 'user.create', :details, :prev, :hash)",
              at=at.replace(tzinfo=None), details=details, prev=prev,
              hash=trail.entry_hash(prev, at, "admin", "127.0.0.1", "user.create", details))
    done = _verify(plant)
    assert done.returncode == 1
    assert "problem: entry 50: does not chain to the entry before it" in done.stdout, done.stdout
    assert f"problem: entry {ids[2]}: does not chain to the entry before it" in done.stdout, done.stdout


def test_concurrent_writers_leave_one_unforked_chain(plant: Plant) -> None:
    with plant.root.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
    sessions = make_sessionmaker(plant.datavision)
    writers, each = 6, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with sessions.begin() as session:
                    trail.append(session, "test.concurrent", {"writer": n, "i": i}, at=utcnow(), actor=f"w{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with sessions() as session:
        result = trail.verify(session)
        total = session.scalar(select(func.count()).select_from(orm.AuditEntry))
        distinct = session.scalar(select(func.count(func.distinct(orm.AuditEntry.prev_hash))))
    assert result.ok, result.problems
    assert result.entries == total == distinct == writers * each
    done = _verify(plant)
    assert done.returncode == 0 and f"entries: {writers * each}" in done.stdout


def test_threshold_edits_queue_up_so_two_admins_cannot_leave_low_above_high(plant: Plant) -> None:
    """Admin B sets unit 1's tank high to 3.5 (its low inherited from *) while admin A's transaction
    raises the default low to 3.9: each change alone is coherent, together low 3.9 > high 3.5. B's
    edit must wait for A's lock and then see A's low, not check itself against the old set."""
    with plant.root.begin() as conn:
        conn.execute(text("DELETE FROM thresholds WHERE scope <> '*'"))
        conn.execute(text("INSERT IGNORE INTO units (id, created_at) VALUES (1, UTC_TIMESTAMP(3))"))
    with make_sessionmaker(plant.root).begin() as session:
        queries.seed_default_thresholds(session, TS)
    admin = plant.app.test_client()
    assert login(admin, "admin").status_code == 302
    headers = csrf(admin)
    a_session = make_sessionmaker(plant.root)()
    result: dict[str, object] = {}
    try:
        queries.lock_thresholds_for_edit(a_session)  # admin A's edit, holding the lock
        a_session.execute(text("UPDATE thresholds SET low = 3.9 WHERE scope = '*' AND measure = 'tank_temp_c'"))

        def edit_b() -> None:
            resp = admin.put("/api/thresholds", json={"scope": "units/1", "measure": "tank_temp_c", "high": 3.5},
                             headers=headers)
            result["b"] = (resp.status_code, resp.get_json())

        b = threading.Thread(target=edit_b)
        b.start()
        deadline = utcnow() + timedelta(seconds=30)
        with plant.root.connect() as conn:  # until B waits for A's lock (or, without it, is done)
            while b.is_alive() and not conn.execute(text(
                    "SELECT COUNT(*) FROM information_schema.INNODB_LOCK_WAITS")).scalar():
                assert utcnow() < deadline, "B neither waited nor finished"
                conn.commit()
        assert "b" not in result, f"B did not wait for A's edit: {result['b']}"
        a_session.commit()
    finally:
        a_session.close()
    b.join(30)
    status, body = result["b"]  # type: ignore[misc]
    assert status == 400 and "above" in str(body), body
    with plant.root.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM thresholds WHERE scope = 'units/1'")).scalar() == 0
        conn.execute(text("UPDATE thresholds SET low = 2.5 WHERE scope = '*' AND measure = 'tank_temp_c'"))
        conn.commit()
