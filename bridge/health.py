"""No-data and probe-fault values of each source the bridge expects (pure logic, no I/O).

The bridge's timer (:meth:`bridge.service.Bridge._watch_health`) feeds what the database says (the
newest valid message of each source, the rejections since) and asks for the values to evaluate
through the ordinary thresholds of the two alarm-only measures ``no_data`` (periods without a valid
message, to 0.01: a scope may set a fraction, e.g. 0.5 of a 60 s period) and ``probe_fault``
(messages rejected in a row since the last valid one).

Silence is counted from the newest valid message, but never from before the bridge started: after
a (re)start every source gets its full N periods again, so a restart raises no storm. An alarm
raised before the start (by this bridge's previous life, or another bridge) is not cleared by that:
until a valid message newer than the alarm is seen, its value is carried on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plantmodel.text import printable
from plantmodel.thresholds import DETAIL_MAX, Alarm

NO_DATA = "no_data"
PROBE_FAULT = "probe_fault"
HEALTH_MEASURES = (NO_DATA, PROBE_FAULT)


@dataclass(slots=True)
class SourceHealth:
    started: datetime
    automate_period: timedelta
    meter_period: timedelta
    last_valid: dict[str, datetime] = field(default_factory=dict)  # source key -> newest valid receive time
    rejections: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # since last valid: count, reason

    def period(self, source: str) -> timedelta:
        return self.meter_period if source.startswith("meters/") else self.automate_period

    def saw_valid(self, source: str, at: datetime) -> None:
        if source not in self.last_valid or at > self.last_valid[source]:
            self.last_valid[source] = at
            self.rejections.pop(source, None)  # a valid message ends a run of rejections

    def counting_from(self, source: str) -> datetime:
        """Rejections count from the newest valid message, or the start."""
        last = self.last_valid.get(source)
        return self.started if last is None or last < self.started else last

    def set_rejections(self, source: str, count: int, reason: str | None) -> None:
        if count:
            self.rejections[source] = (count, reason)
        else:
            self.rejections.pop(source, None)

    def values(self, source: str, now: datetime, active: Mapping[tuple[str, str], Alarm]
               ) -> tuple[dict[str, float], dict[str, str]]:
        """``({measure: value}, {measure: detail})`` of one source at ``now``."""
        period = self.period(source)
        last = self.last_valid.get(source)
        since = self.counting_from(source)
        silent = active.get((source, NO_DATA))
        if silent is not None and (last is None or last <= silent.raised_at):
            # Raised before we saw anything newer: count from its estimated last data (its value
            # was the periods at its raise), so that it neither clears nor restarts at our start.
            since = min(since, silent.raised_at - period * silent.value)
        periods = max(0.0, math.floor((now - since) / period * 100) / 100)
        count, reason = self.rejections.get(source, (0, None))
        fault = active.get((source, PROBE_FAULT))
        if fault is not None and (last is None or last <= fault.raised_at):
            count = max(count, int(fault.value))
        # Printable and bounded: the alarm's payload must pass its own from_json (alarms.detail: 512).
        details = {PROBE_FAULT: printable(reason)[:DETAIL_MAX]} if reason else {}
        return {NO_DATA: periods, PROBE_FAULT: float(count)}, details

    def pause(self, gap: timedelta) -> None:
        """The bridge was cut from the broker for ``gap``: what it could not receive says nothing
        about the devices (the broker holds their messages), so that time is not counted as silence.
        Without this, every source would raise "no data" at once after an outage and clear together
        when it ends: a storm of alarms and mails about the bridge, none about a probe."""
        self.started += gap
        for source in self.last_valid:
            self.last_valid[source] += gap

    def quiet(self) -> dict[str, float]:
        """The values of a source no longer expected (disabled, removed): whatever it raised clears."""
        return dict.fromkeys(HEALTH_MEASURES, 0.0)
