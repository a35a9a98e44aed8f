"""The simulators' settings, read from the environment in one place."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devices.faults import DEFAULT_FAULT_FILE
from plantmodel.envconf import env_float, env_int, env_path, env_str, layout_from_env
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import DEFAULT_CREDENTIALS_FILE, MqttSettings

# `--demo`: fast enough to watch (the stack tells the web UI the same periods).
DEMO_PERIOD_S = 2.0
DEMO_ENERGY_INTERVAL_S = 10.0

@dataclass(frozen=True, slots=True)
class DevicesSettings:
    mqtt: MqttSettings = field(default_factory=MqttSettings)  # host/port; users come per device
    credentials_file: Path = DEFAULT_CREDENTIALS_FILE
    topic_root: str = "plant"
    layout: PlantLayout = field(default_factory=PlantLayout)
    period: float = 60.0  # seconds between two reports of a unit
    meter_period: float = 1.0  # seconds between two meter measurements
    energy_interval: float = 60.0  # the meters' "minute" for aenergy.by_minute
    buffer_size: int = 10_000  # unconfirmed readings kept per unit (the oldest go when full)
    resend_after: float = 5.0  # seconds a gap the bridge reports may last before the unit resends
    fault_file: Path = DEFAULT_FAULT_FILE
    seed: int | None = None  # fixed seed: reproducible values
    status_ntf: bool = False  # meters also publish <id>/status/switch:0 (off, like the device)
    run_units: bool = True
    run_meters: bool = True

    def __post_init__(self) -> None:
        if self.period <= 0 or self.meter_period <= 0 or self.energy_interval <= 0:
            raise ValidationError("periods and the energy interval must be > 0")
        if self.buffer_size < 1:
            raise ValidationError("DEVICES_BUFFER must be >= 1")
        if not (self.resend_after > 0 and math.isfinite(self.resend_after)):  # inf would never resend
            raise ValidationError(f"DEVICES_RESEND_AFTER={self.resend_after} must be a number > 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DevicesSettings:
        status_ntf = env_int(env, "DEVICES_STATUS_NTF", 0)
        if status_ntf not in (0, 1):
            raise ValidationError(f"DEVICES_STATUS_NTF={status_ntf} must be 0 or 1")
        seed_raw = env.get("DEVICES_SEED", "").strip()
        return cls(
            mqtt=MqttSettings.link_from_env(env),  # each device connects as its own user
            credentials_file=env_path(env, "MQTT_CREDENTIALS_FILE", DEFAULT_CREDENTIALS_FILE),
            topic_root=env_str(env, "PLANT_TOPIC_ROOT", "plant"),
            layout=layout_from_env(env),
            period=env_float(env, "DEVICES_PERIOD", 60.0, minimum=0.01),
            meter_period=env_float(env, "DEVICES_METER_PERIOD", 1.0, minimum=0.01),
            energy_interval=env_float(env, "DEVICES_ENERGY_INTERVAL", 60.0, minimum=0.01),
            buffer_size=env_int(env, "DEVICES_BUFFER", 10_000, minimum=1),
            resend_after=env_float(env, "DEVICES_RESEND_AFTER", 5.0, minimum=0.01),
            fault_file=env_path(env, "DEVICES_FAULT_FILE", DEFAULT_FAULT_FILE),
            seed=env_int(env, "DEVICES_SEED", 0) if seed_raw else None,
            status_ntf=bool(status_ntf),
        )
