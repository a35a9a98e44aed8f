"""Shelly Pro 1PM simulator (pure logic, no MQTT), behaving like the Gen2 device (DOMAIN.md §2).

The meter measures an EV charger that cycles idle → ramp → plateau → taper → idle
(:class:`MeterPhysics`, shared with the Gen1 simulator of :mod:`devices.shelly1`). Each
:meth:`ShellyPro1PM.tick` returns the MQTT messages the real device would publish: a
``NotifyStatus`` with only the fields that changed notably since the last notification (never
an unchanged value), plus the full status on ``status/switch:0`` when ``status_ntf`` is on.

Both simulators offer the interface :class:`MeterDevice` that the MQTT runner drives.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import random
import re
from datetime import UTC, datetime
from typing import Any, Protocol

from devices.faults import FaultInjector
from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps
from plantmodel.readings import utcnow
from plantmodel.shelly import SWITCH_KEY, error_response, notification, parse_request, response
from plantmodel.sources import MeterSource, check_meter_id
from plantmodel.topics import Topics

log = logging.getLogger(__name__)

MODEL = "SPSW-201PE16EU"
FIRMWARE_VERSION = "1.4.4"
FIRMWARE_ID = "20241011-114455/1.4.4-g6d2a586"

# Gen2 RPC error codes.
ERR_INVALID_ARGUMENT = -103
ERR_NOT_FOUND = -105
ERR_METHOD_NOT_FOUND = -114

# Charger cycle: phase durations in seconds (so the cycle does not depend on the tick period).
IDLE_S = (30.0, 180.0)
RAMP_S = (10.0, 30.0)
PLATEAU_S = (120.0, 900.0)
TAPER_S = (20.0, 60.0)
IDLE_W = (1.0, 3.0)
PLATEAU_W = (1500.0, 3400.0)  # stays under the 3500 W alert threshold unless a fault forces it
PLATEAU_NOISE = 0.001  # relative; well under the notification threshold

# What the device considers a notable change (DOMAIN.md §2: about 5 % or 10 W of power).
POWER_DELTA_W = 10.0
POWER_DELTA_REL = 0.05
CURRENT_DELTA_A = 0.1
PF_DELTA = 0.05
VOLTAGE_DELTA_V = 1.0
FREQ_DELTA_HZ = 0.05
TEMP_DELTA_C = 1.0
POWER_GROUP = ("apower", "current", "pf")  # sent together so a consumer's current matches its power

# Meter measure (fault target) -> switch status field it overrides.
MEASURE_FIELDS = {
    "apower": "apower", "voltage": "voltage", "current": "current", "freq": "freq", "pf": "pf",
    "energy_wh": "aenergy", "ret_energy_wh": "ret_aenergy", "temperature_c": "temperature",
}


Message = tuple[str, str]  # (topic, payload) a device publishes (QoS 1, not retained)


class MeterDevice(Protocol):
    """What the MQTT runner needs of a simulated meter, Gen1 or Gen2."""

    id: str
    gen: int

    @property
    def online_topic(self) -> str:
        """Retained ``true`` on connect, ``false`` as last will."""
        ...

    def subscriptions(self) -> list[str]:
        """Topics the device subscribes to on every (re)connect."""
        ...

    def birth(self, now: datetime) -> list[Message]:
        """What the device publishes right after its ``online`` message, on every connect."""
        ...

    def tick(self, now: datetime) -> list[Message]:
        """Advance to ``now``; what the device publishes."""
        ...

    def handle_message(self, topic: str, payload: bytes | str, now: datetime | None = None) -> list[Message]:
        """A message received on one of :meth:`subscriptions`; what the device publishes in answer."""
        ...


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChargerLoad:
    """An EV charger's active power over time."""

    def __init__(self, rng: random.Random, *, random_start: bool = True) -> None:
        self._rng = rng
        self._idle()
        if random_start:
            # A meter powers up wherever its charger happens to be in its cycle, often mid-session.
            self._left = self._rng.uniform(0.0, 10.0)
            self.advance(self._rng.uniform(0.0, RAMP_S[0] + PLATEAU_S[0]))

    def _idle(self) -> None:
        self.phase = "idle"
        self._duration = self._left = self._rng.uniform(*IDLE_S)
        self._idle_w = round(self._rng.uniform(*IDLE_W), 1)
        self.power = self._idle_w

    def _next_phase(self) -> None:
        if self.phase == "idle":
            self.phase, span = "ramp", RAMP_S
            self._plateau_w = self._rng.uniform(*PLATEAU_W)  # each charging session its own car
        elif self.phase == "ramp":
            self.phase, span = "plateau", PLATEAU_S
        elif self.phase == "plateau":
            self.phase, span = "taper", TAPER_S
        else:
            self._idle()
            return
        self._duration = self._rng.uniform(*span)
        self._left += self._duration

    def reset(self) -> None:
        """Switched off and on again: the charger starts idle."""
        self._idle()

    def advance(self, dt: float) -> float:
        self._left -= dt
        while self._left <= 0:
            self._next_phase()
        progress = 1.0 - self._left / self._duration
        if self.phase == "idle":
            p = self._idle_w
        elif self.phase == "ramp":
            p = self._idle_w + (self._plateau_w - self._idle_w) * progress
        elif self.phase == "plateau":
            p = self._plateau_w * (1.0 + self._rng.gauss(0.0, PLATEAU_NOISE))
        else:
            p = self._plateau_w + (self._idle_w - self._plateau_w) * progress
        self.power = round(p, 1)
        return self.power


def power_factor(apower: float) -> float:
    """A charger's power factor: poor at standby, near 1 while charging, 0 without load."""
    if apower <= 0:
        return 0.0
    return 0.5 + 0.48 * min(1.0, apower / 500.0)


def mac_of(meter: str) -> str:
    """The device's MAC (12 upper-case hex digits): the tail of a Shelly id such as
    ``shellypro1pm-a8032ab1c2d3``, otherwise derived from the id."""
    tail = meter.rsplit("-", 1)[-1]
    if re.fullmatch(r"[0-9a-fA-F]{12}", tail):
        return tail.upper()
    return hashlib.sha256(meter.encode()).hexdigest()[:12].upper()


def reply_topic(src: str) -> str:
    """Where a Gen2 device answers a request: ``<src>/rpc``."""
    return Topics.rpc_reply(src)


def _valid_src(src: str) -> bool:
    return not any(c in src for c in "+#\x00") and not src.startswith("$")


class MeterPhysics:
    """What a 1PM meters, whatever its generation: an EV charger behind the relay, the mains
    (voltage, frequency), the device's own temperature and its energy counter, plus the faults
    (:mod:`devices.faults`) that override the published values of its measures.

    The simulators own the time: they call :meth:`integrate` (energy at the power held since the
    last tick) then :meth:`advance`, and :meth:`poll_faults` once per report.
    """

    def __init__(self, meter_id: str, rng: random.Random, *, faults: FaultInjector | None = None,
                 energy_wh: float | None = None) -> None:
        self.target = MeterSource(meter_id).key  # fault target: meters/<id>
        self._rng = rng
        self._faults = faults
        self.output = True
        self.load = ChargerLoad(rng)
        self.voltage = rng.uniform(229.0, 231.0)
        self.freq = 50.0 + rng.uniform(-0.02, 0.02)
        self.temp_c = rng.uniform(31.0, 34.0)
        # None: a device that has been in use for a while (a counter that survives reboots).
        self.energy_wh = rng.uniform(1_000.0, 50_000.0) if energy_wh is None else energy_wh
        self.forced: dict[str, float] = {}  # fault values in effect (measure -> value)

    @property
    def power_w(self) -> float:
        """The true active power: the charger's while the relay is on, none while it is off."""
        return self.load.power if self.output else 0.0

    def integrate(self, dt: float) -> float:
        """Add ``dt`` seconds of energy at the present power; returns that power (W)."""
        p = self.power_w
        self.energy_wh += p * max(0.0, dt) / 3600.0
        return p

    def advance(self, dt: float) -> None:
        """Move the electrical and thermal state ``dt`` seconds forward."""
        if self.output:
            self.load.advance(dt)
        self.voltage = min(232.0, max(228.0, self.voltage + self._rng.gauss(0.0, 0.15)))
        self.freq = min(50.05, max(49.95, self.freq + self._rng.gauss(0.0, 0.005)))
        # The relay heats with the load, with a few minutes' lag.
        target = 32.0 + 25.0 * self.power_w / PLATEAU_W[1]
        self.temp_c += (target - self.temp_c) * (1.0 - math.exp(-dt / 180.0))

    def poll_faults(self) -> dict[str, float]:
        """Take the next value of every fault on this meter (advances their cycles)."""
        if self._faults is not None:
            self.forced = self._faults.forced(self.target)
        return self.forced

    def true_values(self) -> dict[str, float]:
        return {"apower": self.power_w, "voltage": self.voltage, "freq": self.freq,
                "temperature_c": self.temp_c, "energy_wh": self.energy_wh, "ret_energy_wh": 0.0}

    def values(self) -> dict[str, float]:
        """Measure -> value to publish: the true values, overridden by the faults in effect (which
        may add ``current`` and ``pf``)."""
        return {**self.true_values(), **self.forced}

    def switch(self, on: bool) -> bool:
        """Switch the relay; returns whether it was on. Switched on again, the charger starts idle."""
        was_on = self.output
        if on != was_on:
            self.output = on
            self.load.reset()
        return was_on


class ShellyPro1PM:
    """One simulated Shelly Pro 1PM (device id = MQTT topic prefix)."""

    gen = 2

    def __init__(self, meter_id: str, rng: random.Random | None = None, *,
                 energy_interval: float = 60.0, status_ntf: bool = False,
                 faults: FaultInjector | None = None, start: datetime | None = None) -> None:
        if energy_interval <= 0:
            raise ValueError("energy_interval must be > 0")
        self.id = check_meter_id(meter_id)
        self.energy_interval = energy_interval
        self.status_ntf = status_ntf
        self.mac = mac_of(meter_id)
        self._rng = rng if rng is not None else random.Random()
        self._meter = MeterPhysics(meter_id, self._rng, faults=faults)
        self.target = self._meter.target
        self._boot = (start or utcnow()).timestamp()
        self._last = self._boot  # device time of the last tick (unix s)

        self.source = "init"
        self._minute_start = math.floor(self._boot / energy_interval) * energy_interval
        self._minute_mwh = 0.0
        self._by_minute = [0.0, 0.0, 0.0]

        self.status = self._compose()
        self._reported = copy.deepcopy(self.status)  # what consumers know (they asked GetStatus)

    @property
    def output(self) -> bool:
        return self._meter.output

    # -- MeterDevice interface (MQTT wiring in devices.runner) -----------------------------------
    @property
    def online_topic(self) -> str:
        return Topics.shelly(self.id, "online")

    def subscriptions(self) -> list[str]:
        return [Topics.shelly(self.id, "rpc")]

    def birth(self, now: datetime) -> list[Message]:
        # Nothing but `online`: status is sent on change, a late consumer asks Switch.GetStatus.
        return []

    def handle_message(self, topic: str, payload: bytes | str, now: datetime | None = None) -> list[Message]:
        if topic != Topics.shelly(self.id, "rpc"):
            log.debug("%s: ignoring a message on %s", self.id, topic)
            return []
        answer = self.handle_rpc(payload, now)
        return [] if answer is None else [answer]

    # -- physics ---------------------------------------------------------------------------
    def _advance(self, dt: float) -> None:
        """Move the electrical and thermal state ``dt`` seconds forward."""
        self._meter.advance(dt)

    def _integrate(self, t0: float, t1: float) -> bool:
        """Energy from t0 to t1 at the present power; True when a minute boundary was crossed."""
        p, rolled, t = self._meter.integrate(t1 - t0), False, t0
        while t < t1:
            end = min(t1, self._minute_start + self.energy_interval)
            self._minute_mwh += p * (end - t) / 3.6  # W·s -> mWh
            t = end
            if t >= self._minute_start + self.energy_interval:
                self._by_minute = [self._minute_mwh, *self._by_minute[:2]]
                self._minute_mwh = 0.0
                self._minute_start += self.energy_interval
                rolled = True
        return rolled

    def _compose(self) -> dict[str, Any]:
        """The full switch status: true values, overridden by the faults in effect; pf and current
        follow the (possibly forced) power so that current = P / (V·pf) always holds."""
        v = self._meter.values()
        apower, voltage = round(v["apower"], 1), round(v["voltage"], 1)
        pf = round(v["pf"] if "pf" in v else power_factor(apower), 2)
        # From the published (rounded) values, so a consumer finds the same relation.
        current = apower / (voltage * pf) if voltage * pf > 0 else 0.0
        current = v.get("current", current)
        minute_ts = int(self._minute_start)
        temp_c = round(v["temperature_c"], 1)
        return {
            "id": 0,
            "source": self.source,
            "output": self.output,
            "apower": apower,
            "voltage": voltage,
            "current": round(current, 3),
            "freq": round(v["freq"], 2),
            "pf": pf,
            "aenergy": {"total": round(v["energy_wh"], 3),
                        "by_minute": [round(x, 3) for x in self._by_minute], "minute_ts": minute_ts},
            "ret_aenergy": {"total": round(v["ret_energy_wh"], 3), "by_minute": [0.0, 0.0, 0.0],
                            "minute_ts": minute_ts},
            "temperature": {"tC": temp_c, "tF": round(temp_c * 9 / 5 + 32, 1)},
        }

    # -- notifications ----------------------------------------------------------------------
    def tick(self, now: datetime) -> list[Message]:
        """Advance to ``now``; the (topic, payload) messages the device publishes."""
        t = now.timestamp()
        dt = max(0.0, t - self._last)
        rolled = self._integrate(self._last, t)  # energy at the power held since the last tick
        self._last = max(self._last, t)
        self._advance(dt)
        self._meter.poll_faults()
        self.status = self._compose()
        changed = self._changes(self.status, rolled)
        if not changed:
            return []
        self._reported.update(copy.deepcopy(changed))
        params = {"ts": round(t, 2), SWITCH_KEY: {"id": 0, **changed}}
        messages = [(Topics.shelly(self.id, "events/rpc"), notification(self.id, "NotifyStatus", params))]
        if self.status_ntf:
            messages.append((Topics.shelly(self.id, "status/switch:0"), dumps(self.status)))
        return messages

    def _changes(self, status: dict[str, Any], rolled: bool) -> dict[str, Any]:
        """The fields of ``status`` a NotifyStatus must carry (never an unchanged one)."""
        old = self._reported
        forced = {MEASURE_FIELDS[m] for m in self._meter.forced}
        out: dict[str, Any] = {k: status[k] for k in ("source", "output") if status[k] != old[k]}

        def notable(key: str, delta: float) -> bool:
            new, prev = status[key], old[key]
            if new == prev:
                return False
            # A forced value is published exactly, however small its change.
            return key in forced or abs(new - prev) >= delta

        # "5 % or 10 W": whichever is reached first.
        power_delta = min(POWER_DELTA_W, POWER_DELTA_REL * abs(old["apower"]))
        if notable("apower", power_delta) or notable("current", CURRENT_DELTA_A) or notable("pf", PF_DELTA):
            out.update({k: status[k] for k in POWER_GROUP if status[k] != old[k]})
        for key, delta in (("voltage", VOLTAGE_DELTA_V), ("freq", FREQ_DELTA_HZ)):
            if notable(key, delta):
                out[key] = status[key]
        t_new, t_old = status["temperature"]["tC"], old["temperature"]["tC"]
        if t_new != t_old and ("temperature" in forced or abs(t_new - t_old) >= TEMP_DELTA_C):
            out["temperature"] = dict(status["temperature"])
        for key in ("aenergy", "ret_aenergy"):
            if (rolled and status[key] != old[key]) or (
                    key in forced and status[key]["total"] != old[key]["total"]):
                out[key] = copy.deepcopy(status[key])
        return out

    # -- RPC ------------------------------------------------------------------------------------
    def handle_rpc(self, payload: bytes | str, now: datetime | None = None) -> tuple[str, str] | None:
        """Answer a request received on ``<id>/rpc``: (topic, payload), or None when the request
        is malformed (logged and ignored, as the device does)."""
        try:
            req_id, src, method, params = parse_request(payload)
        except ValidationError as exc:
            log.warning("%s: ignoring malformed RPC request: %s", self.id, exc.reason)
            return None
        if not _valid_src(src):
            log.warning("%s: ignoring RPC request with unusable src %r", self.id, src)
            return None
        try:
            result = self._call(method, params, now or utcnow())
        except RpcError as exc:
            return reply_topic(src), error_response(req_id, self.id, src, exc.code, exc.message)
        return reply_topic(src), response(req_id, self.id, src, result)

    def _call(self, method: str, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        if method == "Switch.GetStatus":
            self._check_switch_id(params)
            return copy.deepcopy(self.status)
        if method == "Switch.Set":
            self._check_switch_id(params)
            on = params.get("on")
            if not isinstance(on, bool):
                raise RpcError(ERR_INVALID_ARGUMENT, "Missing or invalid argument 'on'!")
            return {"was_on": self.set_output(on)}
        if method == "Shelly.GetStatus":
            return {SWITCH_KEY: copy.deepcopy(self.status), "sys": self._sys(now),
                    "mqtt": {"connected": True}}
        if method == "Shelly.GetDeviceInfo":
            return {"name": None, "id": self.id, "mac": self.mac, "slot": 0, "model": MODEL, "gen": 2,
                    "fw_id": FIRMWARE_ID, "ver": FIRMWARE_VERSION, "app": "Pro1PM",
                    "auth_en": False, "auth_domain": None}
        raise RpcError(ERR_METHOD_NOT_FOUND, f"Method {method} not found!")

    @staticmethod
    def _check_switch_id(params: dict[str, Any]) -> None:
        sw_id = params.get("id")
        if sw_id != 0 or isinstance(sw_id, bool):
            raise RpcError(ERR_NOT_FOUND, f"Argument 'id', value {sw_id} not found!")

    def _sys(self, now: datetime) -> dict[str, Any]:
        t = now.astimezone(UTC)
        return {"mac": self.mac, "restart_required": False, "time": t.strftime("%H:%M"),
                "unixtime": int(t.timestamp()), "uptime": max(0, int(t.timestamp() - self._boot)),
                "available_updates": {}}

    def set_output(self, on: bool) -> bool:
        """Switch the relay; returns whether it was on. The change is notified at the next tick."""
        was_on = self._meter.switch(on)
        if on != was_on:
            self.source = "MQTT"
            self.status = self._compose()
        return was_on
