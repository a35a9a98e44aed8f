from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plantmodel.layout import PlantLayout
from tests.processes import STARTED, Service
from tests.servers import MariaDBServer, MosquittoServer


@pytest.fixture(scope="session", autouse=True)
def _no_service_left_behind() -> Iterator[None]:
    yield
    for service in STARTED:
        service.kill()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str, list[str], dict[str, str]], Service]]:
    """Start ``python -m <args>`` as a service; whatever is still running is killed at teardown,
    even when the test failed."""
    started: list[Service] = []

    def _spawn(name: str, args: list[str], env: dict[str, str]) -> Service:
        service = Service(name, args, env, tmp_path)
        started.append(service)
        return service

    yield _spawn
    for service in started:
        service.kill()


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

