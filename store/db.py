"""Engine and session creation. ``DATABASE_URL`` picks the database; the default is a SQLite file
in the git-ignored ``var/`` folder."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store.models import Base

log = logging.getLogger(__name__)

DEFAULT_SQLITE_PATH = Path("var/plant.db")


def database_url_from_env(env: Mapping[str, str]) -> str:
    url = env.get("DATABASE_URL", "").strip()
    return url or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for MariaDB (``mariadb+pymysql://…``) or SQLite (``sqlite:///path``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)  # survive a MariaDB restart / idle timeout
    kwargs.setdefault("pool_recycle", 3600)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: the web UI reads while the bridge writes; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def init_schema(engine: Engine) -> None:
    """Create missing tables (a no-op on a database built from ``schema.sql``)."""
    Base.metadata.create_all(engine)


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
