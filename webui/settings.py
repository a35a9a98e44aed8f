"""The web UI's configuration, read from the environment in one place."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from plantmodel.envconf import env_int, env_str
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
    # Random per start by default: sessions do not survive a restart, which is fine until login
    # exists; set SECRET_KEY when they must (several workers, or persistent logins).
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebSettings:
        """``DATABASE_URL``, ``MQTT_*`` (user ``webui`` by default), ``PLANT_TOPIC_ROOT``,
        ``WEBUI_HOST``, ``WEBUI_PORT`` and ``SECRET_KEY``."""
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
        )
