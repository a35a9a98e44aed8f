"""A production automate's reading: the payload on ``<root>/units/<u>/automates/<a>/readings``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, make_dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object, require_int, require_number, require_str
from plantmodel.measures import AUTOMATE_MEASURES, Measure
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


class _ReadingFields:
    """What every reading carries besides its measures, and all its behaviour. The concrete class,
    :data:`Reading`, adds one ``float`` field per automate measure (:func:`make_reading_type`): the
    measures are defined once, in :mod:`plantmodel.measures`, not repeated here. A frozen, slotted
    dataclass at run time (decorated below)."""

    # The measures' definitions, in field order: set by make_reading_type on the concrete class.
    measure_definitions: ClassVar[Mapping[str, Measure]] = MappingProxyType({})

    unit: int
    automate: int
    type: str
    seq: int | None  # None: a legacy HTTP sender's reading (no seq): the bridge numbers it
    ts: datetime
    if TYPE_CHECKING:
        # A field of the concrete class, after the measures (it has a default, they do not).
        boot: str | None
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # asdict() and replace() accept it

        # The generated __init__: measures by position (after ts, in definition order) or by name.
        def __init__(self, unit: int, automate: int, type: str, seq: int | None, ts: datetime,
                     *values: float, boot: str | None = None, **measures: float) -> None: ...

    def __post_init__(self) -> None:
        _check_ids(self.unit, self.automate)
        check_boot(self.boot)
        if not _TYPE_RE.fullmatch(self.type):
            raise ValidationError(f"field 'type' = {self.type!r} must look like 0x0000BA27")
        if self.seq is not None:
            check_column_int(self.seq, "field 'seq'", 0, SEQ_MAX)
        if self.ts.tzinfo is None:
            raise ValidationError("field 'ts' must be timezone-aware")
        for name, measure in self.measure_definitions.items():
            value = getattr(self, name)
            if not measure.plausible_min <= value <= measure.plausible_max:
                raise ValidationError(
                    f"field {name!r} = {value} is absurd (plausible "
                    f"{measure.plausible_min:g}..{measure.plausible_max:g} {measure.unit})"
                )

    def measures(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.measure_definitions}

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
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(
            unit=require_int(data, "unit"),
            automate=require_int(data, "automate"),
            type=require_str(data, "type"),
            seq=None if data.get("seq") is None else require_int(data, "seq"),
            ts=parse_ts(require_str(data, "ts")),
            **{name: require_number(data, name) for name in cls.measure_definitions},
            boot=check_boot(data.get("boot")),
        )

    @classmethod
    def from_json(cls, payload: bytes | str) -> Self:
        return cls.from_dict(loads_object(payload, "reading"))


if not TYPE_CHECKING:
    # Not decorated where mypy looks: its dataclass plugin would check dataclasses.replace(reading,
    # ph=...) against these five fields only, not the measures it cannot see.
    _ReadingFields = dataclass(frozen=True, slots=True)(_ReadingFields)


def make_reading_type(measures: Mapping[str, Measure], name: str = "Reading") -> type[_ReadingFields]:
    """The reading class of an automate with these measures: the common fields, then one ``float``
    field per measure in definition order (keyword or positional, as a hand-written dataclass), then
    ``boot``. Exposed so that a test can build the class of a plant with one more measure."""
    fields: list[tuple[str, Any, Any]] = [(m, float, field()) for m in measures]
    # Optional id of the unit's current run (new at each start): tells a restart, whose seq begins
    # at 0 again, from a replay, whatever the unit's clock did. Metadata, not part of the measurement.
    fields.append(("boot", "str | None", field(default=None, compare=False)))
    cls = make_dataclass(name, fields, bases=(_ReadingFields,), frozen=True, slots=True,
                         namespace={"measure_definitions": MappingProxyType(dict(measures))})
    cls.__module__ = __name__  # where pickle and repr look for it (make_dataclass's module= is 3.12+)
    cls.__doc__ = f"A production automate's reading: {', '.join(measures)} (plantmodel.measures)."
    return cls


if TYPE_CHECKING:
    class Reading(_ReadingFields):
        """The typed face of the generated class: mypy cannot see fields made at run time."""

        def __getattr__(self, name: str) -> float: ...  # the measures
else:
    Reading = make_reading_type(AUTOMATE_MEASURES)


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
