"""The plant's layout: how many units, automates per unit, which meters. Configuration, not code
(DOMAIN.md: some sites run 6 units)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from plantmodel.errors import ValidationError
from plantmodel.measures import AUTOMATE_TYPE_MAX, AUTOMATE_TYPE_MIN, format_automate_type
from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT
from plantmodel.sources import AutomateSource, check_meter_id


def default_meter_ids(count: int) -> tuple[str, ...]:
    """Stable, realistic Shelly ids (``shellypro1pm-`` + 12 hex digits of a MAC)."""
    return tuple(
        "shellypro1pm-" + hashlib.sha256(f"abb-meter-{i}".encode()).hexdigest()[:12]
        for i in range(1, count + 1)
    )


@dataclass(frozen=True, slots=True)
class PlantLayout:
    units: int = 5
    automates: int = 10  # per unit
    meters: tuple[str, ...] = default_meter_ids(2)

    def __post_init__(self) -> None:
        if not 1 <= self.units <= MAX_UNIT:
            raise ValidationError(f"units must be 1..{MAX_UNIT}, got {self.units}")
        if not 1 <= self.automates <= MAX_AUTOMATE:
            raise ValidationError(f"automates per unit must be 1..{MAX_AUTOMATE}, got {self.automates}")
        for m in self.meters:
            check_meter_id(m)
        if len(set(self.meters)) != len(self.meters):
            raise ValidationError("meter ids must be unique")

    def automate_sources(self) -> list[AutomateSource]:
        return [AutomateSource(u, a) for u in range(1, self.units + 1)
                for a in range(1, self.automates + 1)]

    @staticmethod
    def automate_type(unit: int, automate: int) -> str:
        # Spread the 16 automate models over the plant, deterministically.
        span = AUTOMATE_TYPE_MAX - AUTOMATE_TYPE_MIN + 1
        return format_automate_type(AUTOMATE_TYPE_MIN + (unit * 7 + automate - 1) % span)

    @staticmethod
    def unit_user(unit: int) -> str:
        """MQTT user name of a production unit."""
        return f"unit-{unit}"
