"""The metrics of a service's MQTT connection, shared by the bridge and the web UI."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class MqttLinkMetrics:
    """``<prefix>_mqtt_connected`` (1 while connected) and ``<prefix>_mqtt_reconnects_total``
    (connections after the first one: the first connect is not a reconnect)."""

    def __init__(self, registry: CollectorRegistry, prefix: str, who: str) -> None:
        self.connected_gauge = Gauge(f"{prefix}_mqtt_connected", f"1 while {who} is connected to the broker, else 0",
                                     registry=registry)
        self.reconnects_total = Counter(f"{prefix}_mqtt_reconnects_total",
                                        f"Connections of {who} to the broker after the first one", registry=registry)
        self._was_connected = False

    def connected(self) -> None:
        """The broker accepted a connection (paho's on_connect without failure)."""
        if self._was_connected:
            self.reconnects_total.inc()
        self._was_connected = True
        self.connected_gauge.set(1)

    def disconnected(self) -> None:
        self.connected_gauge.set(0)
