"""Several identical containers of one service (``docker compose up --scale bridge=N``, ``webui=N``)
each need their own MQTT user: the broker takes the user name as the client id, and two clients
with one id keep disconnecting each other. With ``BRIDGE_CLAIM_USER=1`` (``WEBUI_CLAIM_USER=1``) a
process takes the first user of its role in its credentials file (``bridge``, ``bridge-2``, …) that
no running process holds, and holds it with a MariaDB named lock (``GET_LOCK``) on a connection of
its own for its whole life. The lock goes with the connection: a SIGKILLed process frees its user at
once, and one whose lock connection is lost must stop (another may take its user), which
:meth:`UserClaim.held` tells.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from plantmodel.envconf import env_path
from plantmodel.errors import PlantModelError, ValidationError
from plantmodel.mqtt import DEFAULT_CREDENTIALS_FILE, load_credentials

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0  # how often a process that claimed its MQTT user checks it still holds it (held())


def role_users(users: Iterable[str], base: str) -> list[str]:
    """The users of one role among ``users``, in their order: ``base``, ``base``-2, ``base``-3…"""
    pattern = re.compile(rf"{re.escape(base)}(?:-([1-9][0-9]*))?")
    found = [(int(m.group(1) or 1), u) for u in users if (m := pattern.fullmatch(u))]
    return [u for _, u in sorted(found)]


def claim_candidates(env: Mapping[str, str], setting: str, base: str) -> tuple[tuple[str, str], ...]:
    """``setting`` (``BRIDGE_CLAIM_USER``, ``WEBUI_CLAIM_USER``): 0 (default) or 1; with 1, (user,
    password) of each ``base`` user of ``MQTT_CREDENTIALS_FILE``, one of which the process claims."""
    flag = env.get(setting, "").strip() or "0"
    if flag not in ("0", "1"):
        raise ValidationError(f"{setting}={flag!r}: write 0 or 1")
    if flag == "0":
        return ()
    if env.get("MQTT_PASSWORD", "").strip() or env.get("MQTT_USERNAME", "").strip():
        raise ValidationError(f"{setting}=1 takes the user and password from MQTT_CREDENTIALS_FILE; "
                              "unset MQTT_USERNAME and MQTT_PASSWORD")
    creds = load_credentials(env_path(env, "MQTT_CREDENTIALS_FILE", DEFAULT_CREDENTIALS_FILE))
    users = role_users(creds, base)
    if not users:
        raise ValidationError(f"{setting}=1: MQTT_CREDENTIALS_FILE holds no {base} user ({base}, {base}-2, …)")
    return tuple((u, creds[u]) for u in users)


def lock_name(database: str, user: str) -> str:
    # MariaDB named locks are server-wide: the database's name keeps two plants on one server apart.
    # At most 64 characters.
    return f"plant:{database[:40]}:mqtt-user:{user}"[:64]


class UserClaim:
    """Claim one of ``candidates`` ((user, password), as :func:`claim_candidates` gives them) on
    ``engine``'s server; ``user`` is the one held."""

    def __init__(self, engine: Engine, candidates: tuple[tuple[str, str], ...],
                 setting: str = "BRIDGE_CLAIM_USER") -> None:
        if engine.dialect.name not in ("mysql", "mariadb"):
            raise PlantModelError(f"{setting} needs MariaDB (it holds the user with a named lock); with SQLite "
                                  "run one process, or set MQTT_USERNAME per process")
        if not candidates:
            raise PlantModelError(f"{setting}: no MQTT user to claim")
        self._setting = setting
        self._engine = engine
        self._passwords = dict(candidates)
        self._conn: Connection | None = None
        self._name = ""
        self.user = ""

    def acquire(self) -> tuple[str, str]:
        """Take the first free user: (user, password); :class:`PlantModelError` when every one is held."""
        conn = self._engine.connect()
        # The server frees a lock with its session: when this host dies with its connection (no
        # FIN), after a minute of silence rather than MariaDB's default 8 hours. held() talks every
        # few seconds, so a live holder never reaches it.
        conn.execute(text("SET SESSION wait_timeout = 60"))
        database = conn.scalar(text("SELECT DATABASE()")) or ""
        for user in self._passwords:
            name = lock_name(str(database), user)
            if conn.scalar(text("SELECT GET_LOCK(:name, 0)"), {"name": name}) == 1:
                conn.commit()  # nothing to keep; the lock belongs to the session, not a transaction
                self._conn, self._name, self.user = conn, name, user
                log.info("claimed MQTT user %s (%d candidates in the credentials file)", user, len(self._passwords))
                return user, self._passwords[user]
        conn.close()
        raise PlantModelError(f"{self._setting}: every user is held by a running process "
                              f"({', '.join(self._passwords)}); raise BROKER_BRIDGES / BROKER_WEBUIS and "
                              "regenerate the credentials to run more")

    def held(self) -> bool:
        """Whether our connection still holds the lock (False once the connection is lost)."""
        if self._conn is None:
            return False
        try:
            ours = self._conn.scalar(text("SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"), {"name": self._name})
            self._conn.commit()
        except SQLAlchemyError as exc:
            log.error("lost the connection that holds MQTT user %s: %s", self.user, exc.__class__.__name__)
            return False
        return ours == 1

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self._name})
            self._conn.close()
        except SQLAlchemyError:
            pass  # the server frees it with the connection anyway
        self._conn = None
