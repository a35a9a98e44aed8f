from __future__ import annotations

import pytest

from plantmodel import AutomateSource, MeterSource, TopicError, Topics, parse_source
from plantmodel.topics import AlarmTopic, ReadingTopic, ShellyTopic, UnitStatusTopic

T = Topics("plant")


def test_build_and_parse_round_trip() -> None:
    assert T.reading(3, 7) == "plant/units/3/automates/7/readings"
    assert T.parse(T.reading(3, 7)) == ReadingTopic(AutomateSource(3, 7))
    assert T.parse(T.unit_status(5)) == UnitStatusTopic(5)
    src = MeterSource("shellypro1pm-a8032ab1c2d3")
    assert T.alarm(src, "apower") == "plant/alarms/meters/shellypro1pm-a8032ab1c2d3/apower"
    assert T.parse(T.alarm(src, "apower")) == AlarmTopic(src, "apower")
    assert T.parse(T.alarm(AutomateSource(3, 7), "ph")) == AlarmTopic(AutomateSource(3, 7), "ph")
    assert T.parse("shellypro1pm-a8032ab1c2d3/events/rpc") == ShellyTopic("shellypro1pm-a8032ab1c2d3", "events/rpc")
    assert T.parse("shellypro1pm-a8032ab1c2d3/status/switch:0").kind == "status/switch:0"
    assert T.parse(Topics.shelly_reply_src("shellypro1pm-x") + "/rpc") == ShellyTopic("shellypro1pm-x", "bridge/rpc")


def test_configurable_root() -> None:
    t = Topics("site2/plant")
    assert t.parse(t.reading(1, 1)) == ReadingTopic(AutomateSource(1, 1))
    with pytest.raises(TopicError):
        t.parse("plant/units/1/automates/1/readings")


@pytest.mark.parametrize("topic", [
    "plant/units/3/automates/7",
    "plant/units/3/automates/7/readings/extra",
    "plant/units/03/automates/7/readings",
    "plant/units/x/automates/7/readings",
    "plant/units/0/automates/7/readings",
    "plant/units/3/bogus",
    "plant/alarms/units/3/automates/7/not_a_measure",
    "shellypro1pm-x/relay/0",
    "bad id!/online",
    "online",
])
def test_unknown_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        T.parse(topic)


def test_sources() -> None:
    assert parse_source("units/3/automates/7") == AutomateSource(3, 7)
    assert parse_source("meters/abc") == MeterSource("abc")
    for bad in ("units/3", "units/-1/automates/2", "meters/a/b", "x"):
        with pytest.raises(ValueError):
            parse_source(bad)
