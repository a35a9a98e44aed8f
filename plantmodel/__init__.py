"""The plant's message model, shared by devices, bridge and web UI.

Everything that crosses MQTT is built and parsed here: readings, device status, alarms,
Shelly Gen2 RPC frames, topic names and thresholds. Nothing in this package does I/O.
"""

from plantmodel.errors import PlantModelError, TopicError, ValidationError
from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_MEASURES, Measure
from plantmodel.readings import Reading, format_ts, parse_ts, utcnow
from plantmodel.sources import AutomateSource, MeterSource, Source, parse_source
from plantmodel.status import DeviceStatus
from plantmodel.topics import Topics

__all__ = [
    "AUTOMATE_MEASURES",
    "MEASURES",
    "METER_MEASURES",
    "AutomateSource",
    "DeviceStatus",
    "Measure",
    "MeterSource",
    "PlantModelError",
    "Reading",
    "Source",
    "TopicError",
    "Topics",
    "ValidationError",
    "format_ts",
    "parse_source",
    "parse_ts",
    "utcnow",
]
