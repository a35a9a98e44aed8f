"""DATABASE_FAILOVER_HOSTS (store/db.py): the host list is parsed strictly, and a new connection
tries the URL's host, then each failover host, skipping the ones that refuse, time out or are Galera
nodes not ready for clients. The cluster itself: tests/integration/test_galera.py (opt-in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.settings import BridgeSettings
from plantmodel.errors import ValidationError
from store.db import (
    FAILOVER_CONNECT_TIMEOUT_S,
    connect_in_order,
    create_db_engine,
    failover_hosts_from_env,
    parse_failover_hosts,
)

URL = "mariadb+pymysql://plant:pw@db1:3307/plant?charset=utf8mb4"


@pytest.mark.parametrize(("text", "hosts"), [
    ("", ()),
    ("   ", ()),
    ("db2", (("db2", 3306),)),
    ("127.0.0.1:3308,127.0.0.1:3309", (("127.0.0.1", 3308), ("127.0.0.1", 3309))),
    (" db2:3306 , db3.plant.local:3307 ", (("db2", 3306), ("db3.plant.local", 3307))),
    ("[::1]:3308,[fd00::3]", (("::1", 3308), ("fd00::3", 3306))),
])
def test_host_lists_are_parsed_in_order(text: str, hosts: tuple[tuple[str, int], ...]) -> None:
    assert parse_failover_hosts(text) == hosts


@pytest.mark.parametrize("text", [
    "db2,",  # an empty item
    ",db2",
    "db2:",  # no port after the colon
    "db2:0",
    "db2:65536",
    "db2:33o6",
    "db2:³",  # a digit to str.isdigit, not to int()
    "mariadb+pymysql://u:p@db2:3306/plant",  # a URL, not a host
    "u:p@db2:3306",
    "db2/plant",
    "db 2",
    "::1:3308",  # IPv6 without brackets
    "[::1]x",
    "db2:3306,db2:3306",  # named twice
    "-db2",
])
def test_bad_host_lists_are_refused_with_the_setting_named(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_failover_hosts(text)
    assert "DATABASE_FAILOVER_HOSTS" in str(err.value)


def test_the_bridge_reads_the_setting_with_the_url() -> None:
    env = {"DATABASE_URL": URL, "DATABASE_FAILOVER_HOSTS": "db2:3308,db3:3309"}
    settings = BridgeSettings.from_env(env)
    assert settings.database_url == URL
    assert settings.database_failover_hosts == (("db2", 3308), ("db3", 3309))
    assert BridgeSettings.from_env({"DATABASE_URL": URL}).database_failover_hosts == ()
    assert failover_hosts_from_env({}) == ()
    with pytest.raises(ValidationError):
        BridgeSettings.from_env({**env, "DATABASE_FAILOVER_HOSTS": "db2:x"})


def test_failover_needs_a_mariadb_url_with_a_host(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="MariaDB"):
        create_db_engine(f"sqlite:///{tmp_path / 'plant.db'}", failover_hosts=(("db2", 3306),))
    with pytest.raises(ValidationError, match="unix_socket"):
        create_db_engine("mariadb+pymysql://root@localhost/plant?unix_socket=/run/mysqld.sock",
                         failover_hosts=(("db2", 3306),))
    create_db_engine(URL, failover_hosts=(("db2", 3306),)).dispose()  # lazy: nothing is connected


class FakeError(Exception):
    pass


@dataclass
class FakeConn:
    host: str
    ready: str | None  # wsrep_ready; None: not a Galera node
    closed: bool = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeCursor:
    conn: FakeConn

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def execute(self, sql: str) -> None:
        assert sql == "SHOW STATUS LIKE 'wsrep_ready'"

    def fetchone(self) -> tuple[str, str] | None:
        return None if self.conn.ready is None else ("wsrep_ready", self.conn.ready)


@dataclass
class FakeDBAPI:
    """A DB-API module: ``down`` hosts refuse, ``ready`` maps a host to its wsrep_ready."""

    down: set[str] = field(default_factory=set)
    ready: dict[str, str | None] = field(default_factory=dict)
    tried: list[tuple[str, int, Any]] = field(default_factory=list)
    opened: list[FakeConn] = field(default_factory=list)
    OperationalError: type[Exception] = FakeError

    def connect(self, **params: Any) -> FakeConn:
        self.tried.append((params["host"], params["port"], params["connect_timeout"]))
        if params["host"] in self.down:
            raise FakeError(2003, f"Can't connect to MySQL server on '{params['host']}'")
        conn = FakeConn(params["host"], self.ready.get(params["host"]))
        self.opened.append(conn)
        return conn


HOSTS = (("db1", 3307), ("db2", 3308), ("db3", 3309))


def test_the_first_host_that_answers_is_used_in_order() -> None:
    dbapi = FakeDBAPI(down={"db1"})
    conn = connect_in_order(dbapi, (), {"user": "plant"}, HOSTS)
    assert conn.host == "db2"
    assert [t[:2] for t in dbapi.tried] == [("db1", 3307), ("db2", 3308)]
    # A short connect timeout per host unless the URL set one.
    assert {t[2] for t in dbapi.tried} == {FAILOVER_CONNECT_TIMEOUT_S}
    dbapi = FakeDBAPI()
    assert connect_in_order(dbapi, (), {"connect_timeout": 10}, HOSTS).host == "db1"
    assert dbapi.tried == [("db1", 3307, 10)]


def test_a_galera_node_not_ready_is_skipped_and_closed() -> None:
    dbapi = FakeDBAPI(ready={"db1": "OFF", "db2": "ON"})
    assert connect_in_order(dbapi, (), {}, HOSTS).host == "db2"
    assert dbapi.opened[0].host == "db1" and dbapi.opened[0].closed
    assert not dbapi.opened[1].closed


def test_when_no_host_will_do_the_last_error_is_raised() -> None:
    dbapi = FakeDBAPI(down={"db1", "db3"}, ready={"db2": "OFF"})
    with pytest.raises(FakeError) as err:
        connect_in_order(dbapi, (), {}, HOSTS)
    assert "db3" in str(err.value)
    dbapi = FakeDBAPI(down={"db1", "db2"}, ready={"db3": "OFF"})
    with pytest.raises(FakeError) as err:
        connect_in_order(dbapi, (), {}, HOSTS)
    assert err.value.args[0] == 1047 and "wsrep_ready OFF" in str(err.value)


def test_a_galera_node_out_of_the_cluster_counts_as_a_disconnect() -> None:
    """1047 from a node cut off the cluster: the pool must drop that connection (else every retry
    reuses it on that node), while other errors keep SQLAlchemy's own judgement."""
    import pymysql

    from store.db import galera_not_ready_is_a_disconnect

    class Context:
        def __init__(self, exc: Exception) -> None:
            self.original_exception = exc
            self.is_disconnect = False

    cut_off = Context(pymysql.err.OperationalError(1047, "WSREP has not yet prepared node for application use"))
    galera_not_ready_is_a_disconnect(cut_off)
    assert cut_off.is_disconnect is True
    conflict = Context(pymysql.err.OperationalError(1213, "Deadlock found"))
    galera_not_ready_is_a_disconnect(conflict)
    assert conflict.is_disconnect is False
