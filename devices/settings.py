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
from plantmodel.sources import check_meter_id

# `--demo`: fast enough to watch (the stack tells the web UI the same periods).
DEMO_PERIOD_S = 2.0
DEMO_ENERGY_INTERVAL_S = 10.0
# Gen1 meters send their values every mqtt_update_period: 30 s on a real device, i.e. half the
# meters' energy "minute" (DEVICES_ENERGY_INTERVAL), so it scales with --demo (5 s) like the rest.
GEN1_UPDATE_FRACTION = 0.5


def parse_meter_ids(text: str, name: str = "DEVICES_GEN1_METERS") -> tuple[str, ...]:
    """``"a, b,,a"`` -> ``("a", "b")``: comma separated meter ids (blanks and repeats dropped)."""
    ids: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            check_meter_id(part)
        except ValidationError:
            raise ValidationError(f"{name}: invalid meter id {part!r}") from None
        if part not in ids:
            ids.append(part)
    return tuple(ids)


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
    status_ntf: bool = False  # Gen2 meters also publish <id>/status/switch:0 (off, like the device)
    gen1_meters: tuple[str, ...] = ()  # layout meters simulated as Gen1 Shelly 1PM; the others are Gen2
    run_units: bool = True
    run_meters: bool = True

    def __post_init__(self) -> None:
        if self.period <= 0 or self.meter_period <= 0 or self.energy_interval <= 0:
            raise ValidationError("periods and the energy interval must be > 0")
        if self.buffer_size < 1:
            raise ValidationError("DEVICES_BUFFER must be >= 1")
        if not (self.resend_after > 0 and math.isfinite(self.resend_after)):  # inf would never resend
            raise ValidationError(f"DEVICES_RESEND_AFTER={self.resend_after} must be a number > 0")
        unknown = [m for m in self.gen1_meters if m not in self.layout.meters]
        if unknown:
            raise ValidationError(
                f"Gen1 meter(s) {', '.join(unknown)} (DEVICES_GEN1_METERS / --gen1) not in the layout; "
                f"its meters (PLANT_METERS) are: {', '.join(self.layout.meters) or 'none'}")

    @property
    def gen1_update_period(self) -> float:
        """Seconds between two periodic updates of a Gen1 meter (its mqtt_update_period)."""
        return self.energy_interval * GEN1_UPDATE_FRACTION

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
            gen1_meters=parse_meter_ids(env.get("DEVICES_GEN1_METERS", "")),
        )
