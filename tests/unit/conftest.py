"""Fixtures shared by the unit tests of the web layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask_socketio import SocketIOTestClient


@pytest.fixture
def clients() -> Iterator[list[SocketIOTestClient]]:
    """Every Socket.IO test client a test opens (append it here), disconnected at the end."""
    opened: list[SocketIOTestClient] = []
    yield opened
    for client in opened:
        if client.is_connected():
            client.disconnect()
