from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from plantmodel.envconf import env_float, env_int, env_str
from plantmodel.mqtt import MqttSettings
from store.db import database_url_from_env


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    database_url: str
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    topic_root: str = "plant"
    # Fixed client id + persistent session: the broker queues for us while we are down.
    client_id: str = "plant-bridge"
    batch_size: int = 500  # rows per transaction (executemany in 500s: ~20x one-row commits)
    batch_wait: float = 0.2  # s to wait for a batch to fill before writing what we have
    thresholds_poll: float = 2.0  # s between checks for edited thresholds
    max_future_skew: float = 86_400.0  # s a unit's clock may run ahead before we reject
    rpc_retry: float = 30.0  # s before asking a silent meter for its status again

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BridgeSettings:
        return cls(
            database_url=database_url_from_env(env),
            mqtt=MqttSettings.from_env(env, default_user="bridge"),
            topic_root=env_str(env, "PLANT_TOPIC_ROOT", "plant"),
            client_id=env_str(env, "BRIDGE_CLIENT_ID", "plant-bridge"),
            batch_size=env_int(env, "BRIDGE_BATCH_SIZE", 500, minimum=1),
            batch_wait=env_float(env, "BRIDGE_BATCH_WAIT", 0.2),
            thresholds_poll=env_float(env, "BRIDGE_THRESHOLDS_POLL", 2.0, minimum=0.1),
            max_future_skew=env_float(env, "BRIDGE_MAX_FUTURE_SKEW", 86_400.0),
            rpc_retry=env_float(env, "BRIDGE_RPC_RETRY", 30.0, minimum=1.0),
        )
