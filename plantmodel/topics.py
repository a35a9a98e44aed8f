"""The topic tree. Every topic the stack publishes or subscribes to is built or parsed here.

``<root>`` defaults to ``plant``::

    <root>/units/<u>/automates/<a>/readings    reading (QoS 1)
    <root>/units/<u>/status                    DeviceStatus, retained (birth + last will)
    <root>/alarms/units/<u>/automates/<a>/<measure>   Alarm, retained current state
    <root>/alarms/meters/<meter>/<measure>     Alarm, retained current state
    <root>/bridge/status                       DeviceStatus of the bridge, retained
    <root>/bridge/health/<mqtt user>           ServiceHealth of one bridge, retained (services page)
    <root>/webui/alarms                        an alarm a web UI process changed (acknowledged): the others push it
    <root>/confirm/units/<u>                   Confirmation of committed readings, retained (bridge -> unit)
    <shelly-prefix>/online                     true / false (Shelly Gen2, last will)
    <shelly-prefix>/events/rpc                 NotifyStatus / NotifyFullStatus / NotifyEvent
    <shelly-prefix>/status/switch:0            full switch status (when status_ntf is on)
    <shelly-prefix>/rpc                        RPC requests to the device
    <shelly-prefix>/bridge/rpc                 RPC answers to the bridge (its requests' ``src``)
    <shelly-prefix>/webui/rpc                  RPC answers to the web UI (remote switching)
    shellies/<id>/relay/0                      Shelly Gen1: on / off (/power W, /energy W·min, /command)
    shellies/<id>/online | announce | temperature | overtemperature    Shelly Gen1
    shellies/command                           Gen1 broadcast command (``announce``)
    <root>/legacy/units/<u>/automates/<a>/readings   reading without seq of a legacy HTTP sender (/collector/info)
    <root>/legacy/meters/<id>/power            PowerSample of a legacy HTTP sender (the web UI's /webhook/)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plantmodel.errors import TopicError, ValidationError
from plantmodel.measures import MEASURES
from plantmodel.sources import AutomateSource, MeterSource, Source, check_meter_id, parse_source

_ROOT_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
_NUM_RE = re.compile(r"[1-9][0-9]{0,3}")

# Shelly Gen2 topics under a device prefix, and the ``src`` suffix the bridge's requests carry so
# that the device answers under its *own* prefix (the ACL lets a meter write nowhere else).
SHELLY_SUFFIXES = ("online", "events/rpc", "status/switch:0", "bridge/rpc", "webui/rpc")
BRIDGE_RPC_SUFFIX = "bridge"
WEBUI_RPC_SUFFIX = "webui"
GEN1_ROOT = "shellies"  # Shelly Gen1 devices publish under shellies/<id>/ whatever their configuration
GEN1_COMMAND = f"{GEN1_ROOT}/command"


@dataclass(frozen=True, slots=True)
class ReadingTopic:
    source: AutomateSource


@dataclass(frozen=True, slots=True)
class UnitStatusTopic:
    unit: int


@dataclass(frozen=True, slots=True)
class ConfirmTopic:
    unit: int


@dataclass(frozen=True, slots=True)
class AlarmTopic:
    source: Source
    measure: str


@dataclass(frozen=True, slots=True)
class ShellyTopic:
    meter: str  # the device's topic prefix (by default its id)
    kind: str  # one of SHELLY_SUFFIXES


@dataclass(frozen=True, slots=True)
class Gen1Topic:
    meter: str  # the Gen1 device id (shelly1pm-…)
    kind: str  # what follows shellies/<id>/: relay/0, relay/0/power, online, announce, …


@dataclass(frozen=True, slots=True)
class Gen1CommandTopic:
    """``shellies/command``: a broadcast to every Gen1 device (ours: ``announce``)."""


@dataclass(frozen=True, slots=True)
class MeterPowerTopic:
    meter: str


@dataclass(frozen=True, slots=True)
class LegacyReadingTopic:
    """A legacy HTTP sender's reading, published by the web UI (only it may write there)."""

    source: AutomateSource


ParsedTopic = (ReadingTopic | UnitStatusTopic | AlarmTopic | ShellyTopic | ConfirmTopic | Gen1Topic
               | Gen1CommandTopic | MeterPowerTopic | LegacyReadingTopic)


class Topics:
    """Topic builder/parser for one topic root."""

    def __init__(self, root: str = "plant") -> None:
        if not _ROOT_RE.fullmatch(root):
            raise ValidationError(f"invalid topic root {root!r}")
        self.root = root
        self._root_parts = root.split("/")

    # -- building -------------------------------------------------------------------------
    def reading(self, unit: int, automate: int) -> str:
        return f"{self.root}/{AutomateSource(unit, automate).key}/readings"

    def unit_status(self, unit: int) -> str:
        return f"{self.root}/units/{unit}/status"

    def unit_prefix(self, unit: int) -> str:
        """Everything a unit may publish under (used by the ACL)."""
        return f"{self.root}/units/{unit}/#"

    def alarm(self, source: Source, measure: str) -> str:
        return f"{self.root}/alarms/{source.key}/{measure}"

    def bridge_status(self) -> str:
        return f"{self.root}/bridge/status"

    def bridge_health(self, user: str = "+") -> str:
        """Where the bridge logged in as ``user`` reports its own health (``+``: every bridge's)."""
        return f"{self.root}/bridge/health/{user}"

    def webui_alarm_changes(self) -> str:
        """Where a web UI process says it changed an alarm (an acknowledgement), so that every other
        process behind the proxy pushes it to its browsers too."""
        return f"{self.root}/webui/alarms"

    def is_bridge_own(self, topic: str) -> bool:
        """A topic the bridges publish about themselves (status, health): nothing to store."""
        return topic == self.bridge_status() or topic.startswith(f"{self.root}/bridge/health/")

    def confirmation(self, unit: int) -> str:
        """Where the bridge confirms a unit's committed readings (see :mod:`plantmodel.confirm`)."""
        return f"{self.root}/confirm/units/{AutomateSource(unit, 1).unit}"

    @staticmethod
    def shelly(meter: str, suffix: str) -> str:
        if suffix not in SHELLY_SUFFIXES and suffix != "rpc":
            raise ValueError(f"unknown Shelly topic suffix {suffix!r}")
        return f"{check_meter_id(meter)}/{suffix}"

    @staticmethod
    def gen1(meter: str, suffix: str) -> str:
        """``shellies/<id>/<suffix>`` (``relay/0/command``, ``announce``, …) of a Gen1 device."""
        return f"{GEN1_ROOT}/{check_meter_id(meter)}/{suffix}"

    def meter_power(self, meter: str) -> str:
        """Where the web UI publishes what a legacy HTTP sender (``/webhook/``) posted for a meter."""
        return f"{self.root}/legacy/meters/{check_meter_id(meter)}/power"

    def legacy_reading(self, unit: int, automate: int) -> str:
        """Where the web UI publishes a legacy HTTP sender's reading (``/collector/info``): a tree
        of its own, so that the web UI's MQTT user cannot write where the units do."""
        return f"{self.root}/legacy/{AutomateSource(unit, automate).key}/readings"

    def legacy_publications(self) -> list[str]:
        """What the web UI may publish for the legacy HTTP senders (the ACL's lines)."""
        return [f"{self.root}/legacy/units/+/automates/+/readings", f"{self.root}/legacy/meters/+/power"]

    @staticmethod
    def webui_reply_src(meter: str) -> str:
        """``src`` of the web UI's RPC requests (remote switching): answers on ``<meter>/webui/rpc``."""
        return f"{check_meter_id(meter)}/{WEBUI_RPC_SUFFIX}"

    @staticmethod
    def rpc_reply(src: str) -> str:
        """Where a Shelly answers an RPC request: ``<src>/rpc``, ``src`` being the requester's."""
        return f"{src}/rpc"

    @staticmethod
    def shelly_reply_src(meter: str) -> str:
        """``src`` for the bridge's RPC requests: the answer comes back on ``<src>/rpc``."""
        return f"{check_meter_id(meter)}/{BRIDGE_RPC_SUFFIX}"

    # -- subscriptions ----------------------------------------------------------------------
    def bridge_subscriptions(self) -> list[str]:
        """Everything: every topic a device may publish on (a unit its whole subtree, a meter its
        whole prefix) must reach the bridge, to be stored or recorded as rejected, never ignored.
        Our own publications come back too; the bridge recognises and skips them."""
        return ["#"]

    def partition_subscriptions(self, units: list[int], meters: list[str]) -> list[str]:
        """What one bridge of a partitioned group listens to: the whole subtree of each of its
        units and the whole prefix of each of its meters. Over all partitions this is every topic
        a device may publish on (the broker's ACL allows a device nothing else)."""
        return ([f"{self.root}/units/{u}/#" for u in units] + [f"{m}/#" for m in meters]
                + [f"{GEN1_ROOT}/{m}/#" for m in meters] + [f"{self.root}/legacy/units/{u}/#" for u in units]
                + [f"{self.root}/legacy/meters/{m}/#" for m in meters])

    def live_subscriptions(self) -> list[str]:
        """What the web UI listens to: readings, unit status, alarms and meters' events."""
        return [
            f"{self.root}/units/+/automates/+/readings",
            f"{self.root}/units/+/status",
            f"{self.root}/alarms/#",
            "+/online",
            "+/events/rpc",
            "+/status/switch:0",
            "+/bridge/rpc",
            "+/webui/rpc",
            f"{GEN1_ROOT}/+/relay/0",
            f"{GEN1_ROOT}/+/relay/0/power",
            f"{GEN1_ROOT}/+/relay/0/energy",
            f"{GEN1_ROOT}/+/online",
            f"{GEN1_ROOT}/+/overtemperature",
            f"{GEN1_ROOT}/+/temperature",
            *self.legacy_publications(),
        ]

    # -- parsing ------------------------------------------------------------------------------
    def parse(self, topic: str) -> ParsedTopic:
        """Parse any topic of the tree, raising :class:`TopicError` for anything else."""
        parts = topic.split("/")
        n = len(self._root_parts)
        if parts[:n] == self._root_parts:
            rest = parts[n:]
            if len(rest) == 5 and rest[0] == "units" and rest[2] == "automates" and rest[4] == "readings":
                return ReadingTopic(AutomateSource(self._num(rest[1], topic), self._num(rest[3], topic)))
            if len(rest) == 3 and rest[0] == "units" and rest[2] == "status":
                return UnitStatusTopic(self._num(rest[1], topic))
            if len(rest) == 3 and rest[0] == "confirm" and rest[1] == "units":
                return ConfirmTopic(self._num(rest[2], topic))
            if len(rest) == 4 and rest[:2] == ["legacy", "meters"] and rest[3] == "power":
                try:
                    return MeterPowerTopic(check_meter_id(rest[2]))
                except ValidationError:
                    pass
            if len(rest) == 6 and rest[:2] == ["legacy", "units"] and rest[3] == "automates" and rest[5] == "readings":
                return LegacyReadingTopic(AutomateSource(self._num(rest[2], topic), self._num(rest[4], topic)))
            if len(rest) >= 3 and rest[0] == "alarms" and rest[-1] in MEASURES:
                try:
                    return AlarmTopic(parse_source("/".join(rest[1:-1])), rest[-1])
                except ValidationError:
                    pass
            raise TopicError(f"unknown topic {topic!r}")
        if parts[0] == GEN1_ROOT:
            if topic == GEN1_COMMAND:
                return Gen1CommandTopic()
            if len(parts) >= 3:
                try:
                    return Gen1Topic(check_meter_id(parts[1]), "/".join(parts[2:]))
                except ValidationError:
                    pass
            raise TopicError(f"unknown topic {topic!r}")
        if len(parts) >= 2:
            prefix, suffix = parts[0], "/".join(parts[1:])
            if suffix in SHELLY_SUFFIXES:
                try:
                    return ShellyTopic(check_meter_id(prefix), suffix)
                except ValidationError:
                    pass
        raise TopicError(f"unknown topic {topic!r}")

    @staticmethod
    def _num(text: str, topic: str) -> int:
        if not _NUM_RE.fullmatch(text):
            raise TopicError(f"unknown topic {topic!r}: {text!r} is not a unit/automate number")
        return int(text)


__all__ = [
    "AlarmTopic",
    "ConfirmTopic",
    "Gen1CommandTopic",
    "Gen1Topic",
    "LegacyReadingTopic",
    "MeterPowerTopic",
    "MeterSource",
    "ParsedTopic",
    "ReadingTopic",
    "ShellyTopic",
    "Topics",
    "UnitStatusTopic",
]
