"""A production automate's reading: the payload on ``<root>/units/<u>/automates/<a>/readings``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object, require_int, require_number, require_str
from plantmodel.measures import AUTOMATE_MEASURES
from plantmodel.storage import SEQ_MAX, check_column_int

MAX_UNIT = 9999
MAX_AUTOMATE = 999
_TYPE_RE = re.compile(r"0x[0-9A-F]{8}")
# ISO 8601 in UTC; the unit's clock sends milliseconds but we accept 0-6 fraction digits.
_BOOT_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]00:?00)")


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_ts(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-11-21T10:15:00.000Z``."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def to_ms(ts: datetime) -> datetime:
    """``ts`` at the millisecond the database keeps (DATETIME(3)), so equality survives a round trip."""
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def parse_ts(text: str, key: str = "ts") -> datetime:
    """Parse a UTC ISO 8601 timestamp into an aware datetime (millisecond precision)."""
    if not isinstance(text, str) or not _TS_RE.fullmatch(text):
        raise ValidationError(f"field {key!r} must be ISO 8601 UTC like 2026-11-21T10:15:00.000Z")
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(f"field {key!r}: {exc}") from None
    if not 2000 <= ts.year <= 2200:
        raise ValidationError(f"field {key!r} year {ts.year} is not plausible")
    # The database keeps milliseconds; truncate here so equality survives a round trip.
    return to_ms(ts.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class Reading:
    unit: int
    automate: int
    type: str
    seq: int | None  # None: a legacy HTTP sender's reading (no seq): the bridge numbers it
    ts: datetime
    tank_temp_c: float
    ext_temp_c: float
    milk_kg: float
    product_kg: float
    ph: float
    k_mg_l: float
    nacl_g_l: float
    salmonella_ppm: float
    ecoli_ppm: float
    listeria_ppm: float
    # Optional id of the unit's current run (new at each start): tells a restart, whose seq begins
    # at 0 again, from a replay, whatever the unit's clock did.
    boot: str | None = field(default=None, compare=False)  # metadata, not part of the measurement

    def __post_init__(self) -> None:
        _check_ids(self.unit, self.automate)
        check_boot(self.boot)
        if not _TYPE_RE.fullmatch(self.type):
            raise ValidationError(f"field 'type' = {self.type!r} must look like 0x0000BA27")
        if self.seq is not None:
            check_column_int(self.seq, "field 'seq'", 0, SEQ_MAX)
        if self.ts.tzinfo is None:
            raise ValidationError("field 'ts' must be timezone-aware")
        for name, measure in AUTOMATE_MEASURES.items():
            value = getattr(self, name)
            if not measure.plausible_min <= value <= measure.plausible_max:
                raise ValidationError(
                    f"field {name!r} = {value} is absurd (plausible "
                    f"{measure.plausible_min:g}..{measure.plausible_max:g} {measure.unit})"
                )

    def measures(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in AUTOMATE_MEASURES}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ts"] = format_ts(self.ts)
        if self.boot is None:
            del data["boot"]
        if self.seq is None:
            del data["seq"]
        return data

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reading:
        return cls(
            unit=require_int(data, "unit"),
            automate=require_int(data, "automate"),
            type=require_str(data, "type"),
            seq=None if data.get("seq") is None else require_int(data, "seq"),
            ts=parse_ts(require_str(data, "ts")),
            **{name: require_number(data, name) for name in AUTOMATE_MEASURES},
            boot=check_boot(data.get("boot")),
        )

    @classmethod
    def from_json(cls, payload: bytes | str) -> Reading:
        return cls.from_dict(loads_object(payload, "reading"))


def check_boot(boot: object) -> str | None:
    """A unit's boot id: absent, 1 to 32 letters, digits, ``-`` and ``_``, or a boot counter (a
    whole number, kept as its decimal text)."""
    if boot is None:
        return None
    if isinstance(boot, int) and not isinstance(boot, bool) and 0 <= boot < 10**32:
        return str(boot)
    if not isinstance(boot, str) or not _BOOT_RE.fullmatch(boot):
        raise ValidationError("field 'boot' must be 1 to 32 letters, digits, '-' or '_', or a whole number")
    return boot


def _check_ids(unit: int, automate: int) -> None:
    if not 1 <= unit <= MAX_UNIT:
        raise ValidationError(f"unit {unit} out of range 1..{MAX_UNIT}")
    if not 1 <= automate <= MAX_AUTOMATE:
        raise ValidationError(f"automate {automate} out of range 1..{MAX_AUTOMATE}")
