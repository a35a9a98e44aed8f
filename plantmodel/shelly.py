"""Shelly Gen2 (Pro 1PM) messages on MQTT, as the real device speaks them (DOMAIN.md §2).

A device publishes JSON-RPC frames on ``<prefix>/events/rpc``: ``NotifyStatus`` carries only the
fields that changed, ``NotifyFullStatus`` everything. :class:`SwitchState` merges them per meter;
once it has seen a full status it yields complete :class:`PowerSample` values for storage.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object, number, optional_text
from plantmodel.measures import METER_ERRORS, METER_MEASURES
from plantmodel.sources import check_meter_id

SWITCH_KEY = "switch:0"
# Gen1 reports each error on its own topic (``overtemperature`` 0/1, ``relay/0`` = ``overpower``): kept
# as ``{"flags": {"overtemp": true}}`` in the merged status, so one clearing does not erase another.
FLAGS_KEY = "flags"
OTHER_ERROR = "device_error"  # the alarm of an error the device reports that METER_ERRORS does not name
NOTIFY_METHODS = ("NotifyStatus", "NotifyFullStatus", "NotifyEvent")
MAX_DEPTH = 32  # a real Gen2 frame nests 5 levels at most


@dataclass(frozen=True, slots=True)
class RpcNotification:
    src: str
    method: str
    params: dict[str, Any]

    @property
    def ts(self) -> datetime | None:
        ts = self.params.get("ts")
        return None if ts is None else unix_to_dt(number(ts, "params.ts"))

    @property
    def switch(self) -> dict[str, Any] | None:
        sw = self.params.get(SWITCH_KEY)
        if sw is None:
            return None
        if not isinstance(sw, dict):
            raise ValidationError(f"params.{SWITCH_KEY} must be an object")
        return sw


@dataclass(frozen=True, slots=True)
class RpcResponse:
    id: int | str | None
    src: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None

    def switch_status(self) -> tuple[dict[str, Any] | None, datetime | None]:
        """The switch status in a Shelly.GetStatus or Switch.GetStatus answer, and the device
        time when the answer says it (Shelly.GetStatus carries ``sys.unixtime``)."""
        if self.result is None:
            return None, None
        if SWITCH_KEY in self.result:
            sw = self.result[SWITCH_KEY]
            sys = self.result.get("sys") or {}
            unixtime = sys.get("unixtime") if isinstance(sys, dict) else None
            ts = unix_to_dt(number(unixtime, "sys.unixtime")) if unixtime is not None else None
            return (sw if isinstance(sw, dict) else None), ts
        if "apower" in self.result or "output" in self.result:
            return self.result, None
        return None, None


RpcFrame = RpcNotification | RpcResponse


def device_info(frame: RpcResponse) -> tuple[str | None, int | None, str | None] | None:
    """(model, generation, firmware) of a ``Shelly.GetDeviceInfo`` answer, None for other answers.
    The real answer: ``{"id", "mac", "model": "SPSW-201XE16EU", "gen": 2, "fw_id": "2023…", "ver":
    "1.0.3", "app": "Pro1PM", …}``."""
    r = frame.result
    if r is None or SWITCH_KEY in r or "gen" not in r:
        return None
    gen = r.get("gen")
    if isinstance(gen, bool) or not isinstance(gen, int) or not 1 <= gen <= 99:
        raise ValidationError("Shelly.GetDeviceInfo: 'gen' must be a small whole number")
    return (optional_text(r.get("model"), "field 'model'", 64), gen,
            optional_text(r.get("ver") or r.get("fw_id"), "field 'ver'", 96))


def unix_to_dt(ts: float) -> datetime:
    if not 946_684_800 <= ts <= 7_258_118_400:  # 2000 .. 2200
        raise ValidationError(f"device timestamp {ts} is not plausible")
    # Millisecond precision, as stored.
    return datetime.fromtimestamp(round(ts * 1000) / 1000, UTC)


def _check_depth(data: Any, what: str) -> None:
    """Fix (property tests): a frame nested a few hundred levels deep (which json.loads still takes)
    made the merge's deepcopy raise RecursionError: the bridge held the message instead of rejecting
    it. Walked without recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ValidationError(f"{what} is nested more than {MAX_DEPTH} levels deep")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def parse_rpc_frame(payload: bytes | str) -> RpcFrame:
    data = loads_object(payload, "Shelly RPC frame")
    _check_depth(data, "Shelly RPC frame")
    src = data.get("src")
    if not isinstance(src, str) or not src:
        raise ValidationError("Shelly RPC frame without a 'src'")
    if "method" in data:
        method = data["method"]
        if method not in NOTIFY_METHODS:
            raise ValidationError(f"unexpected Shelly method {method!r}")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise ValidationError("Shelly 'params' must be an object")
        return RpcNotification(src, method, params)
    if "result" in data or "error" in data:
        result, error = data.get("result"), data.get("error")
        if result is not None and not isinstance(result, dict):
            raise ValidationError("Shelly RPC 'result' must be an object")
        if error is not None and not isinstance(error, dict):
            raise ValidationError("Shelly RPC 'error' must be an object")
        return RpcResponse(data.get("id"), src, result, error)
    raise ValidationError("Shelly RPC frame is neither a notification nor a response")


def parse_online(payload: bytes | str) -> bool:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes | bytearray) else payload
    if text.strip() == "true":
        return True
    if text.strip() == "false":
        return False
    raise ValidationError(f"online payload must be true or false, got {text[:40]!r}")


def parse_switch_status(payload: bytes | str) -> dict[str, Any]:
    data = loads_object(payload, "switch status")
    _check_depth(data, "switch status")  # fix (property tests): see _check_depth
    return data


def merge(base: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a partial status into a full one (nested objects such as ``aenergy`` merge
    key by key, so a NotifyStatus with only ``aenergy.total`` keeps ``by_minute``)."""
    out = copy.deepcopy(base)
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True, slots=True)
class PowerSample:
    """One stored meter reading: the merged switch status at a device timestamp."""

    meter: str
    ts: datetime
    output: bool | None
    apower: float | None
    voltage: float | None
    current: float | None
    freq: float | None
    pf: float | None
    energy_wh: float | None
    ret_energy_wh: float | None
    temperature_c: float | None
    errors: tuple[str, ...] = ()  # the device's error flags (Gen2 ``errors``), sorted
    # What the energy counter's resets lost before this sample (see SwitchState): energy_wh plus this
    # is the energy counted since the meter was first seen.
    energy_offset_wh: float = 0.0

    def __post_init__(self) -> None:
        check_meter_id(self.meter)
        for name, measure in METER_MEASURES.items():
            value = getattr(self, name)
            if value is not None and not measure.plausible_min <= value <= measure.plausible_max:
                raise ValidationError(
                    f"{name} = {value} is absurd (plausible {measure.plausible_min:g}.."
                    f"{measure.plausible_max:g} {measure.unit})"
                )
        check_errors(self.errors)
        if not 0 <= self.energy_offset_wh <= METER_MEASURES["energy_wh"].plausible_max:
            raise ValidationError(f"energy offset {self.energy_offset_wh} Wh is absurd")

    def measures(self) -> dict[str, float]:
        return {n: v for n in METER_MEASURES if (v := getattr(self, n)) is not None}

    def alarm_values(self) -> dict[str, float]:
        """The measures and the error flags (1 while the device reports the error): what alarms."""
        flags = {e: float(e in self.errors) for e in METER_ERRORS if e != OTHER_ERROR}
        flags[OTHER_ERROR] = float(any(e not in METER_ERRORS for e in self.errors))
        return {**self.measures(), **flags}

    @property
    def energy_total_wh(self) -> float | None:
        """The energy counted across the counter's resets (never going back)."""
        return None if self.energy_wh is None else self.energy_wh + self.energy_offset_wh

    def to_dict(self) -> dict[str, Any]:
        from plantmodel.readings import format_ts

        data = asdict(self)
        data["ts"] = format_ts(self.ts)
        data["errors"] = list(self.errors)
        data["energy_total_wh"] = self.energy_total_wh
        return data

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PowerSample:
        """Our own JSON form (``to_dict``), as the web UI publishes a legacy sender's sample on
        ``<root>/meters/<id>/power``. Derived keys (``energy_total_wh``) are ignored."""
        from plantmodel.readings import parse_ts

        def opt(key: str) -> float | None:
            v = data.get(key)
            return None if v is None else number(v, key)

        output = data.get("output")
        if output is not None and not isinstance(output, bool):
            raise ValidationError("field 'output' must be true or false")
        meter = data.get("meter")
        if not isinstance(meter, str):
            raise ValidationError("missing field 'meter'")
        ts = data.get("ts")
        if not isinstance(ts, str):
            raise ValidationError("missing field 'ts'")
        return cls(meter=meter, ts=parse_ts(ts), output=output,
                   **{name: opt(name) for name in METER_MEASURES},
                   errors=_errors(data.get("errors")), energy_offset_wh=0.0)

    @classmethod
    def from_json(cls, payload: bytes | str) -> PowerSample:
        return cls.from_dict(loads_object(payload, "power sample"))


MAX_ERRORS = 16
_ERROR_RE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")


ERRORS_COLUMN = 255  # power_readings.errors VARCHAR(255): the names comma-separated


def check_errors(errors: tuple[str, ...]) -> tuple[str, ...]:
    if len(errors) > MAX_ERRORS or not all(isinstance(e, str) and _ERROR_RE.fullmatch(e) for e in errors):
        raise ValidationError(f"'errors' must be at most {MAX_ERRORS} names of 1 to 32 letters, digits, "
                              f"'_', '.', ':' or '-'")
    if len(",".join(errors)) > ERRORS_COLUMN:
        raise ValidationError(f"'errors' names take more than {ERRORS_COLUMN} characters together")
    return errors


def _errors(value: Any, flags: dict[str, Any] | None = None) -> tuple[str, ...]:
    """A device's ``errors`` list (absent or null: none), and the errors of ``flags`` set to true
    (Gen1 says each error on a topic of its own: see :data:`FLAGS_KEY`)."""
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise ValidationError("switch field 'errors' must be a list of names")
    named = set(value) | {k for k, v in (flags or {}).items() if v is True}
    return check_errors(tuple(sorted(named)))


@dataclass(frozen=True, slots=True)
class CounterReset:
    """A meter's energy counter went back: a reboot or ``Switch.ResetCounters``, never negative
    consumption. What was counted before (``before_wh``) is added to the offset from then on."""

    meter: str
    ts: datetime
    before_wh: float
    after_wh: float
    offset_wh: float  # the offset in force from this sample on


def sample_from_switch(meter: str, ts: datetime, sw: dict[str, Any]) -> PowerSample:
    """Validate the fields we store from a (merged) switch status; unknown fields are ignored."""

    def opt(obj: dict[str, Any], key: str, where: str) -> float | None:
        v = obj.get(key)
        return None if v is None else number(v, where)

    def sub(key: str) -> dict[str, Any]:
        # Fix (property tests): ``sw.get(key) or {}`` took 0, false, "" and [] for "no object".
        v = sw.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValidationError(f"switch field {key!r} must be an object")
        return v

    output = sw.get("output")
    if output is not None and not isinstance(output, bool):
        raise ValidationError("switch field 'output' must be true or false")
    return PowerSample(
        meter=meter,
        ts=ts,
        output=output,
        apower=opt(sw, "apower", "apower"),
        voltage=opt(sw, "voltage", "voltage"),
        current=opt(sw, "current", "current"),
        freq=opt(sw, "freq", "freq"),
        pf=opt(sw, "pf", "pf"),
        energy_wh=opt(sub("aenergy"), "total", "aenergy.total"),
        ret_energy_wh=opt(sub("ret_aenergy"), "total", "ret_aenergy.total"),
        temperature_c=opt(sub("temperature"), "tC", "temperature.tC"),
        errors=_errors(sw.get("errors"), sub(FLAGS_KEY)),
    )


def switch_from_sample(sample: PowerSample) -> dict[str, Any]:
    """A stored sample in Shelly's switch-status shape (the inverse of ``sample_from_switch``), so
    the database's latest reading can be the base that NotifyStatus partials merge into."""
    sw: dict[str, Any] = {
        k: v for k in ("output", "apower", "voltage", "current", "freq", "pf")
        if (v := getattr(sample, k)) is not None
    }
    for key, sub, value in (("aenergy", "total", sample.energy_wh),
                            ("ret_aenergy", "total", sample.ret_energy_wh),
                            ("temperature", "tC", sample.temperature_c)):
        if value is not None:
            sw[key] = {sub: value}
    if sample.errors:
        sw["errors"] = list(sample.errors)
    return sw


class SwitchState:
    """The merged switch status of one meter, as a consumer reconstructs it (the bridge and the web
    UI's live feed alike).

    A frame is validated *before* it is merged: a rejected frame leaves the state as it was, so
    one absurd value (``voltage: 5000``) cannot poison every later partial. The state also follows
    the energy counter: a total lower than the one before is a reset (:class:`CounterReset`), and
    the energy counted before it is carried in ``energy_offset_wh`` so that the total counted never
    goes back. A frame older than the newest merged (``last_ts``; a redelivery) is not taken for a
    reset.
    """

    def __init__(self, meter: str) -> None:
        self.meter = check_meter_id(meter)
        self.status: dict[str, Any] = {}
        self.complete = False  # seen a full status since start (else: ask the device)
        self.energy_offset_wh = 0.0
        self.last_ts: datetime | None = None

    def copy(self) -> SwitchState:
        """A copy that a later merge cannot change (merges build new dicts, never edit ``status``)."""
        other = SwitchState(self.meter)
        other.status, other.complete = self.status, self.complete
        other.energy_offset_wh, other.last_ts = self.energy_offset_wh, self.last_ts
        return other

    def restore(self, other: SwitchState) -> None:
        """Take back the state of a :meth:`copy` (a refused frame's effect undone)."""
        self.status, self.complete = other.status, other.complete
        self.energy_offset_wh, self.last_ts = other.energy_offset_wh, other.last_ts

    def apply(self, sw: dict[str, Any], ts: datetime, *, full: bool,
              device_time: bool = True) -> tuple[PowerSample, CounterReset | None]:
        """Take a full status (``full``) or merge the changed fields of a partial one; returns the
        merged sample at ``ts`` (fields never seen yet are None until a full status arrives) and
        the counter reset it shows, if any.

        ``device_time``: ``ts`` is the device's clock (else the receive time of a frame that has
        none). A frame whose device time is older than the newest merged one is late (a redelivery,
        or another bridge's): its row is the current state with its fields, but it changes nothing.
        Receive times are never compared with device times (the two clocks differ)."""
        if device_time and self.last_ts is not None and ts < self.last_ts:
            merged = merge(self.status, sw)
            return replace(sample_from_switch(self.meter, ts, merged), energy_offset_wh=self.energy_offset_wh), None
        merged = _known(copy.deepcopy(sw) if full else merge(self.status, sw))
        sample = sample_from_switch(self.meter, ts, merged)
        before = _energy_total(self.status)
        reset = None
        offset = self.energy_offset_wh
        if before is not None and sample.energy_wh is not None and sample.energy_wh < before * RESET_FRACTION:
            offset += before
            reset = CounterReset(self.meter, ts, before, sample.energy_wh, offset)
        sample = replace(sample, energy_offset_wh=offset)  # validates the offset, before anything changes
        self.status = merged
        self.complete = self.complete or full
        self.energy_offset_wh = offset
        if device_time:
            self.last_ts = ts
        return sample, reset

    def apply_full(self, sw: dict[str, Any], ts: datetime) -> PowerSample:
        return self.apply(sw, ts, full=True)[0]

    def apply_partial(self, sw: dict[str, Any], ts: datetime) -> PowerSample:
        return self.apply(sw, ts, full=False)[0]


# A counter that drops below this fraction of its last total restarted (a reboot, ResetCounters:
# it starts again near 0). A smaller drop is an old value seen again — a Gen1 or status_ntf frame
# redelivered after a bridge crash carries no time to tell it by — never a reset (else what was
# counted would be counted twice). A real reset of a counter that reaches half its old total
# before its first frame is then missed: the total shown goes back by less than that half.
RESET_FRACTION = 0.5

# What a merged status keeps (what we store, with room for the device's bookkeeping): a frame's
# other fields are validated and ignored, so the state stored for other bridges stays small.
_KEPT = {"output": None, "apower": None, "voltage": None, "current": None,
         "freq": None, "pf": None, "errors": None, FLAGS_KEY: None,
         "aenergy": ("total",), "ret_aenergy": ("total",), "temperature": ("tC",)}


def _known(status: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, subkeys in _KEPT.items():
        if key not in status:
            continue
        value = status[key]
        if subkeys is not None and isinstance(value, dict):
            value = {k: value[k] for k in subkeys if k in value}
        elif key == FLAGS_KEY and isinstance(value, dict):
            value = {k: v is True for k, v in value.items() if k in METER_ERRORS}
        out[key] = value
    return out


def _energy_total(status: dict[str, Any]) -> float | None:
    energy = status.get("aenergy")
    total = energy.get("total") if isinstance(energy, dict) else None
    return float(total) if isinstance(total, int | float) and not isinstance(total, bool) else None


# -- building frames (the simulator and the bridge's requests) -------------------------------------

def notification(src: str, method: str, params: dict[str, Any]) -> str:
    return dumps({"src": src, "dst": f"{src}/events", "method": method, "params": params})


def request(req_id: int, src: str, method: str, params: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"id": req_id, "src": src, "method": method}
    if params is not None:
        body["params"] = params
    return dumps(body)


def response(req_id: Any, src: str, dst: str, result: dict[str, Any]) -> str:
    return dumps({"id": req_id, "src": src, "dst": dst, "result": result})


def error_response(req_id: Any, src: str, dst: str, code: int, message: str) -> str:
    return dumps({"id": req_id, "src": src, "dst": dst, "error": {"code": code, "message": message}})


def parse_request(payload: bytes | str) -> tuple[Any, str, str, dict[str, Any]]:
    """(id, src, method, params) of an RPC request sent to a device."""
    data = loads_object(payload, "Shelly RPC request")
    src, method = data.get("src"), data.get("method")
    if not isinstance(src, str) or not src:
        raise ValidationError("RPC request without a 'src'")
    if not isinstance(method, str) or not method:
        raise ValidationError("RPC request without a 'method'")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationError("RPC 'params' must be an object")
    return data.get("id"), src, method, params
