"""Shelly Gen1 (Shelly 1PM …) on MQTT, as the real device speaks it (DOMAIN.md §2): plain-text
values, one per topic under ``shellies/<id>/``, no timestamps.

Each value becomes the Gen2 switch-status field it means, so that one merge
(:class:`plantmodel.shelly.SwitchState`) serves both generations:

====================================  ==================================  ============================
topic (under ``shellies/<id>/``)      payload                             switch-status fields
====================================  ==================================  ============================
``relay/0``                           ``on`` / ``off`` / ``overpower``    ``output`` (+ overpower flag)
``relay/0/power``                     W, e.g. ``42.17``                   ``apower``
``relay/0/energy``                    **watt-minutes**, e.g. ``2583``     ``aenergy.total`` = W·min / 60
``temperature``                       °C                                  ``temperature.tC``
``overtemperature``                   ``0`` / ``1``                       overtemp flag
``online``                            ``true`` / ``false``                (online / offline)
``announce``                          JSON id, model, mac, fw_ver         (the device registry)
====================================  ==================================  ============================
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import loads_object, optional_text
from plantmodel.shelly import FLAGS_KEY, parse_online
from plantmodel.sources import MeterSource

if TYPE_CHECKING:
    from plantmodel.decode import Event

GENERATION = 1
WATT_MINUTES_PER_WH = 60
# What a real Gen1 device also publishes and we do not store: valid, counted as ignored.
CHATTER = frozenset({
    "temperature_f", "temperature_status", "overpower_value", "voltage", "info", "relay/0/overpower_value",
    "input/0", "input_event/0", "longpush/0", "ext_temperature/0", "ext_temperature_f/0", "ext_humidity/0",
    "ext_switch/0", "relay/0/energy_returned", "loaderror", "overload",
})
MAX_TEXT = 64  # a Gen1 value is a short number or word


def decode(meter: str, kind: str, payload: bytes | str) -> list[Event]:
    # (decode imports this module: its event types are imported when called)
    from plantmodel.decode import Ignored, OnlineEvent, Own, SwitchEvent

    def switch(fields: dict[str, Any]) -> list[Event]:
        return [SwitchEvent(meter, fields, False, None, protocol="gen1")]

    if kind == "relay/0":
        word = _text(payload, kind)
        if word == "overpower":  # the relay was cut for over-power
            return switch({"output": False, FLAGS_KEY: {"overpower": True}})
        if word not in ("on", "off"):
            raise ValidationError(f"Gen1 relay/0 must be on, off or overpower, got {word[:20]!r}")
        return switch({"output": word == "on", FLAGS_KEY: {"overpower": False}})
    if kind == "relay/0/power":
        return switch({"apower": _number(payload, kind)})
    if kind == "relay/0/energy":
        wmin = _number(payload, kind)
        if wmin < 0:
            raise ValidationError(f"Gen1 energy counter {wmin} W·min is negative")
        return switch({"aenergy": {"total": wmin / WATT_MINUTES_PER_WH}})
    if kind == "temperature":
        return switch({"temperature": {"tC": _number(payload, kind)}})
    if kind == "overtemperature":
        flag = _text(payload, kind)
        if flag not in ("0", "1"):
            raise ValidationError(f"Gen1 overtemperature must be 0 or 1, got {flag[:20]!r}")
        return switch({FLAGS_KEY: {"overtemp": flag == "1"}})
    if kind == "online":
        return [OnlineEvent(MeterSource(meter).key, parse_online(payload), None)]
    if kind == "announce":
        return [_announce(meter, payload)]
    if kind == "relay/0/command":
        return [Own("a relay command to a Gen1 meter")]
    if kind in CHATTER:
        return [Ignored(f"Gen1 {kind} is not stored")]
    raise ValidationError(f"unknown Gen1 topic shellies/{meter}/{kind[:64]}")


def _announce(meter: str, payload: bytes | str) -> Event:
    from plantmodel.decode import DeviceInfo

    data = loads_object(payload, "Gen1 announce")
    if data.get("id") != meter:
        raise ValidationError(f"Gen1 announce for id {str(data.get('id'))[:64]!r} published under {meter!r}")
    model = optional_text(data.get("model"), "Gen1 announce field 'model'", 64)
    firmware = optional_text(data.get("fw_ver"), "Gen1 announce field 'fw_ver'", 96)
    return DeviceInfo(MeterSource(meter).key, model, GENERATION, firmware)


def _text(payload: bytes | str, kind: str) -> str:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes | bytearray) else payload
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ValidationError(f"Gen1 {kind} value is {len(text)} characters long (at most {MAX_TEXT})")
    return text


def _number(payload: bytes | str, kind: str) -> float:
    text = _text(payload, kind)
    if "_" in text:  # float() takes 1_000; a device never sends it
        raise ValidationError(f"Gen1 {kind} must be a number, got {text[:20]!r}")
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(f"Gen1 {kind} must be a number, got {text[:20]!r}") from None
    if not math.isfinite(value):
        raise ValidationError(f"Gen1 {kind} must be a finite number, got {text[:20]!r}")
    return value
