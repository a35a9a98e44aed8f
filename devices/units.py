"""Production unit simulator (pure logic, no MQTT): one :class:`Reading` per automate per tick."""

from __future__ import annotations

import random
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from devices.faults import FaultInjector
from plantmodel.layout import PlantLayout
from plantmodel.measures import AUTOMATE_MEASURES, Measure
from plantmodel.readings import Reading
from plantmodel.sources import AutomateSource

# Measures that wander by one step at a time; milk and product follow the tank instead.
WALK_MEASURES = tuple(m for m in AUTOMATE_MEASURES if m not in ("milk_kg", "product_kg"))
MAX_DRAIN_KG = 60  # butter made between two reports, at most
REFILL_MARGIN_KG = 2 * MAX_DRAIN_KG  # refill before the next drain could leave the range
REFILL_SPAN_KG = 150  # a refill lands in the top REFILL_SPAN_KG of the range


class _Walk:
    """Random walk of one measure, kept as an integer count of steps so values never drift off
    the step grid (2.5 + 0.1 + 0.1 … would in floats)."""

    def __init__(self, measure: Measure, rng: random.Random) -> None:
        assert measure.low is not None and measure.high is not None
        self.measure = measure
        self.low = round(measure.low / measure.step)
        self.high = round(measure.high / measure.step)
        self.n = rng.randint(self.low, self.high)

    def step(self, rng: random.Random) -> None:
        self.n += rng.choice((-1, 0, 1))
        # Reflect at the limits: the normal range is never left.
        if self.n > self.high:
            self.n = self.high - 1
        elif self.n < self.low:
            self.n = self.low + 1

    @property
    def value(self) -> float:
        return step_value(self.n, self.measure)


def step_value(n: int, measure: Measure) -> float:
    """``n`` steps as the probe reports it: an int for whole steps, else rounded to the step."""
    if measure.decimals == 0:
        return round(n * measure.step)  # float * int step: round() gives an int
    return round(n * measure.step, measure.decimals)


class AutomateSimulator:
    def __init__(self, unit: int, automate: int, rng: random.Random,
                 faults: FaultInjector | None = None) -> None:
        self.source = AutomateSource(unit, automate)
        self.type = PlantLayout.automate_type(unit, automate)
        self.seq = 0
        self._rng = rng
        self._faults = faults
        self._walks = {name: _Walk(AUTOMATE_MEASURES[name], rng) for name in WALK_MEASURES}
        milk = AUTOMATE_MEASURES["milk_kg"]
        assert milk.low is not None and milk.high is not None
        self._milk_low, self._milk_high = int(milk.low), int(milk.high)
        self._milk = rng.randint(self._milk_low, self._milk_high)
        self._prev_milk: int | None = None

    def _advance(self) -> dict[str, float]:
        """Move the state one report forward and return the true (unfaulted) values."""
        if self._prev_milk is not None:  # the first report shows the tank as found
            for walk in self._walks.values():
                walk.step(self._rng)
            milk = self._milk - self._rng.randint(0, MAX_DRAIN_KG)
            if milk < self._milk_low + REFILL_MARGIN_KG:
                milk = self._rng.randint(self._milk_high - REFILL_SPAN_KG, self._milk_high)
            self._milk = milk
        product = 0 if self._prev_milk is None else max(self._prev_milk - self._milk, 0)
        self._prev_milk = self._milk
        values: dict[str, float] = {name: w.value for name, w in self._walks.items()}
        values["milk_kg"] = self._milk
        values["product_kg"] = product
        return values

    def tick(self, now: datetime) -> Reading | None:
        """The next reading; None while a silent fault is set: the automate then neither moves
        on nor uses a sequence number, so the bridge sees a pause, not lost readings."""
        if self._faults is not None and self._faults.silent(self.source.unit, self.source.automate):
            return None
        values = self._advance()
        if self._faults is not None:
            values.update(self._faults.forced(self.source.key))
        measures: dict[str, Any] = values
        reading = Reading(unit=self.source.unit, automate=self.source.automate, type=self.type,
                          seq=self.seq, ts=now, **measures)
        self.seq += 1
        return reading


class UnitSimulator:
    """A production unit: its automates report together, stamped with the unit's clock."""

    def __init__(self, unit: int, automates: int, rng: random.Random | None = None,
                 faults: FaultInjector | None = None) -> None:
        self.unit = unit
        # New at every start, like a PLC's boot counter, and independent of the values' seed: the
        # bridge and the unit's confirmations tell this run from the previous one by it.
        self.boot = secrets.token_hex(4)
        rng = rng if rng is not None else random.Random()
        self.automates = [AutomateSimulator(unit, a, rng, faults) for a in range(1, automates + 1)]

    def tick(self, now: datetime) -> list[Reading]:
        if now.tzinfo is None:
            raise ValueError("the unit's clock must be timezone-aware")
        # The unit's clock is UTC with millisecond resolution (what the reading carries).
        now = now.astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        readings = (a.tick(now) for a in self.automates)
        return [replace(r, boot=self.boot) for r in readings if r is not None]
