"""MQTT connection settings and the client factory every service uses.

This is the one module of the model that touches paho-mqtt: it fixes the choices every client
must share (protocol, callback API version 2, reconnect back-off, bounded queues).
"""

from __future__ import annotations

import json
import logging
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from plantmodel.envconf import env_int, env_path, env_str
from plantmodel.errors import ValidationError
from plantmodel.placeholders import refuse_placeholder

log = logging.getLogger(__name__)

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_CREDENTIALS_FILE = Path("var/secrets/credentials.json")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str = ""
    password: str = ""
    keepalive: int = 30
    tls: bool = False
    # CA that signed the broker's certificate; None = the system's trust store (a public CA).
    ca_file: Path | None = None

    @classmethod
    def link_from_env(cls, env: Mapping[str, str]) -> MqttSettings:
        """Where and how to reach the broker, without a user: ``MQTT_HOST`` (127.0.0.1),
        ``MQTT_TLS`` (0; 1 = TLS with the broker's certificate and host name verified),
        ``MQTT_PORT`` (1883, or 8883 with TLS), ``MQTT_CA_FILE`` (the CA to trust; default: the
        system's)."""
        tls_raw = env.get("MQTT_TLS", "").strip() or "0"
        if tls_raw not in ("0", "1"):
            raise ValidationError(f"MQTT_TLS={tls_raw!r} must be 0 or 1")
        tls = tls_raw == "1"
        ca_raw = env.get("MQTT_CA_FILE", "").strip()
        ca_file = Path(ca_raw) if ca_raw else None
        if ca_file is not None:
            if not tls:
                raise ValidationError("MQTT_CA_FILE is set but MQTT_TLS is not 1: set MQTT_TLS=1 "
                                      "(and the broker's TLS port) or remove MQTT_CA_FILE")
            _check_ca_file(ca_file)
        return cls(
            host=env_str(env, "MQTT_HOST", "127.0.0.1"),
            port=env_int(env, "MQTT_PORT", DEFAULT_TLS_PORT if tls else DEFAULT_PORT, minimum=1),
            tls=tls,
            ca_file=ca_file,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, default_user: str) -> MqttSettings:
        """:meth:`link_from_env` plus ``MQTT_USERNAME`` and ``MQTT_PASSWORD``; when no password is
        given, it is looked up for the user in ``MQTT_CREDENTIALS_FILE`` (written by
        ``python -m broker credentials``)."""
        username = env_str(env, "MQTT_USERNAME", default_user)
        password = refuse_placeholder("MQTT_PASSWORD", env.get("MQTT_PASSWORD", ""))
        if not password:
            creds = env_path(env, "MQTT_CREDENTIALS_FILE", DEFAULT_CREDENTIALS_FILE)
            password = load_credentials(creds).get(username, "")
        return replace(cls.link_from_env(env), username=username, password=password)

    def with_user(self, username: str, password: str) -> MqttSettings:
        return replace(self, username=username, password=password)

    def describe(self) -> str:
        """``mqtts://host:port`` or ``mqtt://host:port``, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def _check_ca_file(path: Path) -> None:
    """Fail at start, with the path, rather than at each reconnect with an OpenSSL message."""
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        raise ValidationError(f"MQTT_CA_FILE {path} does not exist (the broker's CA certificate, "
                              "e.g. var/secrets/tls/ca.crt written by `python -m broker certs`)") from None
    except (OSError, ssl.SSLError) as exc:
        raise ValidationError(f"MQTT_CA_FILE {path} is not a readable PEM certificate: {exc}") from None


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """TLS 1.2 or newer, the broker's certificate checked against the CA and the host name."""
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def load_credentials(path: Path) -> dict[str, str]:
    """user -> password from the generated credentials file ({} when it does not exist)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"cannot read credentials file {path}: {exc}") from None
    users = data.get("users", {}) if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise ValidationError(f"credentials file {path} has no \"users\" object (regenerate it with "
                              "`python -m broker credentials`)")
    return {u: p for u, p in users.items() if isinstance(u, str) and isinstance(p, str)}


def new_client(
    settings: MqttSettings,
    client_id: str,
    *,
    clean_session: bool = True,
    manual_ack: bool = False,
    max_inflight: int = 20,
    max_queued: int = 1000,
) -> mqtt.Client:
    """A configured (not yet connected) paho client: MQTT 3.1.1, callback API v2, bounded queues
    (an unbounded QoS 1 queue collapses throughput), reconnect back-off 1..30 s."""
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set_context(tls_context(settings))
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(max_queued)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect_async(client: mqtt.Client, settings: MqttSettings) -> None:
    """Start connecting in the background; paho's loop keeps reconnecting after failures, so a
    service started before the broker simply waits for it. Failures are logged with their cause
    unless the caller installed its own ``on_connect_fail``."""
    if client.on_connect_fail is None:
        client.on_connect_fail = _ConnectFailLog(settings)
    client.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
    client.loop_start()


def connect_failure() -> str:
    """Why the connection attempt failed (refused, unreachable, certificate not trusted...).
    Valid inside an ``on_connect_fail`` callback: paho calls it while handling the error."""
    exc = sys.exc_info()[1]
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"


class _ConnectFailLog:
    """A warning for each new cause (say, the certificate after the network), repeated every
    5 minutes while it lasts; the attempts in between (paho retries every 1..30 s) at debug."""

    REPEAT_S = 300.0

    def __init__(self, settings: MqttSettings) -> None:
        self._settings = settings
        self._last = ""
        self._warned_at = 0.0

    def __call__(self, client: mqtt.Client, userdata: Any) -> None:
        cause = connect_failure()
        now = time.monotonic()
        repeat = cause == self._last and now - self._warned_at < self.REPEAT_S
        if not repeat:
            self._warned_at = now
        log.log(logging.DEBUG if repeat else logging.WARNING, "cannot connect to the broker %s as %r (%s); "
                "retrying", self._settings.describe(), self._settings.username, cause)
        self._last = cause
