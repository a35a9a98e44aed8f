"""The least-privilege database accounts of accounts.sql on a real MariaDB: what each account is
refused, the schema check of a restricted account, the scripts that create the accounts, and the
whole pipeline running on them (bridge = collector, web UI = datavision, retention job = retention).

Every test here fails if the accounts are given ALL PRIVILEGES: each checks refusals."""

from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from alembic import command
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from plantmodel import Topics, format_ts, utcnow
from plantmodel.errors import ValidationError
from plantmodel.readings import Reading
from plantmodel.shelly import SWITCH_KEY, notification
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Threshold, default_thresholds
from store import migrate, queries
from store import models as orm
from store import users as user_store
from store.accounts import ACCOUNTS, account_url, apply_accounts
from store.accounts import run as run_accounts
from store.db import SchemaOutdated, create_db_engine, error_code, init_schema, make_sessionmaker
from tests.faults import MeterClient
from tests.mqtt import Client
from tests.processes import REPO, Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer, find_binary, free_port, wait_port
from tests.unit.test_model import EXAMPLE
from tests.webapp import add_user

pytestmark = pytest.mark.integration
Spawn = Callable[[str, list[str], dict[str, str]], Service]
T = Topics()
# Characters a password may hold that SQL, URLs and shells all treat specially.
PASSWORDS = {"admin": "adm'in\\pw-1", "delegate": 'dele"gate pw;2', "collector": "coll%ector@pw:3/",
             "datavision": "data`vision$pw#4", "retention": "ret&en+tion?pw=5"}
DENIED = (1142, 1143)  # "<command> denied to user … for table / column …"


@dataclass
class Accounts:
    server: MariaDBServer
    database: str
    urls: dict[str, str]
    _engines: dict[str, Engine] = field(default_factory=dict)

    def engine(self, role: str) -> Engine:
        """``role``'s engine; ``root`` for the server's root account."""
        if role not in self._engines:
            self._engines[role] = create_db_engine(self.server.root_url(self.database) if role == "root"
                                                   else self.urls[role])
        return self._engines[role]

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()


@pytest.fixture(scope="module")
def accounts(mariadb: MariaDBServer) -> Iterator[Accounts]:
    """One database with its schema, the five accounts and the default thresholds. (Accounts are
    server-wide and serve one database: every test of this module shares it.)"""
    url = mariadb.create_database("accounts")
    database = str(make_url(url).database)
    apply_accounts(mariadb.root_url(), database, PASSWORDS)
    acc = Accounts(mariadb, database, {role: account_url(url, role, PASSWORDS[role]) for role in ACCOUNTS})
    with acc.engine("root").begin() as conn:  # an automate, so that a refused INSERT would be a valid one
        conn.execute(text("INSERT INTO units (id, created_at) VALUES (1, NOW())"))
        conn.execute(text("INSERT INTO automates (unit_id, automate_no, type, created_at) "
                          "VALUES (1, 1, '0x0000BA27', NOW())"))
    yield acc
    acc.dispose()


def refused(engine: Engine, sql: str) -> str:
    """Run ``sql`` (rolled back) and return the database's refusal; fail if it is allowed."""
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
            conn.rollback()
    except DBAPIError as exc:
        assert error_code(exc) in DENIED, f"{sql}: not a refusal: {exc}"
        return str(exc.orig)
    pytest.fail(f"{engine.url.username} was allowed: {sql}")


# Statements that do the harm of a stolen password (and would all succeed with ALL PRIVILEGES).
DDL = ["DROP TABLE readings", "ALTER TABLE alarms ADD COLUMN evil INT", "CREATE TABLE evil (a INT)",
       "TRUNCATE TABLE alarms", "CREATE INDEX evil ON readings (ph)"]
AUDIT_TAMPERING = ["DELETE FROM threshold_changes", "UPDATE threshold_changes SET changed_by = 'nobody'"]
DATA_TAMPERING = ["DELETE FROM readings", "UPDATE readings SET ph = 7.0", "DELETE FROM alarms",
                  "DELETE FROM power_readings", "UPDATE power_readings SET apower = 0"]


def test_collector_writes_telemetry_only(accounts: Accounts) -> None:
    collector = accounts.engine("collector")
    with make_sessionmaker(collector)() as session:  # what it reads: the defaults accounts.sql seeded
        assert {t for t in queries.load_thresholds(session) if t.scope == "*"} == set(default_thresholds())
        session.execute(select(orm.SourceVersion).with_for_update())
    for sql in ["SELECT * FROM users", "SELECT * FROM threshold_changes",
                "INSERT INTO users (username, password_hash, role, created_at, updated_at) "
                "VALUES ('evil', 'x', 'admin', NOW(), NOW())",
                "UPDATE thresholds SET high = 1000000 WHERE measure = 'salmonella_ppm'",
                "DELETE FROM thresholds WHERE measure = 'salmonella_ppm'",
                # Silencing an alarm: an acknowledgement is the operators' alone.
                "UPDATE alarms SET acknowledged_at = NOW(), acknowledged_by = 'operator'",
                "INSERT INTO alarms (source, measure, bound, severity, state, value, limit_value, last_value, "
                "raised_at, acknowledged_at, acknowledged_by) VALUES ('units/1/automates/1', 'ph', 'high', "
                "'warning', 'active', 9, 7.2, 9, NOW(), NOW(), 'alice')",
                "INSERT INTO thresholds (scope, measure, low, high, deadband, severity, updated_at, updated_by) "
                "VALUES ('units/1', 'salmonella_ppm', NULL, 1000000, 0, 'info', NOW(), 'evil')",
                # The registry: what a device says of itself, never whether it is disabled, or its name.
                "UPDATE devices SET disabled = 0", "UPDATE devices SET name = 'x'", "DELETE FROM devices",
                "UPDATE devices SET device = 'units/99' WHERE device = 'units/1'",
                "SELECT * FROM device_tokens", "SELECT * FROM switch_actions",
                *AUDIT_TAMPERING, *DATA_TAMPERING, *DDL]:
        refused(collector, sql)


def test_datavision_reads_and_writes_only_what_the_ui_needs(accounts: Accounts) -> None:
    datavision = accounts.engine("datavision")
    with datavision.connect() as conn:
        conn.execute(text("SELECT COUNT(*) FROM readings"))
        conn.execute(text("SELECT COUNT(*) FROM users"))
        conn.execute(text("SELECT COUNT(*) FROM rejected_messages"))  # the admins' rejected-messages page
    for sql in ["INSERT INTO readings (unit_id, automate_no, seq, ts, received_at, tank_temp_c, ext_temp_c, "
                "milk_kg, product_kg, ph, k_mg_l, nacl_g_l, salmonella_ppm, ecoli_ppm, listeria_ppm) "
                "VALUES (1, 1, 1, NOW(), NOW(), 3, 11, 4000, 0, 7, 40, 1.3, 20, 40, 30)",
                "INSERT INTO power_readings (meter_id, ts, received_at, apower) VALUES ('m', NOW(), NOW(), 1)",
                "UPDATE alarms SET value = 0, state = 'cleared'",  # only the acknowledgement columns
                "INSERT INTO alarms (source, measure, bound, severity, state, value, limit_value, last_value, "
                "raised_at) VALUES ('units/1/automates/1', 'ph', 'high', 'warning', 'active', 9, 7.2, 9, NOW())",
                "UPDATE users SET username = 'other'",  # who a row is stays put
                # What a device says of itself is the bridge's; tokens and switch audit are append-only.
                "UPDATE devices SET model = 'x', firmware = 'y', last_seen = NOW()", "DELETE FROM devices",
                "UPDATE device_tokens SET token_hash = 'x', device = 'units/2'", "DELETE FROM device_tokens",
                "UPDATE switch_actions SET requested_by = 'x', to_state = 'on'", "DELETE FROM switch_actions",
                *AUDIT_TAMPERING, *DATA_TAMPERING, *DDL]:
        refused(datavision, sql)


def test_datavision_appends_to_the_audit_trail_but_cannot_rewrite_it(accounts: Accounts) -> None:
    from store import audit as trail

    with make_sessionmaker(accounts.engine("datavision")).begin() as session:  # the web UI's own path
        trail.append(session, "test.append", {"by": "datavision"}, at=utcnow(), actor="tester")
    for sql in ["UPDATE audit_log SET actor = 'nobody'", "DELETE FROM audit_log", "TRUNCATE TABLE audit_log",
                "UPDATE audit_log SET details = '{}', hash = prev_hash"]:
        refused(accounts.engine("datavision"), sql)
    with accounts.engine("root").connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM audit_log WHERE action = 'test.append'")).scalar_one() == 1


def test_delegate_manages_users_and_thresholds_without_ddl(accounts: Accounts) -> None:
    sessions = make_sessionmaker(accounts.engine("delegate"))
    now = utcnow()
    with sessions.begin() as session:
        user = user_store.add_user(session, "delegated-bob", "not-a-real-hash", "operator", now)
        user_store.set_role(user, "viewer")
        queries.upsert_threshold(session, Threshold("ph", "units/9", 6.5, 7.5, 0.1, "warning"), now, "delegate")
    with sessions.begin() as session:
        assert queries.delete_threshold(session, "units/9", "ph", now, "delegate")
        row = user_store.get_user(session, "delegated-bob")
        assert row is not None and row.role == "viewer"
        session.delete(row)
    with sessions() as session:
        changes = session.scalars(select(orm.ThresholdChange).where(orm.ThresholdChange.scope == "units/9"))
        assert [c.action for c in changes] == ["set", "delete"]  # the audit trail of both
    delegate = accounts.engine("delegate")
    for sql in [*AUDIT_TAMPERING, *DATA_TAMPERING, *DDL,
                "INSERT INTO readings (unit_id, automate_no, seq, ts, received_at, tank_temp_c, ext_temp_c, "
                "milk_kg, product_kg, ph, k_mg_l, nacl_g_l, salmonella_ppm, ecoli_ppm, listeria_ppm) "
                "VALUES (1, 1, 1, NOW(), NOW(), 3, 11, 4000, 0, 7, 40, 1.3, 20, 40, 30)"]:
        refused(delegate, sql)


def allowed(engine: Engine, sql: str) -> None:
    """Run ``sql`` (rolled back): it must not be refused."""
    with engine.connect() as conn:
        conn.execute(text(sql))
        conn.rollback()


# What the retention job purges (store/retention.py): SELECT and DELETE there, and nowhere else.
RETENTION_TABLES = ("readings", "power_readings", "readings_minute", "readings_hour", "power_readings_minute",
                    "power_readings_hour", "rejected_messages")


def test_retention_reads_and_deletes_only_what_it_purges(accounts: Accounts) -> None:
    retention = accounts.engine("retention")
    from store import retention as job

    assert {t.name for t in job.targets()} == set(RETENTION_TABLES)  # the grants cover every purged table
    for table in RETENTION_TABLES:
        allowed(retention, f"SELECT COUNT(*) FROM {table}")
        allowed(retention, f"DELETE FROM {table} WHERE 1 = 0")
        allowed(retention, f"DESCRIBE {table}")  # how the job checks that a table exists
    allowed(retention, "SELECT version_num FROM alembic_version")  # the schema check
    for sql in [
        # It can neither forge nor edit what it keeps.
        "INSERT INTO readings (unit_id, automate_no, seq, ts, received_at, tank_temp_c, ext_temp_c, "
        "milk_kg, product_kg, ph, k_mg_l, nacl_g_l, salmonella_ppm, ecoli_ppm, listeria_ppm) "
        "VALUES (1, 1, 1, NOW(), NOW(), 3, 11, 4000, 0, 7, 40, 1.3, 20, 40, 30)",
        "INSERT INTO power_readings (meter_id, ts, received_at, apower) VALUES ('m', NOW(), NOW(), 1)",
        "INSERT INTO rejected_messages (received_at, topic, payload, payload_bytes, reason) "
        "VALUES (NOW(), 'plant/x', 'x', 1, 'x')",
        "INSERT INTO readings_hour (unit_id, automate_no, bucket) VALUES (1, 1, 0)",
        "UPDATE readings SET ph = 7.0", "UPDATE power_readings SET apower = 0",
        "UPDATE readings_minute SET ph_max = 7.0", "UPDATE power_readings_hour SET apower_max = 0",
        "UPDATE rejected_messages SET reason = 'x'",
        "UPDATE alembic_version SET version_num = '0001'", "DELETE FROM alembic_version",
        # Nothing else of the plant: alarms, the audit trails, users, thresholds, devices.
        "SELECT * FROM alarms", "DELETE FROM alarms", "UPDATE alarms SET state = 'cleared'",
        "SELECT * FROM audit_log", "DELETE FROM audit_log", "SELECT * FROM users", "DELETE FROM users",
        "SELECT * FROM thresholds", "DELETE FROM thresholds",
        "UPDATE thresholds SET high = 1000000 WHERE measure = 'salmonella_ppm'",
        "SELECT * FROM device_tokens", "DELETE FROM devices", "SELECT * FROM meter_states",
        "DELETE FROM power_readings_latest", "DELETE FROM automates",
        *AUDIT_TAMPERING, *DDL, "TRUNCATE TABLE readings", "DROP TABLE rejected_messages",
        "ALTER TABLE readings_hour ADD COLUMN evil INT"]:
        refused(retention, sql)


def test_restricted_accounts_start_on_a_current_schema_and_name_the_upgrade_otherwise(accounts: Accounts) -> None:
    restricted = ("collector", "datavision", "delegate", "retention")
    for role in restricted:  # what every service does at start: nothing to change, no error
        init_schema(accounts.engine(role))
    admin = accounts.engine("admin")
    with admin.connect() as conn:  # the database of an older release: one revision back
        command.downgrade(migrate.alembic_config(conn, stdout=io.StringIO()), "0001")
        conn.commit()
    try:
        for role in restricted:
            with pytest.raises(SchemaOutdated) as info:
                init_schema(accounts.engine(role))
            message = str(info.value)
            assert "at revision 0001" in message and "python -m store upgrade" in message, message
            assert ACCOUNTS[role][0] in message and PASSWORDS[role] not in message
            assert "\n" not in message
        with pytest.raises(SchemaOutdated):
            init_schema(admin)  # even the administrator's services: upgrading is a deliberate step
    finally:
        before, after = migrate.upgrade(admin)  # the administrator's upgrade: DDL is its job
    assert (before.revision, after.revision) == ("0001", migrate.head_revision())
    for role in restricted:
        init_schema(accounts.engine(role))
    refused(accounts.engine("collector"), "ALTER TABLE readings DROP COLUMN stored_at")


def _script_env(**passwords: str) -> dict[str, str]:
    return {**os.environ, **{ACCOUNTS[role][1]: pw for role, pw in passwords.items()}}


def test_account_scripts_create_and_rotate_accounts(accounts: Accounts) -> None:
    server, db = accounts.server, accounts.database
    client = [f"--socket={server.socket}", "-uroot"]
    sh = ["bash", str(REPO / "accounts.sh")]

    def collector(password: str) -> Engine:
        return create_db_engine(account_url(accounts.urls["collector"], "collector", password))

    # Placeholders and missing passwords are refused before anything runs.
    proc = subprocess.run([*sh, db, *client], env=_script_env(**{**PASSWORDS, "collector": "change-me"}),
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "DB_COLLECTOR_PASSWORD is a placeholder" in proc.stderr
    # A non-ASCII password would be set, and then never work: the services' driver sends latin-1.
    proc = subprocess.run([*sh, db, *client], env=_script_env(**{**PASSWORDS, "collector": "pässwort-Adm-1"}),
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "DB_COLLECTOR_PASSWORD must be printable ASCII" in proc.stderr
    with pytest.raises(ValidationError, match="DB_COLLECTOR_PASSWORD must be printable ASCII"):
        apply_accounts(server.root_url(), db, {**PASSWORDS, "collector": "pässwort-Adm-1"})
    with pytest.raises(ValidationError, match="DB_DATAVISION_PASSWORD is not set"):
        apply_accounts(server.root_url(), db, {**PASSWORDS, "datavision": ""})
    with pytest.raises(ValidationError, match="DB_RETENTION_PASSWORD is not set"):
        apply_accounts(server.root_url(), db, {role: pw for role, pw in PASSWORDS.items() if role != "retention"})
    for env, error in (({**PASSWORDS, "retention": "change-me-retention"}, "DB_RETENTION_PASSWORD is a placeholder"),
                       ({**PASSWORDS, "retention": ""}, "DB_RETENTION_PASSWORD is not set")):
        proc = subprocess.run([*sh, db, *client], env=_script_env(**env), capture_output=True, text=True)
        assert proc.returncode == 2 and error in proc.stderr, proc.stderr
    # accounts.sql by hand, without its passwords or with a placeholder: one clear error.
    script = (REPO / "accounts.sql").read_text()
    four = ("SET @admin_password = 'a-1', @delegate_password = 'd-2', @collector_password = 'c-3', "
            "@datavision_password = 'v-4'")
    for sets, error in (("", "accounts.sql: @admin_password is not set"),
                        (four + ";", "accounts.sql: @retention_password is not set"),
                        (four + ", @retention_password = 'Placeholder-5';",
                         "accounts.sql: a password is a placeholder"),
                        ("SET @admin_password = 'a-1', @delegate_password = 'd-2', @collector_password = 'CHANGE-ME', "
                         "@datavision_password = 'v-4', @retention_password = 'r-5';",
                         "accounts.sql: a password is a placeholder")):
        proc = subprocess.run([find_binary("mariadb"), *client, db], input=sets + script, capture_output=True,
                              text=True)
        assert proc.returncode == 1 and error in proc.stderr, proc.stderr

    rotated = {**PASSWORDS, "collector": "rotated-collector-pw'5"}
    try:
        # By hand: rotate the collector's password.
        proc = subprocess.run([*sh, db, *client], env=_script_env(**rotated), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        old, new = collector(PASSWORDS["collector"]), collector(rotated["collector"])
        with pytest.raises(DBAPIError) as info:
            old.connect().close()
        assert error_code(info.value) == 1045  # access denied: the old password is gone
        refused(new, "SELECT * FROM users")  # and the account is as narrow as before
        old.dispose()
        new.dispose()
    finally:
        # As the MariaDB image runs it: sourced, through its docker_process_sql, on MARIADB_DATABASE.
        init = ('set -eo pipefail; '
                'docker_process_sql() { "$MARIADB_CLIENT" --socket="$SOCK" -uroot --database="$DB" "$@"; }; '
                '. "$INITDB_SCRIPT"')
        proc = subprocess.run(["bash", "-c", init], capture_output=True, text=True, env={
            **_script_env(**PASSWORDS), "MARIADB_CLIENT": find_binary("mariadb"), "SOCK": str(server.socket),
            "DB": db, "ACCOUNTS_SQL": str(REPO / "accounts.sql"), "INITDB_SCRIPT": str(REPO / "accounts.sh")})
        assert proc.returncode == 0, proc.stderr
        # ... where root's password is in the same .env: its placeholder is refused as well.
        proc = subprocess.run(["bash", "-c", init], capture_output=True, text=True, env={
            **_script_env(**PASSWORDS), "MARIADB_CLIENT": find_binary("mariadb"), "SOCK": str(server.socket),
            "DB": db, "ACCOUNTS_SQL": str(REPO / "accounts.sql"), "INITDB_SCRIPT": str(REPO / "accounts.sh"),
            "MARIADB_ROOT_PASSWORD": "change-me-root"})
        assert proc.returncode == 2 and "MARIADB_ROOT_PASSWORD is a placeholder" in proc.stderr
    # `python -m store accounts` (store.accounts.run), passwords from the environment: again idempotent.
    args = argparse.Namespace(url=server.root_url(), database=db, sql=REPO / "accounts.sql")
    env = {variable: PASSWORDS[role] for role, (_, variable) in ACCOUNTS.items()}
    assert run_accounts(args, {**env, "DB_ADMIN_PASSWORD": "Change-Me-Too"}) == 2
    assert run_accounts(args, env) == 0
    again = collector(PASSWORDS["collector"])  # a new log-in: the original password works again
    refused(again, "SELECT * FROM users")
    again.dispose()


# -- the pipeline on the restricted accounts ------------------------------------------------------------------

UNIT, AUTOMATE = 3, 7
SOURCE = f"units/{UNIT}/automates/{AUTOMATE}"


def _reading(start: datetime, seq: int, tank_temp_c: float) -> str:
    """Reading ``seq`` of the automate, ``seq`` seconds after ``start``."""
    return Reading.from_dict({**EXAMPLE, "unit": UNIT, "automate": AUTOMATE, "seq": seq, "boot": "accounts",
                              "ts": format_ts(start + timedelta(seconds=seq)), "tank_temp_c": tank_temp_c}).to_json()


def _web_login(base: str, username: str, password: str) -> requests.Session:
    """Log in through the form; the session then sends the page's CSRF token with every request."""
    web = requests.Session()
    form = web.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    answer = web.post(f"{base}/login", data={"username": username, "password": password,
                                             "csrf_token": token.group(1)}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    overview = web.get(f"{base}/", timeout=10)  # the dashboard, drawn from the database
    assert overview.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', overview.text)
    assert csrf, overview.text
    web.headers["X-CSRF-Token"] = csrf.group(1)
    return web


def test_pipeline_runs_on_the_collector_and_datavision_accounts(accounts: Accounts, mosquitto: MosquittoServer,
                                                                 spawn: Spawn) -> None:
    env = {**mosquitto.env(), "BRIDGE_THRESHOLDS_POLL": "0.5"}
    bridge_env = {**env, "DATABASE_URL": accounts.urls["collector"], "MQTT_USERNAME": mosquitto.bridge_user()}
    bridge = spawn("bridge", ["bridge", "run"], bridge_env)
    port = free_port()
    webui = spawn("webui", ["webui", "run", "--port", str(port)], {**env, "DATABASE_URL": accounts.urls["datavision"]})
    services = [bridge, webui]
    # The web UI's users, created through its own account (as `python -m webui users add` does).
    datavision = make_sessionmaker(accounts.engine("datavision"))
    add_user(datavision, "acc-operator", "operator", "acc-operator-pass-1")
    add_user(datavision, "acc-admin", "admin", "acc-admin-pass-1")
    wait_for(lambda: "connected to" in bridge.log(), 20, "the bridge", services=services)

    # A unit and a meter publish: stored, one alarm each, one rejected message.
    meter = mosquitto.layout.meters[0]
    start = utcnow() - timedelta(minutes=2)
    unit = Client(mosquitto, f"unit-{UNIT}")
    shelly = MeterClient(mosquitto, meter)
    try:
        unit.publish(T.unit_status(UNIT), DeviceStatus.online().to_json(), retain=True)
        unit.publish(T.reading(UNIT, AUTOMATE), _reading(start, 1, 3.2))
        unit.publish(T.reading(UNIT, AUTOMATE), _reading(start, 2, 4.6))  # over 4.0: an alarm
        unit.publish(T.reading(UNIT, AUTOMATE), b"{not json")
        shelly.publish(T.shelly(meter, "online"), "true")
        shelly.publish(T.shelly(meter, "events/rpc"), notification(meter, "NotifyFullStatus", {
            "ts": round(time.time() - 5, 2), SWITCH_KEY: {**shelly.sim.status, "apower": 3800.0}}))

        admin_db = make_sessionmaker(accounts.engine("admin"))

        def stored() -> bool:
            with admin_db() as s:
                def n(model: type, *where: object) -> int:
                    return s.scalar(select(func.count()).select_from(model).where(*where)) or 0
                return (n(orm.Reading, orm.Reading.unit_id == UNIT) == 2
                        and n(orm.Alarm, orm.Alarm.source == SOURCE, orm.Alarm.state == "active") == 1
                        and n(orm.PowerReading, orm.PowerReading.meter_id == meter) >= 1
                        and n(orm.Alarm, orm.Alarm.meter_id == meter, orm.Alarm.measure == "apower") == 1
                        and n(orm.MeterState, orm.MeterState.meter_id == meter) == 1
                        and n(orm.DeviceState, orm.DeviceState.device == f"units/{UNIT}") == 1
                        and n(orm.RejectedMessage) >= 1)

        wait_for(stored, 20, "readings, alarms, meter data and the rejected message", services=services)
        with admin_db() as s:
            (alarm,) = s.scalars(select(orm.Alarm).where(orm.Alarm.source == SOURCE))

        # The web UI shows them; an operator acknowledges the alarm.
        base = f"http://127.0.0.1:{port}"
        wait_port(port, 20, webui.proc)  # listening (its "serving" line comes just before the bind)
        operator = _web_login(base, "acc-operator", "acc-operator-pass-1")
        items = operator.get(f"{base}/api/units/{UNIT}/automates/{AUTOMATE}/readings", timeout=10).json()["items"]
        assert [i["tank_temp_c"] for i in items] == [3.2, 4.6]
        answer = operator.post(f"{base}/api/alarms/{alarm.id}/ack", timeout=10)
        assert answer.status_code == 200 and answer.json()["acknowledged_by"] == "acc-operator", answer.text
        # ...and picks French for the pages (the account may update users.language, revision 0003).
        answer = operator.patch(f"{base}/api/me", json={"language": "fr"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["language"] == "fr", answer.text
        assert '<html lang="fr">' in operator.get(f"{base}/alarms", timeout=10).text
        assert operator.post(f"{base}/logout", allow_redirects=False, timeout=10).status_code == 302

        # An admin changes thresholds (each change audited) and manages a user.
        admin = _web_login(base, "acc-admin", "acc-admin-pass-1")
        for high, status in ((5.0, 201), (5.5, 200)):
            answer = admin.put(f"{base}/api/thresholds", json={"scope": SOURCE, "measure": "tank_temp_c",
                                                               "low": 2.5, "high": high, "confirm": True},
                               timeout=10)
            assert answer.status_code == status, answer.text
        answer = admin.put(f"{base}/api/thresholds", json={"scope": f"units/{UNIT}", "measure": "ph", "low": 6.0,
                                                           "high": 7.5, "confirm": True}, timeout=10)
        assert answer.status_code == 201, answer.text
        answer = admin.delete(f"{base}/api/thresholds", params={"scope": f"units/{UNIT}", "measure": "ph"},
                              timeout=10)
        assert answer.status_code == 200, answer.text
        changes = admin.get(f"{base}/api/thresholds/changes", timeout=10).json()["items"]
        assert [(c["changed_by"], c["scope"], c["action"]) for c in changes[:4]] == [
            ("acc-admin", f"units/{UNIT}", "delete"), ("acc-admin", f"units/{UNIT}", "set"),
            ("acc-admin", SOURCE, "set"), ("acc-admin", SOURCE, "set")]
        answer = admin.post(f"{base}/api/users", json={"username": "acc-marie", "password": "acc-marie-pass-1",
                                                       "role": "operator"}, timeout=10)
        assert answer.status_code == 201, answer.text
        assert admin.patch(f"{base}/api/users/acc-marie", json={"role": "viewer"}, timeout=10).status_code == 200
        assert admin.delete(f"{base}/api/users/acc-marie", timeout=10).status_code == 200

        # The bridge applies the new limit (5.5, deadband 0.2): 4.6 is back inside, the alarm clears.
        seq = 3

        def cleared() -> bool:
            nonlocal seq
            unit.publish(T.reading(UNIT, AUTOMATE), _reading(start, seq, 4.6))
            seq += 1
            with admin_db() as s:
                return s.scalar(select(orm.Alarm.state).where(orm.Alarm.id == alarm.id)) == "cleared"

        wait_for(cleared, 15, "the alarm to clear under the new threshold", interval=0.3, services=services)
    finally:
        unit.close()
        shelly.close()

    # A stolen bridge password cannot lift the salmonella limit, even through the bridge's own CLI.
    proc = subprocess.run([sys.executable, "-m", "bridge", "thresholds", "set", "--measure", "salmonella_ppm",
                           "--high", "1000000", "--confirm"], env={**os.environ, **bridge_env}, capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 1 and "command denied to user 'plant_collector'" in proc.stderr, proc.stderr

    codes = {s.name: s.stop() for s in reversed(services)}
    assert codes == {"webui": 0, "bridge": 0}, codes
    for service in services:
        assert "denied" not in service.log() and "Traceback" not in service.log(), service.log()[-3000:]


def test_the_delegate_backs_up_what_the_services_cannot(accounts: Accounts, tmp_path: Path) -> None:
    """compose's daily backup runs as plant_delegate: it reads every table (users included), so
    its dump is whole; the collector's and datavision's accounts cannot take one."""
    def backup(role: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATABASE_URL": accounts.urls[role], "BACKUP_DIR": str(tmp_path / role)}
        return subprocess.run([sys.executable, "-m", "store", "backup"], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=60)

    done = backup("delegate")
    assert done.returncode == 0, done.stderr
    (dump,) = (tmp_path / "delegate").glob("*.sql.gz")
    text_ = gzip.decompress(dump.read_bytes()).decode()
    for table in orm.Base.metadata.tables:
        assert f"CREATE TABLE `{table}`" in text_, table
    for role in ("collector", "datavision"):
        refused_ = backup(role)
        # mariadb-dump alone would write a dump without the tables it may not read, exit 0.
        assert refused_.returncode == 1 and "may not read them" in refused_.stderr, refused_.stderr
        assert not list((tmp_path / role).glob("*.sql.gz"))


RETENTION_METER = "shellypro1pm-retention0"
RETENTION_UNIT = 1  # the fixture's automate (1, 1)


def _seed_for_retention(root: Engine, now: datetime) -> dict[str, int]:
    """Rows past their retention (default periods) in every purged table, young ones beside them, and
    an alarm from long ago; returns, per table, how many rows a purge must delete."""
    from plantmodel.measures import AUTOMATE_MEASURES

    day = timedelta(days=1)
    old_raw, young = now - 800 * day, now - day
    with make_sessionmaker(root).begin() as s:
        s.add(orm.Meter(id=RETENTION_METER, first_seen=old_raw, last_seen=now))
        s.flush()
        s.execute(insert(orm.Reading), [
            {"unit_id": RETENTION_UNIT, "automate_no": 1, "seq": 90_000 + i, "ts": ts, "received_at": ts,
             "stored_at": ts, **dict.fromkeys(AUTOMATE_MEASURES, 1.0)}
            for i, ts in enumerate([old_raw, old_raw - timedelta(minutes=1), old_raw - timedelta(minutes=2), young])])
        s.execute(insert(orm.PowerReading), [{"meter_id": RETENTION_METER, "ts": ts, "received_at": ts, "apower": 1.0}
                                             for ts in (old_raw, old_raw - timedelta(minutes=1), young)])
        s.execute(insert(orm.RejectedMessage), [
            {"received_at": ts, "topic": "plant/x", "payload": "x", "payload_bytes": 1, "reason": "retention test"}
            for ts in (now - 100 * day, now - 101 * day, young)])
        for rollups, key in ((orm.READING_ROLLUPS, {"unit_id": RETENTION_UNIT, "automate_no": 1}),
                             (orm.POWER_ROLLUPS, {"meter_id": RETENTION_METER})):
            for level, width in orm.ROLLUP_LEVELS.items():
                model = rollups[level]
                old_bucket = int((now - 3700 * day).timestamp()) // width * width
                rows = []
                for bucket in (old_bucket, old_bucket - width, int(young.timestamp()) // width * width):
                    row: dict[str, object] = {**key, "bucket": bucket}
                    for col in model.__table__.columns:
                        row.setdefault(col.name, 1 if col.name.endswith("_n") else 2.5)
                    rows.append(row)
                s.execute(insert(model), rows)
        s.add(orm.Alarm(source=f"units/{RETENTION_UNIT}/automates/1", unit_id=RETENTION_UNIT, automate_no=1,
                        measure="ph", bound="high", severity="warning", state="cleared", value=8.0,
                        limit_value=7.5, last_value=7.0, raised_at=now - 5000 * day, cleared_at=now - 4999 * day))
    return {"readings": 3, "power_readings": 2, "rejected_messages": 2, "readings_minute": 2, "readings_hour": 2,
            "power_readings_minute": 2, "power_readings_hour": 2}


def test_the_retention_job_runs_on_its_own_account(accounts: Accounts) -> None:
    """compose's hourly `python -m store retention` runs as plant_retention: on a filled database it
    purges every table it must (dry run, then for real), with nothing refused, and leaves the rest."""
    from store.retention import RetentionSettings, plan, purge

    root = accounts.engine("root")
    now = datetime.now(UTC).replace(microsecond=0)
    expected = _seed_for_retention(root, now)
    assert set(expected) == set(RETENTION_TABLES)

    def table_counts() -> dict[str, int]:
        with root.connect() as conn:
            return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                    for t in (*RETENTION_TABLES, "alarms", "audit_log", "thresholds", "users", "automates", "meters")}

    before = table_counts()
    retention = accounts.engine("retention")
    with make_sessionmaker(retention)() as session:  # the dry run's counts, in process
        planned = {p.table: p.count for p in plan(session, RetentionSettings(), now)}
    assert planned == expected

    def job(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")},
               "DATABASE_URL": accounts.urls["retention"], "RETENTION_BATCH": "1"}
        return subprocess.run([sys.executable, "-m", "store", "retention", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    dry = job("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"total: {sum(expected.values())} row(s) would be purged" in dry.stdout, dry.stdout
    assert table_counts() == before

    done = job("--pause", "0")  # batches of one row: every SELECT and DELETE of the job, many times
    assert done.returncode == 0, done.stderr
    assert f"retention done: {sum(expected.values())} row(s) deleted" in done.stdout, done.stdout
    for output in (dry.stdout + dry.stderr, done.stdout + done.stderr):
        assert "denied" not in output and "Traceback" not in output and "skipped" not in output, output
    after = table_counts()
    assert {t: before[t] - after[t] for t in RETENTION_TABLES} == expected
    assert {t: after[t] for t in after if t not in RETENTION_TABLES} == {
        t: before[t] for t in before if t not in RETENTION_TABLES}  # alarms, audit, users... untouched
    # store.retention.purge itself, on the account's engine: nothing left to do, nothing refused.
    again = purge(retention, RetentionSettings(batch=1), now, pause=0)
    assert again.total == 0 and set(again.deleted) == set(RETENTION_TABLES) and not again.stopped
    with root.connect() as conn:  # the young rows are there
        assert conn.execute(text("SELECT COUNT(*) FROM power_readings WHERE meter_id = :m"),
                            {"m": RETENTION_METER}).scalar_one() == 1
        assert conn.execute(text("SELECT COUNT(*) FROM readings WHERE unit_id = :u AND seq >= 90000"),
                            {"u": RETENTION_UNIT}).scalar_one() == 1


def test_no_account_can_take_every_connection(accounts: Accounts) -> None:
    """151 connections of the web UI's account once left the bridge with `Too many connections`."""
    with accounts.engine("root").connect() as conn:
        rows = conn.execute(text("SELECT user, max_user_connections FROM mysql.user WHERE user LIKE 'plant\\_%'"))
        limits = {str(user): int(n) for user, n in rows}
    assert 0 < limits["plant_collector"] <= 60 and 0 < limits["plant_datavision"] <= 60
    assert 0 < limits["plant_delegate"] <= 20
    assert 0 < limits["plant_retention"] <= 5  # one job, one or two connections at a time
    with accounts.engine("root").connect() as conn:
        server_max = conn.execute(text("SELECT @@max_connections")).scalar_one()
    assert sum(v for k, v in limits.items() if k != "plant_admin") < server_max


def test_load_data_local_cannot_skip_the_column_grants(accounts: Accounts, tmp_path: Path) -> None:
    """MariaDB checks no column-level INSERT grant for LOAD DATA without a column list: with
    local_infile on, the collector inserted an alarm acknowledged by 'alice'. The server runs with
    --local-infile=0 (docker-compose.yml, the test server)."""
    row = tmp_path / "alarm.tsv"
    row.write_text("\t".join(["999", "units/1/automates/1", "1", "1", "\\N", "ph", "high", "warning", "active",
                              "9", "7.2", "9", "2026-01-01 00:00:00", "\\N", "2026-01-01 00:01:00", "alice"]) + "\n")
    engine = create_db_engine(accounts.urls["collector"], connect_args={"local_infile": True})
    try:
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(f"LOAD DATA LOCAL INFILE '{row}' INTO TABLE alarms"))
    finally:
        engine.dispose()
    with accounts.engine("root").connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM alarms WHERE acknowledged_by = 'alice'")).scalar_one() == 0
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert "--local-infile=0" in compose["services"]["mariadb"]["command"]
