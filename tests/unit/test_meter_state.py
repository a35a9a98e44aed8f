"""A meter's merged state (plantmodel.shelly.SwitchState) as both generations feed it, and the
bridge's handling of meters that are Gen1, fed by a legacy sender or disabled (pure logic)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bridge.processor import Processor, RawMessage
from plantmodel import Topics
from plantmodel.errors import ValidationError
from plantmodel.shelly import PowerSample, SwitchState, sample_from_switch
from plantmodel.thresholds import ThresholdSet, default_thresholds
from webui.live import LiveTranslator

METER = "shellypro1pm-a8032ab1c2d3"
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def energy(wh: float) -> dict[str, object]:
    return {"aenergy": {"total": wh}}


def test_a_counter_back_near_zero_is_a_reset_and_the_total_keeps_counting() -> None:
    st = SwitchState(METER)
    st.apply({"output": True, **energy(1000.0)}, T0, full=True)
    sample, reset = st.apply(energy(2.5), T0 + timedelta(seconds=10), full=False)
    assert reset is not None and (reset.before_wh, reset.after_wh, reset.offset_wh) == (1000.0, 2.5, 1000.0)
    assert (sample.energy_wh, sample.energy_offset_wh, sample.energy_total_wh) == (2.5, 1000.0, 1002.5)
    sample, reset = st.apply(energy(4.0), T0 + timedelta(seconds=20), full=False)
    assert reset is None and sample.energy_total_wh == 1004.0


def test_an_old_value_seen_again_without_a_time_is_not_a_reset() -> None:
    """A Gen1 energy value redelivered after a bridge crash comes with a new receive time: it must
    not be taken for a reset (that would count everything twice)."""
    st = SwitchState(METER)
    rx = T0
    for wh in (1000.0, 1010.0, 1000.0, 1010.0):  # the last two: the redelivery
        rx += timedelta(seconds=1)
        sample, reset = st.apply(energy(wh), rx, full=False, device_time=False)
        assert reset is None
    assert (sample.energy_offset_wh, sample.energy_total_wh) == (0.0, 1010.0)


def test_a_late_frame_is_stored_but_changes_nothing() -> None:
    st = SwitchState(METER)
    st.apply({"apower": 100.0, **energy(1010.0)}, T0 + timedelta(seconds=10), full=True)
    late, reset = st.apply({"apower": 50.0, **energy(1005.0)}, T0 + timedelta(seconds=5), full=False)
    assert reset is None and (late.apower, late.energy_wh, late.ts) == (50.0, 1005.0, T0 + timedelta(seconds=5))
    now, _ = st.apply({"voltage": 230.0}, T0 + timedelta(seconds=20), full=False)
    assert (now.apower, now.energy_wh) == (100.0, 1010.0)  # the late frame did not roll the state back


def test_receive_times_and_device_times_are_not_compared() -> None:
    """status_ntf (no time: stored at the receive time) beside NotifyStatus (device time), on a
    device whose clock is 10 s behind: the reset in the NotifyStatus is still seen."""
    st = SwitchState(METER)
    st.apply({"output": True, **energy(1000.0)}, T0 + timedelta(seconds=10), full=True, device_time=False)
    _, reset = st.apply(energy(0.5), T0 + timedelta(seconds=2), full=False)
    assert reset is not None and reset.offset_wh == 1000.0


def test_the_merged_state_keeps_only_what_is_stored() -> None:
    st = SwitchState(METER)
    st.apply({"apower": 1.0, "source": "x" * 100_000, "new_field": {"deep": [1] * 10_000},
              "aenergy": {"total": 5.0, "by_minute": [1.0] * 10_000}}, T0, full=True)
    assert len(json.dumps(st.status)) < 200


def test_error_names_must_fit_their_column() -> None:
    with pytest.raises(ValidationError, match="255"):
        sample_from_switch(METER, T0, {"errors": [f"{i}" + "e" * 31 for i in range(9)]})


def frame(topic: str, payload: object, at: datetime) -> RawMessage:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return RawMessage(topic, body.encode(), at)


def proc() -> Processor:
    return Processor(Topics(), ThresholdSet(default_thresholds()))


def test_a_gen1_meter_is_registered_as_such_and_never_asked_over_rpc() -> None:
    p = proc()
    plan = p.process([frame(f"shellies/{METER}/relay/0/power", "42.5", T0)])
    assert plan.device_info[f"meters/{METER}"].generation == 1
    assert plan.publish == [] and p.status_requests(T0 + timedelta(hours=1)) == []


def test_a_legacy_sample_does_not_stop_the_status_requests_of_a_gen2_meter() -> None:
    p = proc()
    sample = PowerSample(METER, T0, None, 1.0, 230.0, 0.1, None, None, 5.0, None, None)
    p.process([frame(f"plant/legacy/meters/{METER}/power", sample.to_json(), T0)])
    plan = p.process([frame(f"{METER}/online", "true", T0 + timedelta(seconds=1))])
    assert [json.loads(o.payload)["method"] for o in plan.publish] == ["Shelly.GetStatus", "Shelly.GetDeviceInfo"]


def test_a_disabled_meter_is_refused_and_left_alone() -> None:
    p = proc()
    p.process([frame(f"{METER}/online", "true", T0)])
    p.set_disabled(frozenset({f"meters/{METER}"}))
    plan = p.process([frame(f"{METER}/events/rpc", {"src": METER, "method": "NotifyStatus",
                                                    "params": {"ts": T0.timestamp(), "switch:0": {"apower": 1}}},
                            T0 + timedelta(seconds=1))])
    assert [r for _, r in plan.rejected] == [f"device meters/{METER} is disabled by an administrator: "
                                             "its data is not stored"]
    assert plan.publish == [] and p.status_requests(T0 + timedelta(hours=1)) == []


def test_the_live_view_does_not_keep_a_seeded_error_forever() -> None:
    live = LiveTranslator(Topics(), clock=lambda: T0 + timedelta(minutes=1))
    live.seed(PowerSample(METER, T0, True, 1.0, None, None, None, None, None, None, None, errors=("overtemp",)))
    (update,) = live.translate(f"shellies/{METER}/overtemperature", b"0")
    assert update.data["errors"] == []  # type: ignore[union-attr]


def test_only_legacy_readings_go_without_a_seq_and_only_on_their_own_topic() -> None:
    from plantmodel.decode import Decoder
    from tests.unit.test_model import EXAMPLE

    decoder, t = Decoder(Topics()), Topics()
    with_seq = json.dumps(EXAMPLE)
    without = json.dumps({k: v for k, v in EXAMPLE.items() if k != "seq"})
    assert decoder.decode(t.reading(3, 7), with_seq) and decoder.decode(t.legacy_reading(3, 7), without)
    with pytest.raises(ValidationError, match="missing field 'seq'"):
        decoder.decode(t.reading(3, 7), without)  # a unit (or the web UI's user, denied there anyway)
    with pytest.raises(ValidationError, match="carries no 'seq'"):
        decoder.decode(t.legacy_reading(3, 7), with_seq)  # the web UI may not number them itself


def test_switches_left_pending_by_a_stopped_web_ui_are_closed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from store import models as orm
    from store.db import create_db_engine, init_schema, make_sessionmaker
    from store.queries import close_abandoned_switches

    engine = create_db_engine(f"sqlite:///{tmp_path / 'p.db'}")
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        for minutes, outcome in ((10, "pending"), (0, "pending"), (10, "confirmed")):
            s.add(orm.SwitchAction(meter_id=METER, requested_at=T0 - timedelta(minutes=minutes), requested_by="op",
                                   to_state="off", outcome=outcome))
    with sessions.begin() as s:
        assert close_abandoned_switches(s, T0 - timedelta(minutes=1)) == 1
    with sessions() as s:
        rows = s.query(orm.SwitchAction).order_by(orm.SwitchAction.id).all()
        assert [r.outcome for r in rows] == ["error", "pending", "confirmed"]  # a recent one may still be answered
    engine.dispose()
