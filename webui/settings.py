"""The web UI's configuration, read from the environment in one place."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from plantmodel.envconf import env_float, env_int, env_str
from plantmodel.mqtt import MqttSettings
from plantmodel.topics import Topics
from store.db import DEFAULT_SQLITE_PATH, database_url_from_env


@dataclass(frozen=True, slots=True)
class WebSettings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    mqtt: MqttSettings = field(default_factory=lambda: MqttSettings(username="webui"))
    topic_root: str = "plant"
    host: str = "127.0.0.1"
    port: int = 8080
    # Signs the session cookies. Random per start by default (everyone logs in again after a
    # restart); set SECRET_KEY so logins survive restarts and several web UIs share them.
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Expected seconds between two reports: a source with nothing for 3 periods shows as stale.
    report_period: float = 60.0
    meter_period: float = 60.0  # a Shelly sends on change, and its energy counter every minute
    # Live pushes are coalesced per room and sent at most this often (seconds); alarms go at once.
    push_interval: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebSettings:
        """``DATABASE_URL``, ``MQTT_*`` (user ``webui`` by default), ``PLANT_TOPIC_ROOT``,
        ``WEBUI_HOST``, ``WEBUI_PORT``, ``SECRET_KEY``, ``WEBUI_REPORT_PERIOD``, ``WEBUI_METER_PERIOD``
        and ``WEBUI_PUSH_INTERVAL``."""
        root = env_str(env, "PLANT_TOPIC_ROOT", "plant")
        Topics(root)  # fail at start-up, not on the first message, when the root is invalid
        secret = env_str(env, "SECRET_KEY", "")
        return cls(
            database_url=database_url_from_env(env),
            mqtt=MqttSettings.from_env(env, default_user="webui"),
            topic_root=root,
            host=env_str(env, "WEBUI_HOST", "127.0.0.1"),
            port=env_int(env, "WEBUI_PORT", 8080, minimum=1),
            secret_key=secret or secrets.token_hex(32),
            report_period=env_float(env, "WEBUI_REPORT_PERIOD", 60.0, minimum=0.01),
            meter_period=env_float(env, "WEBUI_METER_PERIOD", 60.0, minimum=0.01),
            push_interval=env_float(env, "WEBUI_PUSH_INTERVAL", 0.5, minimum=0.0),
        )
