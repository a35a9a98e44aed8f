"""Birth / last-will payload of ``<root>/units/<u>/status`` (and the bridge's own status)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object, optional_text, require_str
from plantmodel.readings import format_ts, parse_ts, utcnow

STATES = ("online", "offline")


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    state: str
    ts: datetime
    # What a unit may say of itself in its birth message (the device registry keeps it).
    model: str | None = None
    firmware: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValidationError(f"field 'state' must be one of {STATES}, got {self.state!r}")
        for key, size in (("model", 64), ("firmware", 96)):
            optional_text(getattr(self, key), f"field {key!r}", size, minimum=1)

    @classmethod
    def online(cls) -> DeviceStatus:
        return cls("online", utcnow())

    @classmethod
    def offline(cls) -> DeviceStatus:
        return cls("offline", utcnow())

    def to_json(self) -> str:
        data = {"state": self.state, "ts": format_ts(self.ts)}
        data.update({k: v for k in ("model", "firmware") if (v := getattr(self, k)) is not None})
        return dumps(data)

    @classmethod
    def from_json(cls, payload: bytes | str) -> DeviceStatus:
        data = loads_object(payload, "status")
        return cls(require_str(data, "state"), parse_ts(require_str(data, "ts")), data.get("model"),
                   data.get("firmware"))
