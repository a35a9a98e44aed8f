"""The plant's time zone: every page, report and spreadsheet CSV shows times in it, with the zone.

Storage and the API stay UTC (ISO 8601 with ``Z``); only what people read is local.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from plantmodel.errors import ValidationError

ZONEINFO_DIRS = (Path("/usr/share/zoneinfo"),)


def server_zone_name(localtime: Path = Path("/etc/localtime"), timezone_file: Path = Path("/etc/timezone"),
                     env: Mapping[str, str] | None = None) -> str:
    """The server's IANA zone name: ``TZ``, else where ``/etc/localtime`` points, else
    ``/etc/timezone``, else ``UTC``."""
    env = os.environ if env is None else env
    tz = env.get("TZ", "").strip().lstrip(":")
    if tz and _valid(tz):
        return tz
    try:
        target = localtime.resolve(strict=True)
        for base in ZONEINFO_DIRS:
            if target.is_relative_to(base):
                name = str(target.relative_to(base))
                if _valid(name):
                    return name
    except OSError:
        pass
    try:
        name = timezone_file.read_text(encoding="utf-8").strip()
        if name and _valid(name):
            return name
    except OSError:
        pass
    return "UTC"


def _valid(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def plant_zone(name: str) -> ZoneInfo:
    """The zone named ``name`` (``Europe/Paris``), or a :class:`ValidationError` saying so."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"PLANT_TZ={name!r} is not a known IANA time zone (e.g. Europe/Paris)") from None


def zone_from_env(env: Mapping[str, str]) -> str:
    """``PLANT_TZ`` (checked), else the server's zone."""
    name = env.get("PLANT_TZ", "").strip()
    if not name:
        return server_zone_name(env=env)
    plant_zone(name)
    return name


def local_text(ts: datetime, zone: tzinfo, *, seconds: bool = True) -> str:
    """``2026-12-02 09:15:03 CET``: what a person reads (always with the zone)."""
    fmt = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"
    return ts.astimezone(zone).strftime(fmt)
