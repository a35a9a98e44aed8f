"""The web UI's own metrics, served at ``GET /metrics`` in the Prometheus text format.

Each app owns one :class:`WebMetrics` with its own :class:`~prometheus_client.CollectorRegistry`
(never the library's global one), kept in the app's :class:`~webui.state.WebState`: two apps in one
process (the tests make many) count separately. The live feed and the Socket.IO handlers call its
small methods where things happen; :func:`install` adds the route and the HTTP status hook.

``/metrics`` is protected like the REST API: a session log-in or ``Authorization: Bearer <token>``
(the scraper uses a user's API token); without one it answers 401, never the metrics.

Label values are bounded: Socket.IO events by name from :data:`PUSH_EVENTS` (anything else counts
as ``other``), HTTP answers by status class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from plantmodel.linkmetrics import MqttLinkMetrics
from webui.auth import api_style

log = logging.getLogger(__name__)

# Every event the server emits (webui.sockets: hello; webui.push: update; webui.live: alarm).
PUSH_EVENTS = ("hello", "update", "alarm")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
METRICS_PATH = "/metrics"


def status_class(status: int) -> str:
    """``404`` -> ``"4xx"``; a code outside 100..599 (none should exist) -> ``"other"``."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class WebMetrics:
    """Every metric of one web UI app, in ``registry`` (a new one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.socket_connections = Gauge(
            "webui_socket_connections", "Socket.IO clients connected now (logged-in browsers and scripts)",
            registry=r)
        self.socket_connects_total = Counter(
            "webui_socket_connects_total", "Socket.IO connections accepted", registry=r)
        self.socket_refused_total = Counter(
            "webui_socket_refused_total", "Socket.IO connections refused (no valid log-in or token, database down)",
            registry=r)
        self.pushes_total = Counter(
            "webui_pushes_total",
            "Socket.IO emits by event name (" + ", ".join(PUSH_EVENTS) + ", other); one per room or client sent to",
            ["event"], registry=r)
        self.mqtt = MqttLinkMetrics(r, "webui", "the live feed")
        self.mqtt_messages_total = Counter(
            "webui_mqtt_messages_total", "MQTT messages the live feed handled (skipped invalid ones included)",
            registry=r)
        self.http_requests_total = Counter(
            "webui_http_requests_total", "HTTP requests answered by the app, by status class (2xx, 4xx, ...)",
            ["status"], registry=r)
        # Every label value exists from the start, so a dashboard sees 0 rather than no series.
        for event in (*PUSH_EVENTS, "other"):
            self.pushes_total.labels(event)
        for cls in STATUS_CLASSES:
            self.http_requests_total.labels(cls)

    def socket_connected(self) -> None:
        self.socket_connects_total.inc()
        self.socket_connections.inc()

    def socket_disconnected(self) -> None:
        self.socket_connections.dec()

    def socket_refused(self) -> None:
        self.socket_refused_total.inc()

    def pushed(self, event: str) -> None:
        self.pushes_total.labels(event if event in PUSH_EVENTS else "other").inc()

    def mqtt_message(self) -> None:
        self.mqtt_messages_total.inc()

    def mqtt_connected(self) -> None:
        self.mqtt.connected()

    def mqtt_disconnected(self) -> None:
        self.mqtt.disconnected()

    def http_response(self, status: int) -> None:
        self.http_requests_total.labels(status_class(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def install(app: Flask, metrics: WebMetrics) -> None:
    """``GET /metrics`` for ``app`` and the hook that counts its HTTP answers.

    The route is an ordinary endpoint, so :mod:`webui.auth`'s default deny guards it; marked
    :func:`~webui.auth.api_style`, it answers 401 (not the log-in page's redirect) to a scraper
    without a valid token.
    """

    @api_style
    def serve_metrics() -> Response:
        return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule(METRICS_PATH, "metrics", serve_metrics, methods=["GET"])
    app.after_request(_counter(metrics))


def _counter(metrics: WebMetrics) -> Callable[[Response], Response]:
    # after_request also sees the answers of error handlers (404, 500, the 401 of the auth hook).
    # Socket.IO's own HTTP traffic never reaches Flask's hooks, so it is not counted here.
    def count(response: Response) -> Response:
        metrics.http_response(response.status_code)
        return response

    return count
