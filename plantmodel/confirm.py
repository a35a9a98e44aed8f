"""End-to-end confirmation of unit readings (``<root>/confirm/units/<u>``, retained, bridge -> unit).

A broker's PUBACK only says the broker holds a reading in memory; Mosquitto writes it to disk every
``autosave_interval``, so a broker crash can lose readings a unit believes delivered. A unit
therefore keeps every reading until the *bridge* confirms it is committed. After each commit the
bridge publishes, per unit, for each automate it touched::

    {"unit": 3, "ts": "2026-11-21T10:15:01.250Z",
     "automates": {"7": {"confirmed": 1234, "newest": 1240, "newest_ts": "2026-11-21T10:15:00.000Z",
                         "boot": "9f2c61d0"}}}

- ``confirmed``: every ``seq`` up to this one is settled: stored, or recorded as rejected, or (after
  ``BRIDGE_GAP_TIMEOUT``) declared lost. The unit may forget those readings.
- ``newest``: the highest ``seq`` settled. ``newest > confirmed`` means a gap: the bridge is
  missing ``confirmed + 1``; the unit resends what it still holds between the two.
- ``boot``: the boot id the unit's readings carry (absent for units that send none). A unit counts
  ``seq`` from 0 at each start, so a retained confirmation from its previous life must not clear
  its new readings: a unit that sends a boot id ignores an entry for another one, or without one.
- ``newest_ts``: the unit timestamp of the newest stored reading; for a unit without a boot id, an
  entry older than its own start is from its previous life (a clock stepped back at boot defeats
  this: units should send a boot id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object, require_int, require_str
from plantmodel.readings import MAX_UNIT, check_boot, format_ts, parse_ts
from plantmodel.sources import AutomateSource
from plantmodel.storage import SEQ_MAX


@dataclass(frozen=True, slots=True)
class AutomateConfirmation:
    confirmed: int
    newest: int
    newest_ts: datetime
    boot: str | None = None

    def __post_init__(self) -> None:
        if not -1 <= self.confirmed <= self.newest <= SEQ_MAX:
            raise ValidationError(f"confirmation needs -1 <= confirmed ({self.confirmed}) <= newest "
                                  f"({self.newest}) <= {SEQ_MAX}")

    @property
    def gap(self) -> bool:
        return self.newest > self.confirmed


@dataclass(frozen=True, slots=True)
class Confirmation:
    unit: int
    ts: datetime  # the bridge's commit time
    automates: dict[int, AutomateConfirmation]

    def __post_init__(self) -> None:
        for automate in self.automates:
            AutomateSource(self.unit, automate)  # range check

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "ts": format_ts(self.ts),
            "automates": {
                str(a): {"confirmed": c.confirmed, "newest": c.newest, "newest_ts": format_ts(c.newest_ts),
                         **({"boot": c.boot} if c.boot is not None else {})}
                for a, c in sorted(self.automates.items())
            },
        }

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls, payload: bytes | str) -> Confirmation:
        data = loads_object(payload, "confirmation")
        raw = data.get("automates")
        if not isinstance(raw, dict):
            raise ValidationError("field 'automates' must be an object")
        automates: dict[int, AutomateConfirmation] = {}
        for key, entry in raw.items():
            # Fix (property tests): "²".isdigit() is true but int("²") raises a plain ValueError (so
            # does int() past 4300 digits): ASCII digits only, and few of them.
            if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 18) \
                    or not isinstance(entry, dict):
                raise ValidationError(f"automates[{key!r}] must be an automate number with an object")
            automates[int(key)] = AutomateConfirmation(
                confirmed=require_int(entry, "confirmed"),
                newest=require_int(entry, "newest"),
                newest_ts=parse_ts(require_str(entry, "newest_ts"), "newest_ts"),
                boot=check_boot(entry.get("boot")),
            )
        # Fix (property tests): the unit was range-checked only through its automates, so a
        # confirmation without any ({"unit": -5, ...}) was accepted.
        unit = require_int(data, "unit", minimum=1, maximum=MAX_UNIT)
        return cls(unit, parse_ts(require_str(data, "ts")), automates)
