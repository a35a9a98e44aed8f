"""What a value comes from: an automate of a unit, or a meter. Also the key used in alarm topics,
threshold scopes and the database (``units/3/automates/7``, ``meters/shellypro1pm-…``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from plantmodel.errors import ValidationError
from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT

# Shelly ids / topic prefixes we accept: letters, digits, '-', '_' and '.', as device ids are.
METER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def unit_key(unit: int) -> str:
    """A unit as a whole (``units/3``): its online status, a threshold scope, a live room."""
    return f"units/{unit}"


def automate_key(unit: int, automate: int) -> str:
    """An automate's source key (``units/3/automates/7``), without building (and range-checking) an
    :class:`AutomateSource`: for ids already checked, on the bridge's hot path."""
    return f"units/{unit}/automates/{automate}"


@dataclass(frozen=True, slots=True)
class AutomateSource:
    unit: int
    automate: int

    def __post_init__(self) -> None:
        if not 1 <= self.unit <= MAX_UNIT or not 1 <= self.automate <= MAX_AUTOMATE:
            raise ValidationError(f"no such automate: unit {self.unit} automate {self.automate}")

    @property
    def key(self) -> str:
        return automate_key(self.unit, self.automate)

    @property
    def label(self) -> str:
        return f"unit {self.unit} automate {self.automate}"


@dataclass(frozen=True, slots=True)
class MeterSource:
    meter: str

    def __post_init__(self) -> None:
        check_meter_id(self.meter)

    @property
    def key(self) -> str:
        return f"meters/{self.meter}"

    @property
    def label(self) -> str:
        return f"meter {self.meter}"


Source = AutomateSource | MeterSource


def check_meter_id(meter: str) -> str:
    if not isinstance(meter, str) or not METER_ID_RE.fullmatch(meter):
        raise ValidationError(f"invalid meter id {meter!r}")
    return meter


def unit_of_key(key: str) -> int:
    """The unit of a unit key (``units/3``: a threshold scope, a registry key), refused unless
    written the one way lookups use it: ``units/03`` would silently never match."""
    parts = key.split("/")
    if len(parts) != 2 or parts[0] != "units":
        raise ValidationError(f"{key!r} is not units/<unit number>")
    number = parts[1]
    # Fix (property tests): past 4300 digits int() raises a plain ValueError (a 500 on the API).
    if not (number.isascii() and number.isdigit()) or len(number) > 18:
        raise ValidationError(f"{number!r} is not a unit number")
    if number != str(int(number)):
        raise ValidationError(f"must be written 'units/{int(number)}'")
    AutomateSource(int(number), 1)  # range check
    return int(number)


def parse_source(key: str) -> Source:
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "units" and parts[2] == "automates":
        return AutomateSource(_int(parts[1], key), _int(parts[3], key))
    if len(parts) == 2 and parts[0] == "meters":
        return MeterSource(parts[1])
    raise ValidationError(f"invalid source {key!r}: expected units/<u>/automates/<a> or meters/<id>")


def _int(text: str, key: str) -> int:
    # Fix (property tests): str.isdigit() is also true of "²" and "٣", on which int() raised a plain
    # ValueError (as it does past 4300 digits): the bridge held such an alarm topic, the API answered
    # a threshold scope like units/²/automates/1 with a 500. ASCII digits only, and few of them.
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0") or len(text) > 18:
        raise ValidationError(f"invalid source {key!r}: {text!r} is not a number")
    return int(text)
