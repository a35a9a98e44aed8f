"""What one app instance shares between its views, Socket.IO handlers and live feed. It lives in
``app.extensions``, not in module globals, so two apps in one process never interfere."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from flask_socketio import SocketIO
from sqlalchemy.orm import Session, sessionmaker

from webui.live import LiveFeed
from webui.metrics import WebMetrics
from webui.settings import WebSettings
from webui.switching import Switcher

EXTENSION = "webui"


@dataclass(frozen=True, slots=True)
class WebState:
    settings: WebSettings
    make_session: sessionmaker[Session]
    socketio: SocketIO
    feed: LiveFeed
    metrics: WebMetrics  # this app's own registry, served at /metrics
    switcher: Switcher  # remote switching of the meters (a listener of ``feed``)


def web_state(app: Flask | None = None) -> WebState:
    """The state of ``app`` (default: the app handling the current request)."""
    return (app or current_app).extensions[EXTENSION]
