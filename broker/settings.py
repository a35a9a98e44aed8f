from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from broker.credentials import ServiceUsers
from broker.tls import DEFAULT_NAMES, TlsFiles, check_names
from plantmodel.envconf import DEFAULT_VAR_DIR, env_int, env_path, env_str, layout_from_env
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    topic_root: str = "plant"
    layout: PlantLayout = field(default_factory=PlantLayout)
    services: ServiceUsers = field(default_factory=ServiceUsers)  # how many bridge and debug users
    port: int = 1883
    bind: str = "127.0.0.1"
    secrets_dir: Path = DEFAULT_VAR_DIR / "secrets"
    broker_dir: Path = DEFAULT_VAR_DIR / "broker"  # rendered config and persistence
    mosquitto_bin: str = "mosquitto"
    tls: bool = False  # a TLS listener on tls_port; the plain one then stays on loopback
    tls_port: int = 8883
    tls_dir: Path = DEFAULT_VAR_DIR / "secrets" / "tls"  # ca.crt, server.crt, server.key
    tls_names: tuple[str, ...] = DEFAULT_NAMES  # host names in a generated server certificate

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.tls_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BrokerSettings:
        tls = env_str(env, "BROKER_TLS", "0")
        if tls not in ("0", "1"):
            raise ValidationError(f"BROKER_TLS={tls!r} must be 0 or 1")
        secrets_dir = env_path(env, "SECRETS_DIR", DEFAULT_VAR_DIR / "secrets")
        names = env.get("BROKER_TLS_NAMES", "").strip()
        return cls(
            topic_root=env_str(env, "PLANT_TOPIC_ROOT", "plant"),
            layout=layout_from_env(env),
            services=ServiceUsers(bridges=env_int(env, "BROKER_BRIDGES", 1, minimum=1),
                                  debug=env_int(env, "BROKER_DEBUG_USERS", 1, minimum=1),
                                  webuis=env_int(env, "BROKER_WEBUIS", 1, minimum=1)),
            port=env_int(env, "MQTT_PORT", 1883, minimum=1),
            bind=env_str(env, "BROKER_BIND", "127.0.0.1"),
            secrets_dir=secrets_dir,
            broker_dir=env_path(env, "BROKER_DIR", DEFAULT_VAR_DIR / "broker"),
            mosquitto_bin=env_str(env, "MOSQUITTO_BIN", "mosquitto"),
            tls=tls == "1",
            tls_port=env_int(env, "BROKER_TLS_PORT", 8883, minimum=1),
            tls_dir=env_path(env, "BROKER_TLS_DIR", secrets_dir / "tls"),
            tls_names=check_names(names.split(",")) if names else DEFAULT_NAMES,
        )
