"""Typed reads of environment variables, for each service's one ``Settings.from_env``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout, default_meter_ids

# Where runtime data lives by default (git-ignored): SQLite file, broker files, secrets.
DEFAULT_VAR_DIR = Path("var")


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValidationError(f"{name}={value} must be >= {minimum}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise ValidationError(f"{name}={value} must be >= {minimum}")
    return value


def env_path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else default


def layout_from_env(env: Mapping[str, str]) -> PlantLayout:
    """``PLANT_UNITS`` (5), ``PLANT_AUTOMATES`` (10 per unit), and either ``PLANT_METERS`` (comma
    separated Shelly ids) or ``PLANT_METER_COUNT`` (2 generated ids)."""
    meters_raw = env.get("PLANT_METERS", "").strip()
    meters = (
        tuple(m.strip() for m in meters_raw.split(",") if m.strip())
        if meters_raw
        else default_meter_ids(env_int(env, "PLANT_METER_COUNT", 2))
    )
    return PlantLayout(
        units=env_int(env, "PLANT_UNITS", 5, minimum=1),
        automates=env_int(env, "PLANT_AUTOMATES", 10, minimum=1),
        meters=meters,
    )
