"""The no-data / probe-fault timer's pure logic: bridge.health.SourceHealth and Processor.watch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.health import NO_DATA, PROBE_FAULT, SourceHealth
from bridge.processor import Processor, Stored, Wanted
from plantmodel import Topics
from plantmodel.decode import source_of_topic
from plantmodel.thresholds import Alarm, Threshold, ThresholdSet, default_thresholds

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
P = timedelta(seconds=60)
SRC = "units/1/automates/2"


def health() -> SourceHealth:
    return SourceHealth(T0, P, timedelta(seconds=10))


def processor(*extra: Threshold) -> Processor:
    return Processor(Topics(), ThresholdSet([*default_thresholds(), *extra]))


def watch(p: Processor, h: SourceHealth, now: datetime, sources: list[str] | None = None,
          wanted: list[Wanted] | None = None) -> list[Alarm]:
    def lookup(w: Wanted) -> Stored:
        if wanted is not None:
            wanted.append(w)
        return Stored()

    return p.watch(now, sources or [SRC], lambda src, active: h.values(src, now, active), lookup).alarms


def test_periods_count_from_the_start_then_from_the_newest_valid_message() -> None:
    h = health()
    assert h.values(SRC, T0 + 2 * P, {})[0][NO_DATA] == 2.0  # nothing yet: from the start
    h.saw_valid(SRC, T0 + 2 * P)
    assert h.values(SRC, T0 + 3 * P, {})[0][NO_DATA] == 1.0
    h.saw_valid(SRC, T0 - 10 * P)  # an older message changes nothing
    assert h.values(SRC, T0 + 3 * P, {})[0][NO_DATA] == 1.0
    assert h.values("meters/m1", T0 + timedelta(seconds=25), {})[0][NO_DATA] == 2.5  # the meter period


def test_no_data_raised_after_its_periods_and_cleared_by_valid_data() -> None:
    p, h = processor(), health()
    assert watch(p, h, T0 + 2 * P) == []  # 2 periods: within the default 2.5
    [raised] = watch(p, h, T0 + 3 * P)
    assert (raised.measure, raised.state, raised.value, raised.limit) == (NO_DATA, "active", 3.0, 2.5)
    assert watch(p, h, T0 + 4 * P) == []  # one alarm, not one per tick
    h.saw_valid(SRC, T0 + 4 * P)
    [cleared] = watch(p, h, T0 + 4 * P + timedelta(seconds=1))
    assert (cleared.measure, cleared.state) == (NO_DATA, "cleared")


def test_a_scope_sets_its_own_number_of_periods() -> None:
    p, h = processor(Threshold(NO_DATA, "units/1/automates/2", None, 0.5, 0, "critical")), health()
    [raised] = watch(p, h, T0 + P, [SRC, "units/1/automates/3"])
    assert (raised.source.key, raised.severity) == (SRC, "critical")


def test_probe_fault_carries_the_last_reason_and_clears_on_a_valid_message() -> None:
    p, h = processor(), health()
    h.saw_valid(SRC, T0)
    h.set_rejections(SRC, 2, "field 'tank_temp_c' = -273 is not plausible")
    assert watch(p, h, T0 + timedelta(seconds=5)) == []
    h.set_rejections(SRC, 3, "field 'tank_temp_c' = -273 is not plausible (3)")
    [raised] = watch(p, h, T0 + timedelta(seconds=6))
    assert (raised.measure, raised.value, raised.detail) == (PROBE_FAULT, 3.0,
                                                            "field 'tank_temp_c' = -273 is not plausible (3)")
    assert raised.to_dict()["detail"] == raised.detail
    assert Alarm.from_json(raised.to_json()) == raised
    h.saw_valid(SRC, T0 + timedelta(seconds=7))
    [cleared] = watch(p, h, T0 + timedelta(seconds=8))
    assert (cleared.measure, cleared.state, cleared.detail) == (PROBE_FAULT, "cleared", raised.detail)


def test_a_restart_neither_storms_nor_clears_what_was_raised() -> None:
    before = processor()
    [raised] = watch(before, health(), T0 + 3 * P)
    # The next life starts later; it loads the active alarm, and every other source gets its periods.
    later = T0 + 10 * P
    p, h = processor(), SourceHealth(later, P, P)
    p.alarms.load([raised])
    sources = [SRC, "units/1/automates/3", "units/2/automates/1"]
    assert watch(p, h, later + P, sources) == []
    assert watch(p, h, later + 2 * P, sources) == []
    assert [a.source.key for a in watch(p, h, later + 3 * P, sources)] == sources[1:]
    h.saw_valid(SRC, later + 3 * P)
    assert [(a.source.key, a.state) for a in watch(p, h, later + 3 * P + timedelta(seconds=1), sources)] == [
        (SRC, "cleared")]


def test_a_dry_run_locks_nothing_and_changes_nothing() -> None:
    p, h, wanted = processor(), health(), []
    assert watch(p, h, T0 + 2 * P, wanted=wanted) == []
    assert wanted == [] and p.alarms.active() == []
    watch(p, h, T0 + 3 * P, wanted=wanted)
    assert [w.sources for w in wanted] == [{SRC: None}]  # only the moving source is locked
    assert p.versions[SRC] == 1


def test_a_source_no_longer_expected_clears() -> None:
    p, h = processor(), health()
    watch(p, h, T0 + 3 * P)
    plan = p.watch(T0 + 4 * P, [SRC], lambda src, active: (h.quiet(), {}))
    assert [(a.measure, a.state) for a in plan.alarms] == [(NO_DATA, "cleared")]


def test_rejections_are_attributed_to_the_device_the_topic_names() -> None:
    t = Topics()
    assert source_of_topic(t, "plant/units/3/automates/7/readings") == "units/3/automates/7"
    assert source_of_topic(t, "plant/units/3/status") == "units/3"
    assert source_of_topic(t, "shellypro1pm-a8032ab1c2d3/events/rpc") == "meters/shellypro1pm-a8032ab1c2d3"
    assert source_of_topic(t, "shellies/shelly1pm-x1/relay/0/power") == "meters/shelly1pm-x1"
    assert source_of_topic(t, "something/else/entirely") is None


def test_a_broker_outage_is_excused_from_every_source_silence() -> None:
    h = health()
    h.saw_valid(SRC, T0 + P)
    h.pause(3 * P)  # the bridge was cut from the broker for three periods
    assert h.values(SRC, T0 + 5 * P, {})[0][NO_DATA] == 1.0  # 4 periods since, 3 of them excused
    assert h.values("units/1/automates/9", T0 + 5 * P, {})[0][NO_DATA] == 2.0  # never seen: from the start
