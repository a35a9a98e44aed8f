from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plantmodel.layout import PlantLayout
from tests.servers import MariaDBServer, MosquittoServer


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """One broker for the session, started from our mosquitto.conf with generated users/ACL."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"), PlantLayout())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["mariadb", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: MariaDB (the production target) and SQLite (the embedded default)."""
    if request.param == "mariadb":
        return request.getfixturevalue("mariadb").create_database()
    return f"sqlite:///{tmp_path / 'plant.db'}"
