"""store.db: URLs that cannot work fail at once with one clear line; waiting for a database that
is not up yet retries with back-off and stops on request."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import ProgrammingError

import store.db
import store.migrate
from plantmodel.errors import ValidationError
from stack.__main__ import StackSettings
from store.db import DatabaseUnavailable, connect_database, create_db_engine, init_schema, wait_for_database
from tests.servers import free_port


def test_sqlite_in_a_missing_folder_is_refused_and_nothing_is_created(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError) as err:
        create_db_engine("sqlite:///typo/plant.db")
    message = str(err.value)
    assert f"folder {tmp_path / 'typo'} does not exist" in message  # the absolute folder, not "typo"
    assert "\n" not in message
    assert not (tmp_path / "typo").exists()


def test_sqlite_in_an_existing_folder_and_in_memory_work(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'plant.db'}")
    connect_database(engine)
    assert "readings" in inspect(engine).get_table_names()
    engine.dispose()
    memory = create_db_engine("sqlite:///:memory:")
    connect_database(memory)
    memory.dispose()


@pytest.mark.parametrize(("url", "expected"), [
    ("plant:s3cret@db/plant", "DATABASE_URL is not a database URL"),
    ("mysql+pymsql://plant:s3cret@db/plant", "DATABASE_URL mysql+pymsql://plant:***@db/plant: Can't load plugin"),
])
def test_unusable_urls_are_one_line_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(ValidationError) as err:
        create_db_engine(url)
    assert expected in str(err.value)
    assert "s3cret" not in str(err.value)


def test_stack_default_database_lives_in_its_var_dir(tmp_path: Path) -> None:
    assert StackSettings.from_env({"PLANT_VAR_DIR": str(tmp_path)}).database_url == f"sqlite:///{tmp_path}/plant.db"
    assert StackSettings.from_env({}).database_url == "sqlite:///var/plant.db"  # the demo's, as documented


def unreachable_mariadb() -> str:
    return f"mariadb+pymysql://plant:s3cret@127.0.0.1:{free_port()}/plant?charset=utf8mb4"


def test_connect_once_fails_with_one_line() -> None:
    engine = create_db_engine(unreachable_mariadb())
    with pytest.raises(DatabaseUnavailable) as err:
        connect_database(engine)
    message = str(err.value)
    assert message.startswith("database mariadb+pymysql://plant:***@127.0.0.1:")
    assert "not reachable: OperationalError: (2003," in message
    assert "\n" not in message and "s3cret" not in message


def test_wait_backs_off_logs_each_attempt_and_stops_on_request(caplog: pytest.LogCaptureFixture) -> None:
    engine = create_db_engine(unreachable_mariadb())
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    caplog.set_level(logging.INFO, logger="store.db")
    started = time.monotonic()
    assert wait_for_database(engine, stop=stop, first_delay=0.05, max_delay=0.2) is False
    assert time.monotonic() - started < 1.5  # returns promptly once stop is set
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 5
    assert all("not reachable (OperationalError: (2003," in line for line in lines)
    assert all("s3cret" not in line and "***" in line for line in lines)
    delays = [line.rsplit("retrying in ", 1)[1] for line in lines]
    assert delays[:5] == ["0.05 s", "0.1 s", "0.2 s", "0.2 s", "0.2 s"]  # doubling, capped


def test_a_stop_request_ends_a_long_back_off_at_once() -> None:
    engine = create_db_engine(unreachable_mariadb())
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert wait_for_database(engine, stop=stop, first_delay=10) is False
    assert time.monotonic() - started < 2


def test_wait_returns_at_once_when_the_database_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="store.db")
    engine = create_db_engine(f"sqlite:///{tmp_path / 'plant.db'}")
    assert wait_for_database(engine) is True
    assert "thresholds" in inspect(engine).get_table_names()
    assert [r.levelname for r in caplog.records] == ["INFO"]  # "reachable", no retry line


def test_wait_does_not_retry_other_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_engine: object) -> None:
        raise ProgrammingError("CREATE TABLE", {}, Exception("syntax error"))

    monkeypatch.setattr(store.db, "init_schema", broken)
    engine = create_db_engine(f"sqlite:///{tmp_path / 'plant.db'}")
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()  # bounded even if it wrongly retried
    with pytest.raises(ProgrammingError):
        wait_for_database(engine, stop=stop, first_delay=0.01)


def test_a_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds password and token hashes: no 0644 file for every local user."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'plant.db'}")
    init_schema(engine)
    with engine.connect() as conn:  # open: the WAL files exist while a connection does
        conn.exec_driver_sql("SELECT count(*) FROM users")
        names = ("plant.db", "plant.db-wal", "plant.db-shm")
        modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in names}
    engine.dispose()
    assert modes == {"plant.db": 0o600, "plant.db-wal": 0o600, "plant.db-shm": 0o600}
