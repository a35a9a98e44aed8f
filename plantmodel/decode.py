"""One decoder for every device protocol: topic + payload -> typed events.

The bridge (which stores) and the web UI's live feed (which shows) both decode through
:class:`Decoder`; neither reads a device payload on its own. One adapter per protocol:

===================  =====================================================  ==========================
protocol             topics                                                 adapter
===================  =====================================================  ==========================
our units            ``<root>/units/<u>/automates/<a>/readings``, ``…/status``  :mod:`plantmodel.readings`
Shelly Gen2 (+3/4)   ``<prefix>/online``, ``events/rpc``, ``status/switch:0``,  :mod:`plantmodel.shelly`
                     ``bridge/rpc``, ``webui/rpc``
Shelly Gen1          ``shellies/<id>/relay/0[/power|/energy]``, ``online``,     :mod:`plantmodel.shelly1`
                     ``announce``, ``temperature``, ``overtemperature``
legacy HTTP          ``<root>/legacy/units/…/readings``, ``<root>/legacy/meters/<id>/power``  :mod:`plantmodel.legacy`
===================  =====================================================  ==========================

Every meter protocol becomes :class:`SwitchEvent`: fields of a Gen2 switch status (a Gen1 power
value is ``{"apower": …}``, its watt-minutes ``{"aenergy": {"total": Wh}}``), full or partial, with
the device's time when it says one. :class:`plantmodel.shelly.SwitchState` merges them the same way
for both consumers. A payload that cannot be decoded raises :class:`ValidationError` (the bridge
records it as rejected, the live feed skips it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plantmodel import shelly, shelly1
from plantmodel.errors import ValidationError
from plantmodel.jsonutil import loads_object
from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample, RpcNotification, RpcResponse, switch_from_sample
from plantmodel.sources import METER_ID_RE, MeterSource, unit_key
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Alarm
from plantmodel.topics import (
    AlarmTopic,
    ConfirmTopic,
    Gen1CommandTopic,
    Gen1Topic,
    LegacyReadingTopic,
    MeterPowerTopic,
    ReadingTopic,
    ShellyTopic,
    Topics,
    UnitStatusTopic,
)


@dataclass(frozen=True, slots=True)
class ReadingEvent:
    reading: Reading


@dataclass(frozen=True, slots=True)
class OnlineEvent:
    """A device came online or went offline (``device``: ``units/3`` or ``meters/<id>``)."""

    device: str
    online: bool
    ts: datetime | None  # the device's time; None: it says none (take the receive time)


@dataclass(frozen=True, slots=True)
class SwitchEvent:
    """Fields of a meter's switch status: the whole status (``full``) or only what changed."""

    meter: str
    status: dict[str, Any]
    full: bool
    ts: datetime | None  # the device's time; None: it says none (stored under the receive time)
    answer: bool = False  # an answer to the bridge's Shelly.GetStatus
    protocol: str = "gen2"  # gen2 | gen1 | legacy: only a Gen2 meter can be asked for its status


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a device says of itself (Gen2 ``Shelly.GetDeviceInfo``, Gen1 announce, a unit's birth)."""

    device: str
    model: str | None
    generation: int | None
    firmware: str | None


@dataclass(frozen=True, slots=True)
class AskStatus:
    """This meter must be asked for its full status (it came online: it resends only changes)."""

    meter: str


@dataclass(frozen=True, slots=True)
class RpcAnswer:
    """A meter's answer to a request of the web UI (remote switching), or one that carries no status."""

    meter: str
    to: str  # "bridge" | "webui"
    response: RpcResponse


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """An alarm as the bridge published it (parsed on demand: only the live feed needs it)."""

    topic: AlarmTopic
    payload: bytes

    def alarm(self) -> Alarm:
        alarm = Alarm.from_json(self.payload)
        if alarm.key != (self.topic.source.key, self.topic.measure):
            raise ValidationError(f"alarm for {alarm.key} published on another topic")
        return alarm


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid device message with nothing to store (a button event, Wi-Fi chatter …)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Own:
    """One of the stack's own publications (the bridge's status, confirmations, requests, commands)."""

    what: str


Event = (ReadingEvent | OnlineEvent | SwitchEvent | DeviceInfo | AskStatus | RpcAnswer | AlarmEvent | Ignored
         | Own)


def device_of(event: Event) -> str | None:
    """The registry key of the device an event comes from (None: not a device's data)."""
    match event:
        case ReadingEvent(reading=r):
            return unit_key(r.unit)
        case OnlineEvent(device=d) | DeviceInfo(device=d):
            return d
        case SwitchEvent(meter=m) | AskStatus(meter=m):
            return MeterSource(m).key
    return None


class Decoder:
    """Topic + payload -> events, for one topic root. Stateless (merging is SwitchState's)."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    def decode(self, topic: str, payload: bytes | str) -> list[Event]:
        if self.topics.is_bridge_own(topic):
            return [Own("the bridge's status or health")]
        if topic == self.topics.webui_alarm_changes():
            return [Own("a web UI's alarm change")]
        parts = topic.split("/")
        if len(parts) == 2 and parts[1] == "rpc":
            return [self._rpc_request(parts[0], payload)]
        parsed = self.topics.parse(topic)
        match parsed:
            case ReadingTopic(source=src) | LegacyReadingTopic(source=src):
                reading = Reading.from_json(payload)
                if (reading.unit, reading.automate) != (src.unit, src.automate):
                    raise ValidationError(f"payload is for unit {reading.unit} automate {reading.automate} "
                                          f"but was published on {src.key}")
                # A unit numbers its readings; a legacy HTTP sender's (only the web UI publishes
                # those, in a tree of their own) are numbered by the bridge.
                legacy = isinstance(parsed, LegacyReadingTopic)
                if legacy != (reading.seq is None):
                    raise ValidationError("a legacy sender's reading carries no 'seq'" if legacy
                                          else "missing field 'seq'")
                return [ReadingEvent(reading)]
            case UnitStatusTopic(unit=unit):
                return _unit_status(unit, payload)
            case AlarmTopic():
                return [AlarmEvent(parsed, payload if isinstance(payload, bytes) else payload.encode())]
            case ConfirmTopic():
                return [Own("a confirmation to a unit")]
            case Gen1CommandTopic():
                return [Own("a Gen1 broadcast command")]
            case ShellyTopic(meter=meter, kind=kind):
                return _gen2(meter, kind, payload)
            case Gen1Topic(meter=meter, kind=kind):
                return shelly1.decode(meter, kind, payload)
            case MeterPowerTopic(meter=meter):
                return [_legacy_power(meter, payload)]
        raise AssertionError(f"unhandled topic {parsed!r}")  # pragma: no cover (parse is exhaustive)

    @staticmethod
    def _rpc_request(meter: str, payload: bytes | str) -> Event:
        """``<meter>/rpc``: requests of the bridge and the web UI come back through '#'; anything
        else there was published by the meter itself (its ACL allows its whole prefix)."""
        try:
            _id, src, _method, _params = shelly.parse_request(payload)
            if src in (Topics.shelly_reply_src(meter), Topics.webui_reply_src(meter)):
                return Own("an RPC request to a meter")
        except ValidationError:
            pass
        raise ValidationError("not stored: an RPC request on the meter's request topic not sent by the bridge "
                              "or the web UI")


def _unit_status(unit: int, payload: bytes | str) -> list[Event]:
    status = DeviceStatus.from_json(payload)
    events: list[Event] = [OnlineEvent(unit_key(unit), status.state == "online", status.ts)]
    if status.model is not None or status.firmware is not None:
        events.append(DeviceInfo(unit_key(unit), status.model, None, status.firmware))
    return events


def _gen2(meter: str, kind: str, payload: bytes | str) -> list[Event]:
    if kind == "online":
        online = shelly.parse_online(payload)
        # (Re)connected: what it sends next are only changes, so ask for everything.
        return [OnlineEvent(MeterSource(meter).key, online, None), *([AskStatus(meter)] if online else [])]
    if kind == "status/switch:0":
        # status_ntf: the full status, without a time: stored under the receive time.
        return [SwitchEvent(meter, shelly.parse_switch_status(payload), True, None)]
    frame = shelly.parse_rpc_frame(payload)
    if isinstance(frame, RpcNotification):
        sw = frame.switch
        if sw is None or frame.method == "NotifyEvent":
            # Device chatter with no measurement (a button event, Wi-Fi signal, a firmware update
            # notice): known, valid and not ours to store. Counted, not rejected, or a real Gen2
            # device would fill rejected_messages with healthy traffic.
            return [Ignored(f"{frame.method} without a {shelly.SWITCH_KEY} status")]
        return [SwitchEvent(meter, sw, frame.method == "NotifyFullStatus", frame.ts)]
    to = kind.split("/")[0]  # bridge/rpc | webui/rpc
    if to == "webui":
        return [RpcAnswer(meter, to, frame)]
    if frame.error is not None:
        raise ValidationError(f"not stored: the meter answered an RPC with an error: {frame.error}")
    info = shelly.device_info(frame)
    if info is not None:
        model, generation, firmware = info
        return [DeviceInfo(MeterSource(meter).key, model, generation, firmware)]
    sw, ts = frame.switch_status()
    if sw is None:
        raise ValidationError(f"not stored: RPC answer without a {shelly.SWITCH_KEY} status")
    return [SwitchEvent(meter, sw, True, ts, answer=True)]


def _legacy_power(meter: str, payload: bytes | str) -> Event:
    """A legacy HTTP sender's sample, as the web UI published it: a full status at its time."""
    sample = PowerSample.from_dict(loads_object(payload, "power sample"))
    if sample.meter != meter:
        raise ValidationError(f"payload is for meter {sample.meter!r} but was published for {meter!r}")
    return SwitchEvent(meter, switch_from_sample(sample), True, sample.ts, protocol="legacy")


def source_of_topic(topics: Topics, topic: str) -> str | None:
    """The device a topic names, as a source key: an automate's (``units/3/automates/7``) for its
    readings, a unit's (``units/3``) for its status, a meter's (``meters/<id>``) for any of its
    topics. None: no device (one of our own topics, or a topic of no known form). A rejected
    message is recorded with it, so that rejections are attributed (and a probe fault raised)."""
    parts = topic.split("/")
    if len(parts) == 2 and parts[1] == "rpc":  # <meter>/rpc: checked before parse, as decode does
        prefix = parts[0]
        return f"meters/{prefix}" if METER_ID_RE.fullmatch(prefix) else None
    try:
        parsed = topics.parse(topic)
    except ValidationError:
        return None
    match parsed:
        case ReadingTopic(source=src) | LegacyReadingTopic(source=src):
            return src.key
        case UnitStatusTopic(unit=unit):
            return unit_key(unit)
        case ShellyTopic(meter=meter) | Gen1Topic(meter=meter) | MeterPowerTopic(meter=meter):
            return MeterSource(meter).key
    return None
