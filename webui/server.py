"""The production server of the web UI: gunicorn, one process, the ``gthread`` worker.

Flask-SocketIO in threading mode (eventlet is unmaintained) keeps one thread per WebSocket: the
worker's thread pool (``WEBUI_THREADS``) bounds the dashboards a process serves. One worker per
process: Socket.IO's rooms live in memory. Several processes sit behind nginx, each with its own MQTT
connection; browsers hold one WebSocket each, so no sticky sessions are needed (README). The app
is built in the worker, after the fork, and the live feed (MQTT, push thread) started there: a forked
MQTT connection would be shared by two processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from webui.state import web_state

log = logging.getLogger(__name__)


class WebServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn serving the app ``make_app()`` builds in its worker."""

    def __init__(self, make_app: Callable[[], Flask], *, host: str, port: int, threads: int) -> None:
        self._make_app = make_app
        self._app: Flask | None = None
        self._options: dict[str, Any] = {
            "bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread", "threads": threads,
            # A WebSocket holds its thread for hours: the worker's heartbeat is its main loop's, not a
            # request's, so a long connection is not a hung worker.
            "timeout": 60, "graceful_timeout": 10, "keepalive": 5,
            "accesslog": None, "errorlog": "-", "loglevel": "info",
            "worker_exit": self._worker_exit,
            # gunicorn 27's control socket lives in $HOME: two web UIs on one host would share it.
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings:  # control_socket_disable: gunicorn >= 27 only
                self.cfg.set(key, value)

    def load(self) -> Flask:
        self._app = self._make_app()
        web_state(self._app).feed.start()  # in the worker, after the fork
        return self._app

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._app is not None:
            web_state(self._app).feed.stop()
