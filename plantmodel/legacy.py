"""Legacy HTTP senders: the fields of the two original collectors, mapped to our model.

* Seed 1 (DOMAIN.md §1): production units that still ``POST /collector/info`` with ``unityId`` and
  the nine seed measure names (``tmp_Cuve`` …), as a JSON body or form fields. Optional: ``automate``
  (default 1), ``timestamp`` or ``ts`` (ISO 8601 UTC; default the server's receive time), ``type``
  (the automate's 32-bit type; default the type stored for that automate, else ``0x00000000`` =
  unknown) and ``product_kg`` (default: derived from the automate's previous milk weight, as the
  simulator does). Becomes a :class:`~plantmodel.readings.Reading` without ``seq`` (the bridge
  numbers legacy readings itself).
* Seed 2 (DOMAIN.md §2): the Shelly webhook's ``power`` (W), ``voltage`` (V), ``current`` (A) and
  ``energy`` (Wh), the server adding the time. Becomes a :class:`~plantmodel.shelly.PowerSample` of
  the meter the sender's token belongs to.

Pure functions: the web UI's routes do the I/O (tokens, the stored type and milk weight, MQTT).
Every problem is a :class:`~plantmodel.errors.ValidationError` whose reason names the sender's
field (``tmp_Cuve``, not ``tank_temp_c``). Values are JSON numbers or, from a form or a query
string, decimal text; NaN, infinities, booleans and anything else are refused. Fields this module
does not know are ignored (old firmware may send more).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from plantmodel.errors import ValidationError
from plantmodel.i18n import N_
from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES, Measure
from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT, Reading, parse_ts, to_ms
from plantmodel.shelly import PowerSample
from plantmodel.sources import check_meter_id

# Seed 1 field -> Reading field, in the seed's order.
COLLECTOR_FIELDS: dict[str, str] = {
    "tmp_Cuve": "tank_temp_c",
    "tmp_Ext": "ext_temp_c",
    "poids_Lait_Cuve": "milk_kg",
    "mesure_PH": "ph",
    "mesure_K": "k_mg_l",
    "concentration_NaCl": "nacl_g_l",
    "niv_Bact_Salmonelle": "salmonella_ppm",
    "niv_Bact_Ecoli": "ecoli_ppm",
    "niv_Bact_Listeria": "listeria_ppm",
}
UNIT_FIELD = "unityId"
AUTOMATE_FIELD = "automate"
TYPE_FIELD = "type"
PRODUCT_FIELD = "product_kg"
TIME_FIELDS = ("timestamp", "ts")
DEFAULT_AUTOMATE = 1
UNKNOWN_TYPE = "0x00000000"  # no type sent and none stored for the automate: "unknown"

# Seed 2 field -> PowerSample field.
WEBHOOK_FIELDS: dict[str, str] = {"power": "apower", "voltage": "voltage", "current": "current",
                                  "energy": "energy_wh"}

# Decimal text as a form or query string carries it: no "nan", "inf", "0x10", "1_000", spaces or
# non-ASCII digits (float() would take several of these).
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_INT_RE = re.compile(r"[0-9]{1,18}")
_TYPE_RE = re.compile(r"0[xX][0-9A-Fa-f]{8}")
MAX_TEXT = 64  # longer text is not a number of ours

Fields = Mapping[str, object]


# -- values --------------------------------------------------------------------------------------------

def _kind(value: object) -> str:
    return "null" if value is None else "true/false" if isinstance(value, bool) else type(value).__name__


def parse_number(value: object, field: str) -> float:
    """A finite number: a JSON number (never true/false) or decimal text."""
    if isinstance(value, bool):
        raise ValidationError(f"field {field!r} must be a number, got {_kind(value)}")
    if isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:
            raise ValidationError(f"field {field!r} is not a finite number (too large)") from None
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str):
        if not value:
            raise ValidationError(f"field {field!r} is empty: it must be a number")
        if len(value) > MAX_TEXT or not _NUMBER_RE.fullmatch(value):
            raise ValidationError(f"field {field!r} = {value[:MAX_TEXT]!r} is not a number")
        number = float(value)
    else:
        raise ValidationError(f"field {field!r} must be a number, got {_kind(value)}")
    if not math.isfinite(number):
        raise ValidationError(f"field {field!r} is not a finite number")
    return number


def parse_integer(value: object, field: str, minimum: int, maximum: int) -> int:
    """A whole number in ``minimum..maximum``: a JSON integer or ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT_RE.fullmatch(value):
        number = int(value)
    else:
        shown = repr(value[:MAX_TEXT]) if isinstance(value, str) else _kind(value)
        raise ValidationError(f"field {field!r} must be a whole number, got {shown}")
    if not minimum <= number <= maximum:
        raise ValidationError(f"field {field!r} = {number} is out of range {minimum}..{maximum}")
    return number


def _measure(fields: Fields, field: str, name: str, measures: Mapping[str, Measure]) -> float:
    """``fields[field]`` as the measure ``name``, within the range a real probe can report."""
    value = parse_number(fields[field], field)
    m = measures[name]
    if not m.plausible_min <= value <= m.plausible_max:
        raise ValidationError(f"field {field!r} = {value:g} is absurd (plausible "
                              f"{m.plausible_min:g}..{m.plausible_max:g} {m.unit})".replace(" )", ")"))
    return value


def _require(fields: Fields, names: list[str]) -> None:
    missing = [n for n in names if n not in fields]
    if missing:
        listed = ", ".join(repr(n) for n in missing)
        raise ValidationError(f"missing field{'s' if len(missing) > 1 else ''} {listed}")


def _now_ms(now: datetime) -> datetime:
    """The server's receive time at the millisecond the database keeps."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return to_ms(now)


# -- seed 1: POST /collector/info ----------------------------------------------------------------------

def collector_unit(fields: Fields) -> int:
    """The ``unityId`` the sender claims (its token must be for that unit)."""
    _require(fields, [UNIT_FIELD])
    return parse_integer(fields[UNIT_FIELD], UNIT_FIELD, 1, MAX_UNIT)


def collector_automate(fields: Fields) -> int:
    """``automate``, 1 when absent (the seed's units reported as one automate)."""
    if AUTOMATE_FIELD not in fields:
        return DEFAULT_AUTOMATE
    return parse_integer(fields[AUTOMATE_FIELD], AUTOMATE_FIELD, 1, MAX_AUTOMATE)


def collector_time(fields: Fields, now: datetime) -> datetime:
    """The unit's own timestamp (``timestamp`` or ``ts``, ISO 8601 UTC), else ``now``."""
    given = [f for f in TIME_FIELDS if f in fields]
    if len(given) > 1:
        raise ValidationError(f"give {TIME_FIELDS[0]!r} or {TIME_FIELDS[1]!r}, not both")
    if not given:
        return _now_ms(now)
    value = fields[given[0]]
    if not isinstance(value, str):
        raise ValidationError(f"field {given[0]!r} must be ISO 8601 UTC text like 2026-11-21T10:15:00.000Z, "
                              f"got {_kind(value)}")
    return parse_ts(value, given[0])


def collector_type(fields: Fields, stored: str | None) -> str:
    """The automate's type: the ``type`` field (``0x0000BA27``, any case), else the stored one,
    else ``0x00000000`` (unknown)."""
    if TYPE_FIELD not in fields:
        return stored if stored is not None else UNKNOWN_TYPE
    value = fields[TYPE_FIELD]
    if not isinstance(value, str) or not _TYPE_RE.fullmatch(value):
        shown = repr(value[:MAX_TEXT]) if isinstance(value, str) else _kind(value)
        raise ValidationError(f"field {TYPE_FIELD!r} must be a 32-bit hex code like 0x0000BA27, got {shown}")
    return "0x" + value[2:].upper()


def collector_reading(fields: Fields, unit: int, *, now: datetime, automate_type: str | None,
                      previous_milk_kg: float | None) -> Reading:
    """The reading a legacy unit posted, for ``unit`` (the sender's token's: ``unityId`` must say
    the same). ``automate_type``: the type stored for the automate, if any; ``previous_milk_kg``:
    its previous milk weight, if known (``product_kg`` is then the drop since, as the simulator
    computes it; else 0)."""
    claimed = collector_unit(fields)
    if claimed != unit:
        raise ValidationError(f"field {UNIT_FIELD!r} = {claimed} is not unit {unit}")
    automate = collector_automate(fields)
    _require(fields, list(COLLECTOR_FIELDS))
    values = {name: _measure(fields, field, name, AUTOMATE_MEASURES) for field, name in COLLECTOR_FIELDS.items()}
    if PRODUCT_FIELD in fields:
        product = _measure(fields, PRODUCT_FIELD, PRODUCT_FIELD, AUTOMATE_MEASURES)
    elif previous_milk_kg is None:
        product = 0.0
    else:
        product = max(previous_milk_kg - values["milk_kg"], 0.0)
    return Reading(unit=unit, automate=automate, type=collector_type(fields, automate_type), seq=None,
                   ts=collector_time(fields, now), product_kg=product, **values)  # type: ignore[arg-type]


# -- seed 2: /webhook/ ----------------------------------------------------------------------------------

def webhook_sample(fields: Fields, meter: str, now: datetime) -> PowerSample:
    """The Shelly webhook's measurement for ``meter``, stamped with the server's ``now``."""
    check_meter_id(meter)
    _require(fields, list(WEBHOOK_FIELDS))
    values = {name: _measure(fields, field, name, METER_MEASURES) for field, name in WEBHOOK_FIELDS.items()}
    return PowerSample(meter=meter, ts=_now_ms(now), output=None, freq=None, pf=None, ret_energy_wh=None,
                       temperature_c=None, **values)  # type: ignore[arg-type]


# -- the devices a token may be for ---------------------------------------------------------------------

_UNIT_DEVICE_RE = re.compile(r"units/([1-9][0-9]{0,3})")


def check_token_device(device: object) -> str:
    """``units/<u>`` (a seed 1 sender) or ``meters/<id>`` (a webhook sender)."""
    if isinstance(device, str):
        match = _UNIT_DEVICE_RE.fullmatch(device)
        if match and int(match.group(1)) <= MAX_UNIT:
            return device
        if device.startswith("meters/"):
            check_meter_id(device.removeprefix("meters/"))
            return device
    # An administrator's input (the device tokens page), not a device's: said in the page's language.
    raise ValidationError(N_("device %(device)s must be units/<unit number> (a /collector/info sender) or "
                             "meters/<meter id> (a /webhook/ sender)"), device=repr(device))


def token_unit(device: str) -> int | None:
    """The unit of a ``units/<u>`` token device, else None."""
    match = _UNIT_DEVICE_RE.fullmatch(device)
    return int(match.group(1)) if match else None


def token_meter(device: str) -> str | None:
    """The meter of a ``meters/<id>`` token device, else None."""
    return device.removeprefix("meters/") if device.startswith("meters/") else None
