"""The bridge's own metrics, in the Prometheus text format.

:class:`BridgeMetrics` owns its :class:`~prometheus_client.CollectorRegistry` (never the library's
global one): two bridges, or a test's many, in one process never share or collide on a metric.
The service calls its small methods where it already counts (``Bridge._count`` and friends);
:meth:`BridgeMetrics.serve` exposes the registry over HTTP on ``BRIDGE_METRICS_HOST``:
``BRIDGE_METRICS_PORT``. That endpoint has no authentication, hence loopback by default.

Label values are bounded: a rejection's free-text reason (it names fields, values, topics) is
mapped by :func:`reason_label` to one of :data:`REASONS`, or every new payload would be a new
time series.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from plantmodel.linkmetrics import MqttLinkMetrics

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The bounded label values, in the order the README's table lists them.
REASONS = ("malformed", "out_of_range", "future", "conflict", "topic", "database", "rpc", "other")
ROW_KINDS = ("reading", "power_sample")
ALARM_STATES = ("active", "cleared")

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
COMMIT_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INGEST_AGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_NUMBER = r"[-+0-9.eE]+"  # how a refused number is written in a reason (never quoted, no spaces)

# Reason texts as the model and the bridge write them (plantmodel/*.py, bridge/processor.py,
# bridge.service.database_reason). Anchored at the start: the reasons quote payload and topic
# text, and a payload saying "is absurd" must not move its rejection to another label. The first
# match wins, so the prefixes the bridge adds ("the database refused it:", "not stored:") come first.
_REASON_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern)) for label, pattern in (
        ("database", r"the database refused it: "),
        ("rpc", r"not stored: "),
        ("future", r"timestamp \S+ is in the future"),
        ("conflict", r"conflicts with the stored "),
        ("topic", r"unknown topic "),
        ("topic", r"payload is for unit -?\d+ automate -?\d+ but was published on "),
        ("topic", r"no such automate: "),  # a topic's automate number above the model's range
        ("topic", r"invalid meter id "),
        ("out_of_range", rf"(field '[^']*'|\w+) = {_NUMBER} is (absurd|below|above) "),
        ("out_of_range", rf"field '[^']*' = {_NUMBER} does not fit its column"),
        ("out_of_range", rf"(unit|automate) {_NUMBER} out of range "),
        ("out_of_range", r"field '[^']*' year -?\d+ is not plausible"),
        ("out_of_range", rf"device timestamp {_NUMBER} is not plausible"),
        ("out_of_range", r"seq \d+ jumps more than "),
        ("malformed", r"[\w ]+ is not (UTF-8|valid JSON)"),
        ("malformed", r"[\w ]+ must be a JSON object"),
        ("malformed", r"\S+ is not a number \(JSON has no NaN"),
        ("malformed", r"missing field "),
        ("malformed", r"field '[^']*'( must be | is not a finite number|: | = .* must look like )"),
        ("malformed", r"(Shelly |unexpected Shelly method |RPC request without |RPC 'params' )"),
        ("malformed", r"(online payload|params\.\S+|switch field '[^']*') must be "),
    ))


def reason_label(reason: str) -> str:
    """The bounded label (one of :data:`REASONS`) of a rejection's free-text reason."""
    for label, pattern in _REASON_PATTERNS:
        if pattern.match(reason):
            return label
    return "other"


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running metrics endpoint: where it listens (``port`` is the bound one, also when 0 was
    asked for) and how to stop it."""

    host: str
    port: int
    httpd: WSGIServer
    thread: threading.Thread

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()  # returns once serve_forever has left its loop
        self.httpd.server_close()
        self.thread.join(timeout)


class BridgeMetrics:
    """Every metric of one bridge, in ``registry`` (a new one unless given).

    ``queue_depth`` and ``active_alarms`` are read at each scrape (the queue and the alarm engine
    already know the current value; no one has to keep a copy up to date). They may also be given
    later with :meth:`track_queue_depth` / :meth:`track_active_alarms`; until then they read 0.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 queue_depth: Callable[[], float] | None = None,
                 active_alarms: Callable[[], float] | None = None,
                 mqtt_user: str | None = None, share_group: str | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages_received_total = Counter(
            "bridge_messages_received_total", "MQTT messages the bridge handled (committed in a batch)", registry=r)
        self.rows_stored_total = Counter(
            "bridge_rows_stored_total", "Rows written: readings of the units, power samples of the meters",
            ["kind"], registry=r)
        self.messages_rejected_total = Counter(
            "bridge_messages_rejected_total",
            "Messages recorded in rejected_messages, by reason class (" + ", ".join(REASONS) + ")",
            ["reason"], registry=r)
        self.duplicates_total = Counter(
            "bridge_duplicates_total", "Redelivered messages already stored with the same values (skipped)",
            registry=r)
        self.ignored_total = Counter(
            "bridge_ignored_total", "Valid device messages with nothing to store (e.g. Shelly NotifyEvent)",
            registry=r)
        self.internal_errors_total = Counter(
            "bridge_internal_errors_total",
            "Messages held (not acknowledged) because the bridge's own code failed on them, and worker errors",
            registry=r)
        self.gaps_total = Counter(
            "bridge_gaps_total", "Gaps seen in a unit's seq (readings missing; the unit is asked to resend)",
            registry=r)
        self.lost_readings_total = Counter(
            "bridge_lost_readings_total", "Readings declared lost (a gap that never filled)", registry=r)
        self.alarm_transitions_total = Counter(
            "bridge_alarm_transitions_total", "Alarms raised (active) and cleared", ["state"], registry=r)
        self.counter_resets_total = Counter(
            "bridge_meter_counter_resets_total", "Energy counters of meters that went back (a reboot or "
            "ResetCounters): counted, never negative consumption", registry=r)
        self.db_errors_total = Counter(
            "bridge_db_errors_total", "Transient database failures of a batch (all retried: lock conflicts at once, "
            "an unreachable database with back-off)", registry=r)
        self.mqtt = MqttLinkMetrics(r, "bridge", "the bridge")
        self.batch_size = Histogram(
            "bridge_batch_size", "Messages per committed batch", buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.commit_seconds = Histogram(
            "bridge_commit_seconds", "Time of one batch's transaction (process, write, commit)",
            buckets=COMMIT_SECONDS_BUCKETS, registry=r)
        self.ingest_age_seconds = Histogram(
            "bridge_ingest_age_seconds",
            "Commit time minus the device timestamp of each stored reading (clock skew included; "
            "negative ages count as 0)", buckets=INGEST_AGE_BUCKETS, registry=r)
        self.queue_depth = Gauge(
            "bridge_queue_depth", "Messages received from the broker and waiting for the worker", registry=r)
        self.active_alarms = Gauge("bridge_active_alarms", "Alarms active now", registry=r)
        self.info = Info("bridge", "Who this bridge is on the broker", registry=r)
        # Every label value exists from the start, so a dashboard sees 0 rather than no series.
        for kind in ROW_KINDS:
            self.rows_stored_total.labels(kind)
        for reason in REASONS:
            self.messages_rejected_total.labels(reason)
        for state in ALARM_STATES:
            self.alarm_transitions_total.labels(state)
        self.set_info(mqtt_user or "", share_group)
        if queue_depth is not None:
            self.track_queue_depth(queue_depth)
        if active_alarms is not None:
            self.track_active_alarms(active_alarms)

    # -- wiring ------------------------------------------------------------------------------------
    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def track_active_alarms(self, count: Callable[[], float]) -> None:
        self.active_alarms.set_function(count)

    def set_info(self, mqtt_user: str, share_group: str | None = None) -> None:
        # An Info's labels are all strings: "" says "no shared subscription".
        self.info.info({"mqtt_user": mqtt_user, "share_group": share_group or ""})

    # -- what the service reports -----------------------------------------------------------------
    def received(self, count: int = 1) -> None:
        self.messages_received_total.inc(count)

    def stored(self, readings: int = 0, power_samples: int = 0) -> None:
        self.rows_stored_total.labels("reading").inc(readings)
        self.rows_stored_total.labels("power_sample").inc(power_samples)

    def rejected(self, reason: str) -> str:
        """Count one rejection; returns the label it was counted under."""
        label = reason_label(reason)
        self.messages_rejected_total.labels(label).inc()
        return label

    def duplicates(self, count: int = 1) -> None:
        self.duplicates_total.inc(count)

    def ignored(self, count: int = 1) -> None:
        self.ignored_total.inc(count)

    def internal_error(self, count: int = 1) -> None:
        self.internal_errors_total.inc(count)

    def counter_reset(self, _meter: str) -> None:
        self.counter_resets_total.inc()

    def gaps(self, count: int = 1) -> None:
        self.gaps_total.inc(count)

    def lost(self, readings: int) -> None:
        self.lost_readings_total.inc(readings)

    def alarm_transition(self, state: str) -> None:
        """One alarm event; ``state`` is the alarm's ``"active"`` or ``"cleared"``."""
        if state not in ALARM_STATES:
            raise ValueError(f"unknown alarm state {state!r}; known: {', '.join(ALARM_STATES)}")
        self.alarm_transitions_total.labels(state).inc()

    def db_error(self) -> None:
        self.db_errors_total.inc()

    def mqtt_connected(self) -> None:
        self.mqtt.connected()

    def mqtt_disconnected(self) -> None:
        self.mqtt.disconnected()

    def observe_batch(self, size: int, commit_seconds: float) -> None:
        """One committed batch: its number of messages and the time its transaction took."""
        self.batch_size.observe(size)
        self.commit_seconds.observe(commit_seconds)

    def observe_ages(self, seconds: Iterable[float]) -> None:
        """Publish-to-commit ages of stored readings, in seconds."""
        for age in seconds:
            # A device clock ahead of ours (allowed up to BRIDGE_MAX_FUTURE_SKEW) gives a negative
            # age; a histogram cannot take it in a bucket, and "no delay" is what it means.
            self.ingest_age_seconds.observe(max(age, 0.0))

    def observe_device_times(self, device_ts: Iterable[datetime], committed_at: datetime) -> None:
        """:meth:`observe_ages` from the stored rows' device timestamps and the commit time."""
        self.observe_ages((committed_at - ts).total_seconds() for ts in device_ts)

    # -- endpoint ---------------------------------------------------------------------------------------
    def serve(self, host: str, port: int, wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> MetricsServer:
        """Serve the registry over HTTP (``GET /metrics``, any path) in a daemon thread; ``wrap``
        puts another app in front (the bridge's ``/healthz``, :func:`plantmodel.servicehealth.health_app`).

        ``port`` 0 takes a free port (``.port`` of the result says which); "0 disables the
        endpoint" is the settings' meaning, decided by the caller, which then does not call this.
        Raises :class:`OSError` when the address cannot be bound.
        """
        app = make_wsgi_app(self.registry)
        server_class = type("MetricsHTTPServer", (ThreadingWSGIServer,),
                            {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
        httpd: WSGIServer = make_server(host, port, wrap(app) if wrap else app, server_class,
                                        handler_class=_SilentHandler)
        thread = threading.Thread(target=httpd.serve_forever, name="bridge-metrics", daemon=True)
        thread.start()
        server = MetricsServer(host, httpd.server_port, httpd, thread)
        log.info("metrics on http://%s:%d/metrics", _url_host(host), server.port)
        return server


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
