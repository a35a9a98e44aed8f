"""Fault injection: force the published value of one measure of one automate or meter.

The fault file (``DEVICES_FAULT_FILE``, default ``var/faults.json``) is written by
``python -m devices fault …`` and watched by the running simulator::

    {"faults": [{"target": "units/3/automates/7", "measure": "tank_temp_c", "values": [4.1, 4.0]}]}

While a fault is active the published value is the next one of ``values``, cycling (``[4.1, 4.0]``
jitters around the limit). The simulators' own state is untouched, so clearing a fault returns
to normal values at once.

The pseudo-measure ``silent`` (no ``values``) makes one automate, or every automate of a unit
(target ``units/<u>``), send nothing while it is set: no reading is made, so no sequence number is
used and the bridge counts nothing as lost; its no-data alarm is what should notice::

    {"faults": [{"target": "units/3/automates/7", "measure": "silent"}]}
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import loads_object, number
from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES, Measure
from plantmodel.sources import AutomateSource, automate_key, parse_source, unit_key, unit_of_key

log = logging.getLogger(__name__)

DEFAULT_FAULT_FILE = Path("var/faults.json")
SILENT = "silent"  # pseudo-measure: the target sends nothing


def _check_silent_target(target: str) -> None:
    """``units/<u>`` or ``units/<u>/automates/<a>``: what a unit simulator can leave out."""
    try:
        if len(target.split("/")) == 2 and target.startswith("units/"):
            unit_of_key(target)
        elif not isinstance(parse_source(target), AutomateSource):
            raise ValidationError("a meter")
    except ValidationError as exc:
        raise ValidationError(f"a silent fault targets units/<u> or units/<u>/automates/<a>, not "
                              f"{target!r} ({exc.reason})") from None


def measures_for(target: str) -> dict[str, Measure]:
    """The measures a target (source key) can be faulted on; raises ValidationError for a bad key."""
    return AUTOMATE_MEASURES if isinstance(parse_source(target), AutomateSource) else METER_MEASURES


@dataclass(frozen=True, slots=True)
class Fault:
    target: str  # source key: units/<u>/automates/<a> or meters/<id>
    measure: str
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.measure == SILENT:
            _check_silent_target(self.target)
            if self.values:
                raise ValidationError("a silent fault takes no values")
            return
        measures = measures_for(self.target)
        if self.measure not in measures:
            kind = "an automate" if measures is AUTOMATE_MEASURES else "a meter"
            raise ValidationError(
                f"unknown measure {self.measure!r} for {kind}; known: {', '.join(measures)}"
            )
        if not self.values:
            raise ValidationError("a fault needs at least one value")
        m = measures[self.measure]
        for v in self.values:
            number(v, "values")
            # An absurd value would make the simulator's own Reading (and the bridge) reject it.
            if not m.plausible_min <= v <= m.plausible_max:
                raise ValidationError(
                    f"value {v:g} for {self.measure} is not plausible "
                    f"({m.plausible_min:g}..{m.plausible_max:g} {m.unit})"
                )

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.measure)

    @property
    def silent(self) -> bool:
        return self.measure == SILENT

    def to_dict(self) -> dict[str, Any]:
        if self.silent:
            return {"target": self.target, "measure": self.measure}
        return {"target": self.target, "measure": self.measure, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValidationError("each fault must be an object")
        target, measure, values = data.get("target"), data.get("measure"), data.get("values")
        if not isinstance(target, str) or not isinstance(measure, str):
            raise ValidationError("a fault needs a string 'target' and 'measure'")
        if measure == SILENT and values is None:
            values = []
        if not isinstance(values, list):
            raise ValidationError("a fault's 'values' must be a list of numbers")
        return cls(target, measure, tuple(values))


def parse_faults(data: Mapping[str, Any]) -> list[Fault]:
    faults_raw = data.get("faults", [])
    if not isinstance(faults_raw, list):
        raise ValidationError("'faults' must be a list")
    faults = [Fault.from_dict(f) for f in faults_raw]
    keys = [f.key for f in faults]
    if len(set(keys)) != len(keys):
        raise ValidationError("two faults for the same target and measure")
    return faults


def load_faults(path: Path) -> list[Fault]:
    """The faults in ``path`` ([] when the file does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ValidationError(f"cannot read fault file {path}: {exc}") from None
    return parse_faults(loads_object(text, f"fault file {path}"))


def save_faults(path: Path, faults: Iterable[Fault]) -> None:
    """Write atomically, so the running simulator never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"faults": [f.to_dict() for f in faults]}, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FaultInjector:
    """The active faults, each with its position in its cycle of values."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._active: dict[tuple[str, str], tuple[Fault, int]] = {}
        self.set_faults(faults)

    def __len__(self) -> int:
        return len(self._active)

    def faults(self) -> list[Fault]:
        return [f for f, _ in self._active.values()]

    def set_faults(self, faults: Iterable[Fault]) -> None:
        # An unchanged fault keeps its place in the cycle, so a reload does not restart it.
        old = self._active
        self._active = {}
        for f in faults:
            prev = old.get(f.key)
            self._active[f.key] = (f, prev[1]) if prev is not None and prev[0] == f else (f, 0)

    def forced(self, target: str) -> dict[str, float]:
        """measure -> value to publish for ``target`` at this report; advances the cycles."""
        out: dict[str, float] = {}
        for (t, measure), (fault, index) in list(self._active.items()):
            if t == target and not fault.silent:
                out[measure] = fault.values[index % len(fault.values)]
                self._active[(t, measure)] = (fault, index + 1)
        return out


    def silent(self, unit: int, automate: int) -> bool:
        """Whether that automate must send nothing now (a silent fault on it or on its unit)."""
        active = self._active
        return ((automate_key(unit, automate), SILENT) in active) or ((unit_key(unit), SILENT) in active)


class FaultFile:
    """Reloads the fault file into an injector when the file changes (checked by :meth:`poll`)."""

    def __init__(self, path: Path, injector: FaultInjector) -> None:
        self.path = path
        self.injector = injector
        self._stamp: tuple[int, int, int] | None = None

    def poll(self) -> bool:
        """Reload if the file's mtime/inode/size changed; True when the active faults were replaced.
        A broken file is logged and the previous faults stay active."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            log.error("cannot check fault file %s: %s", self.path, exc)
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            faults = load_faults(self.path)
        except ValidationError as exc:
            log.error("ignoring fault file %s: %s", self.path, exc.reason)
            return False
        if faults or len(self.injector):
            log.info("faults reloaded from %s: %d active", self.path, len(faults))
        self.injector.set_faults(faults)
        return True
