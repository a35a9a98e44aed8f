"""Shelly 1PM (Gen1) simulator (pure logic, no MQTT), speaking the Gen1 MQTT API (DOMAIN.md §2).

The same metered EV charger as the Gen2 simulator (:class:`devices.shelly.MeterPhysics`: charger
phases, energy integration, faults), published the Gen1 way, as plain-text values under
``shellies/<id>/``::

    shellies/<id>/online                 true (retained, on connect) / false (last will, retained)
    shellies/<id>/announce               {"id","model","mac","ip","new_fw","fw_ver"} on connect and
                                         on ``announce`` received on shellies/command
    shellies/<id>/relay/0                on / off: at once after a command, and periodically
    shellies/<id>/relay/0/power          instantaneous power, W ("42.17")
    shellies/<id>/relay/0/energy         energy counter, watt-minutes, integer; 0 at every boot
    shellies/<id>/temperature            device temperature, °C ("45.83")
    shellies/<id>/overtemperature        0 / 1

The periodic values are sent together every ``update_period`` seconds (the device's
``mqtt_update_period``, 30 s by default), whether they changed or not. Commands:
``shellies/<id>/relay/0/command`` (``on`` / ``off`` / ``toggle``) and ``shellies/command``
(``announce``); anything else is ignored with a debug log.

Faults: ``apower``, ``energy_wh`` (published × 60 as W·min) and ``temperature_c`` force what the
Gen1 device publishes; the measures a Gen1 1PM does not publish over MQTT (voltage, current, freq,
pf, ret_energy_wh) have nothing to force.
"""

from __future__ import annotations

import logging
import math
import random
from datetime import datetime

from devices.faults import FaultInjector
from devices.shelly import Message, MeterPhysics, mac_of
from plantmodel.jsonutil import dumps
from plantmodel.readings import utcnow
from plantmodel.sources import check_meter_id
from plantmodel.topics import GEN1_COMMAND, Topics

log = logging.getLogger(__name__)

MODEL = "SHSW-PM"  # the Shelly 1PM's Gen1 model code
FW_VER = "20230913-114244/v1.14.0-gcb84623"
UPDATE_PERIOD_S = 30.0  # the device's default mqtt_update_period
OVERTEMP_C = 90.0  # internal temperature from which the simulator reports overtemperature 1
ANNOUNCE_COMMAND_TOPIC = GEN1_COMMAND  # shellies/command: every Gen1 device listens here
ON, OFF = "on", "off"
gen1_topic = Topics.gen1  # shellies/<id>/<suffix>


def watt_minutes(energy_wh: float) -> int:
    """Wh -> the device's whole watt-minutes: floored like a counter, after dropping float noise
    (60 s at 600 W adds up to 9.999999999 Wh, which must read 600, not 599)."""
    return math.floor(round(energy_wh * 60.0, 6))


def _number(value: float) -> str:
    """A Gen1 plain number: two decimals, as the device prints power and temperature."""
    return f"{value:.2f}"


class Shelly1PM:
    """One simulated Shelly 1PM (Gen1), ``<id>`` being the meter id of the layout (e.g.
    ``shelly1pm-A4CF12F45E3B``). Offers the :class:`devices.shelly.MeterDevice` interface."""

    gen = 1

    def __init__(self, meter_id: str, rng: random.Random | None = None, *,
                 update_period: float = UPDATE_PERIOD_S, faults: FaultInjector | None = None,
                 start: datetime | None = None) -> None:
        if not (update_period > 0 and math.isfinite(update_period)):
            raise ValueError("update_period must be a number > 0")
        self.id = check_meter_id(meter_id)
        self.update_period = update_period
        self.mac = mac_of(meter_id)
        # A documentation address (TEST-NET-1), stable per device.
        self.ip = f"192.0.2.{int(self.mac, 16) % 254 + 1}"
        self._rng = rng if rng is not None else random.Random()
        # A Gen1 counter starts from 0 at every boot; starting the simulator is a boot.
        self._meter = MeterPhysics(meter_id, self._rng, faults=faults, energy_wh=0.0)
        self.target = self._meter.target
        boot = (start or utcnow()).timestamp()
        self._last = boot  # device time of the last tick (unix s)
        self._next_update = boot + update_period

        self.command_topic = gen1_topic(self.id, "relay/0/command")
        self.relay_topic = gen1_topic(self.id, "relay/0")
        self.announce_topic = gen1_topic(self.id, "announce")

    @property
    def output(self) -> bool:
        return self._meter.output

    @property
    def energy_wmin(self) -> int:
        """The true energy counter since boot, in watt-minutes (as published without a fault)."""
        return watt_minutes(self._meter.energy_wh)

    # -- MeterDevice interface (MQTT wiring in devices.runner) -----------------------------------
    @property
    def online_topic(self) -> str:
        return gen1_topic(self.id, "online")

    def subscriptions(self) -> list[str]:
        return [self.command_topic, ANNOUNCE_COMMAND_TOPIC]

    def birth(self, now: datetime) -> list[Message]:
        """After ``online`` on every connect: the announce, then every value at once (the next
        periodic update comes ``update_period`` later)."""
        self._next_update = now.timestamp() + self.update_period
        return [self.announce(), *self.report()]

    def tick(self, now: datetime) -> list[Message]:
        """Advance to ``now``; every ``update_period`` the periodic values, otherwise nothing."""
        t = now.timestamp()
        dt = max(0.0, t - self._last)
        self._meter.integrate(dt)  # energy at the power held since the last tick
        self._last = max(self._last, t)
        self._meter.advance(dt)
        if t < self._next_update:
            return []
        nxt = self._next_update + self.update_period
        self._next_update = nxt if nxt > t else t + self.update_period  # after a stall, no burst
        return self.report()

    def report(self) -> list[Message]:
        """The periodic values, as the device sends them every ``mqtt_update_period``. Each report
        takes the next value of the faults on this meter."""
        self._meter.poll_faults()
        v = self._meter.values()
        temp_c = v["temperature_c"]
        return [
            self._relay_state(),
            (gen1_topic(self.id, "relay/0/power"), _number(v["apower"])),
            (gen1_topic(self.id, "relay/0/energy"), str(watt_minutes(v["energy_wh"]))),
            (gen1_topic(self.id, "temperature"), _number(temp_c)),
            (gen1_topic(self.id, "overtemperature"), "1" if temp_c >= OVERTEMP_C else "0"),
        ]

    def announce(self) -> Message:
        # A real device answers `announce` on shellies/announce as well; the broker's ACL lets a
        # meter write only under its own shellies/<id>/ prefix, so the simulator answers there only.
        return self.announce_topic, dumps({"id": self.id, "model": MODEL, "mac": self.mac, "ip": self.ip,
                                           "new_fw": False, "fw_ver": FW_VER})

    def _relay_state(self) -> Message:
        return self.relay_topic, ON if self.output else OFF

    # -- commands -------------------------------------------------------------------------------
    def handle_message(self, topic: str, payload: bytes | str, now: datetime | None = None) -> list[Message]:
        """A command received: ``on`` / ``off`` / ``toggle`` on ``relay/0/command`` switch the relay
        and publish its state at once; ``announce`` on ``shellies/command`` publishes the
        announce. Anything else is ignored (debug log), as the device does."""
        try:
            text = (payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload).strip()
        except UnicodeDecodeError:
            log.debug("%s: ignoring a non UTF-8 payload on %s", self.id, topic)
            return []
        if topic == self.command_topic:
            if text in (ON, OFF):
                self.set_output(text == ON)
            elif text == "toggle":
                self.set_output(not self.output)
            else:
                log.debug("%s: ignoring relay command %r", self.id, text[:50])
                return []
            return [self._relay_state()]
        if topic == ANNOUNCE_COMMAND_TOPIC:
            if text == "announce":
                return [self.announce()]
            log.debug("%s: ignoring %r on %s", self.id, text[:50], topic)
            return []
        log.debug("%s: ignoring a message on %s", self.id, topic)
        return []

    def set_output(self, on: bool) -> bool:
        """Switch the relay; returns whether it was on."""
        return self._meter.switch(on)
