"""The plant's web dashboard: Flask + Flask-SocketIO, fed by the database and live MQTT.

``create_app(settings)`` builds an app; its Socket.IO server is ``app.extensions["socketio"]``,
its live feed ``web_state(app).feed`` and its metrics (``GET /metrics``) ``web_state(app).metrics``.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from flask.json.provider import DefaultJSONProvider
from flask_socketio import SocketIO
from sqlalchemy import orm
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix

from plantmodel.i18n import N_
from plantmodel.topics import Topics
from store.db import create_db_engine, make_sessionmaker
from webui import api, auth, i18n, ingest, login, metrics, ratelimit, reports, security, sockets, views
from webui.api import switch as _switch_routes  # noqa: F401  (its routes join api.bp before install)
from webui.live import LiveFeed
from webui.metrics import WebMetrics
from webui.settings import WebSettings
from webui.state import EXTENSION, WebState, web_state
from webui.switching import Switcher

log = logging.getLogger(__name__)

__all__ = ["WebSettings", "WebState", "create_app", "web_state"]


def create_app(settings: WebSettings, *, sessionmaker: orm.sessionmaker[orm.Session] | None = None) -> Flask:
    """Build the app. Without ``sessionmaker`` an engine is created for ``settings.database_url``;
    Nothing starts here (no thread, no connection): the server that serves the app starts its live
    feed, ``web_state(app).feed.start()``; tests without a broker call its ``handle`` directly."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.secret_key
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # keep the model's measure order (tank temperature first, ...)
    if sessionmaker is None:
        sessionmaker = make_sessionmaker(create_db_engine(settings.database_url))
    # threading mode: eventlet is unmaintained; simple-websocket gives Werkzeug WebSockets.
    socketio = SocketIO(app, async_mode="threading")
    if settings.trusted_proxies:  # behind nginx: the client's address and scheme from its headers
        n = settings.trusted_proxies  # outermost, so Socket.IO's own middleware sees them too
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    web_metrics = WebMetrics()  # per app, never prometheus_client's global registry
    feed = LiveFeed(settings.mqtt, Topics(settings.topic_root), socketio, sessionmaker,
                    push_interval=settings.push_interval, metrics=web_metrics,
                    stall_after=3 * settings.report_period)  # "bridge stuck": 3 periods with nothing stored
    switcher = Switcher(feed.publish, timeout=settings.switch_timeout)
    feed.listeners.append(switcher.handle)  # the meters' answers to remote switching
    app.extensions[EXTENSION] = WebState(settings, sessionmaker, socketio, feed, web_metrics, switcher)

    i18n.install(app)  # each request's language: the user's, else the browser's, else the plant's
    app.register_blueprint(login.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(reports.bp)  # /reports/shift
    api.install(app)
    metrics.install(app, web_metrics)
    auth.install(app)  # after every blueprint: it marks the static route public
    security.install(app, https=settings.https)
    limiter = ratelimit.install(app, per_user=settings.login_limit_user, per_address=settings.login_limit_address)
    ingest.install(app, limiter)  # legacy HTTP senders (/collector/info, /webhook/), rate-limited
    app.register_error_handler(SQLAlchemyError, _database_unavailable)
    sockets.register(socketio, web_state(app))
    return app


def _database_unavailable(exc: SQLAlchemyError) -> tuple[Response, int]:
    log.warning("database unavailable: %s", exc)
    return jsonify(error=api.gettext_anyway(N_("database unavailable"))), 503
