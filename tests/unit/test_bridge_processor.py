"""The bridge's pure processing step: messages in, rows/alarms/publishes out."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from bridge.processor import BatchPlan, MeterStatus, Processor, RawMessage, Stored, StoredReading, StoredSample, Wanted
from bridge.service import Failure, classify
from plantmodel import Topics, format_ts
from plantmodel.sequence import SeqState
from plantmodel.shelly import notification, response
from plantmodel.thresholds import AlarmEngine, ThresholdSet, default_thresholds
from tests.unit.test_model import EXAMPLE

NOW = datetime(2026, 11, 21, 10, 15, 1, tzinfo=UTC)
METER = "shellypro1pm-a8032ab1c2d3"
T = Topics()


def msg(topic: str, payload: object, at: datetime = NOW) -> RawMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(topic, raw, at, 1, 1)


def reading(seq: int = 1, secs: int = 0, **values: object) -> RawMessage:
    ts = datetime(2026, 11, 21, 10, 15, tzinfo=UTC) + timedelta(seconds=secs)
    body = {**EXAMPLE, "seq": seq, "ts": format_ts(ts), **values}
    return msg(T.reading(body["unit"], body["automate"]), body)


def proc() -> Processor:
    return Processor(T, ThresholdSet(default_thresholds()))


def test_valid_reading_is_planned_for_storage() -> None:
    plan = proc().process([reading()])
    assert [r.seq for r, _ in plan.readings] == [1] and plan.rejected == [] and plan.alarms == []


def test_each_bad_message_is_rejected_and_the_rest_flows() -> None:
    batch = [
        reading(seq=1),
        msg(T.reading(3, 7), b"not json"),
        msg(T.reading(3, 7), b'{"unit": 3, "automate": 7, "ph": NaN}'),
        msg(T.reading(3, 8), {**EXAMPLE, "seq": 2}),  # payload says automate 7
        msg("plant/units/3/bogus", {"x": 1}),
        reading(seq=2, secs=1),
    ]
    plan = proc().process(batch)
    assert [r.seq for r, _ in plan.readings] == [1, 2]
    reasons = [reason for _, reason in plan.rejected]
    assert len(reasons) == 4
    assert "not valid JSON" in reasons[0]
    assert "not a number" in reasons[1]
    assert "published on units/3/automates/8" in reasons[2]
    assert "unknown topic" in reasons[3]


def test_future_timestamps_are_rejected() -> None:
    p = Processor(T, ThresholdSet([]), max_future_skew=60)
    plan = p.process([reading(secs=3600)])
    assert plan.readings == [] and "future" in plan.rejected[0][1]


def test_alarm_published_retained_and_not_twice_on_redelivery() -> None:
    p = proc()
    plan = p.process([reading(seq=1, tank_temp_c=4.6)])
    (alarm,) = plan.alarms
    (out,) = [o for o in plan.publish if "/alarms/" in o.topic]
    assert out.topic == "plant/alarms/units/3/automates/7/tank_temp_c" and out.retain
    assert json.loads(out.payload)["state"] == "active"
    assert alarm.value == 4.6
    # The broker redelivers the same message (e.g. we crashed before the ack): no new alarm.
    assert p.process([reading(seq=1, tank_temp_c=4.6)]).alarms == []


def test_undo_after_failed_write_replays_identically() -> None:
    p = proc()
    first = p.process([reading(seq=1, tank_temp_c=4.6)])
    p.undo()
    again = p.process([reading(seq=1, tank_temp_c=4.6)])
    assert [a.to_dict() for a in again.alarms] == [a.to_dict() for a in first.alarms]


def test_seq_gaps_are_counted() -> None:
    p = proc()
    assert p.process([reading(seq=1), reading(seq=2, secs=1), reading(seq=6, secs=2)]).gaps == 1


def test_unit_status() -> None:
    plan = proc().process([msg(T.unit_status(3), {"state": "offline", "ts": "2026-11-21T10:00:00.000Z"})])
    assert plan.states[0][:2] == ("units/3", "offline")


def switch(**fields: object) -> dict:
    base = {"id": 0, "source": "init", "output": True, "apower": 1200.0, "voltage": 230.1, "current": 5.3,
            "freq": 50.0, "pf": 0.98, "aenergy": {"total": 1000.0, "by_minute": [0, 0, 0], "minute_ts": 1},
            "ret_aenergy": {"total": 0.0, "by_minute": [0, 0, 0], "minute_ts": 1},
            "temperature": {"tC": 40.0, "tF": 104.0}}
    return {**base, **fields}


def test_shelly_first_seen_asks_for_status_then_merges_partials() -> None:
    p = proc()
    events = f"{METER}/events/rpc"
    partial = json.loads(notification(METER, "NotifyStatus",
                                      {"ts": 1795000000.5, "switch:0": {"id": 0, "apower": 1500.0}}))
    plan = p.process([msg(events, partial)])
    # Stored with what it says; the fields it does not carry are unknown until a full status.
    (sample, _), = plan.samples
    assert (sample.apower, sample.voltage) == (1500.0, None)
    (ask,) = plan.publish
    req = json.loads(ask.payload)
    assert ask.topic == f"{METER}/rpc" and req["method"] == "Shelly.GetStatus" and req["src"] == f"{METER}/bridge"

    answer = json.loads(response(req["id"], METER, req["src"],
                                 {"switch:0": switch(), "sys": {"unixtime": 1795000001}}))
    plan = p.process([msg(f"{METER}/bridge/rpc", answer)])
    (sample, _), = plan.samples
    assert (sample.apower, sample.voltage, sample.energy_wh, sample.temperature_c) == (1200.0, 230.1, 1000.0, 40.0)

    partial = json.loads(notification(METER, "NotifyStatus", {"ts": 1795000002.25, "switch:0": {
        "id": 0, "apower": 3800.0, "aenergy": {"total": 1001.5}}}))
    plan = p.process([msg(events, partial)])
    (sample, _), = plan.samples
    assert (sample.apower, sample.voltage, sample.energy_wh) == (3800.0, 230.1, 1001.5)
    assert sample.ts == datetime.fromtimestamp(1795000002.25, UTC)
    assert [a.measure for a in plan.alarms] == ["apower"]  # above 3500 W


def test_shelly_online_asks_again_and_bad_frames_are_rejected() -> None:
    p = proc()
    plan = p.process([msg(f"{METER}/online", b"true"), msg(f"{METER}/online", b"maybe"),
                      msg(f"{METER}/events/rpc", {"method": "NotifyStatus"})])
    assert plan.states[0][:2] == (f"meters/{METER}", "online")
    # Its full status, and what it is (for the device registry).
    assert [(o.topic, json.loads(o.payload)["method"]) for o in plan.publish] == [
        (f"{METER}/rpc", "Shelly.GetStatus"), (f"{METER}/rpc", "Shelly.GetDeviceInfo")]
    assert len(plan.rejected) == 2


# -- ingest you can trust ---------------------------------------------------------------------------

def partial_frame(ts: float, **fields: object) -> dict:
    return json.loads(notification(METER, "NotifyStatus", {"ts": ts, "switch:0": {"id": 0, **fields}}))


def full_frame(ts: float, **fields: object) -> dict:
    return json.loads(notification(METER, "NotifyFullStatus", {"ts": ts, "switch:0": switch(**fields)}))


def test_a_bad_meter_frame_leaves_the_state_as_it_was_and_asks_for_a_full_status() -> None:
    p = proc()
    events = f"{METER}/events/rpc"
    p.process([msg(events, full_frame(1795000000.0))])
    plan = p.process([msg(events, partial_frame(1795000001.0, voltage=5000))])
    assert plan.samples == [] and "voltage = 5000" in plan.rejected[0][1]
    assert [json.loads(o.payload)["method"] for o in plan.publish] == ["Shelly.GetStatus"]
    plan = p.process([msg(events, partial_frame(1795000002.0, apower=900.0))])
    (sample, _), = plan.samples
    assert (sample.apower, sample.voltage) == (900.0, 230.1) and plan.rejected == []


def test_a_reading_stamped_ahead_does_not_mask_the_next_alarm() -> None:
    p = proc()
    plan = p.process([reading(seq=1, secs=240), reading(seq=2, secs=1, salmonella_ppm=80)])
    assert [(a.measure, a.state) for a in plan.alarms] == [("salmonella_ppm", "active")]


def test_a_reading_far_in_the_future_is_rejected_and_its_seq_settled() -> None:
    p = Processor(T, ThresholdSet(default_thresholds()), max_future_skew=300)
    plan = p.process([reading(seq=0), reading(seq=1, secs=23 * 3600), reading(seq=2, secs=2, ph=7.5)])
    assert [r.seq for r, _ in plan.readings] == [0, 2] and "in the future" in plan.rejected[0][1]
    assert [a.measure for a in plan.alarms] == ["ph"]
    assert p.sequences.states[(3, 7)].confirmed == 2


def test_a_reading_or_sample_older_than_the_raw_retention_is_rejected() -> None:
    """Its original may already be purged (store/retention.py): stored again, it would be counted a
    second time in the rollups, which are kept longer than the raw rows."""
    p = Processor(T, ThresholdSet([]), max_age_days=730)
    day = 86400
    plan = p.process([reading(seq=0, secs=-729 * day), reading(seq=1, secs=-731 * day), reading(seq=2)])
    assert [r.seq for r, _ in plan.readings] == [0, 2]
    ((rejected, reason),) = plan.rejected
    assert json.loads(rejected.payload)["seq"] == 1
    assert "too old" in reason and "RETENTION_RAW_DAYS=730" in reason
    assert p.sequences.states[(3, 7)].confirmed == 2  # settled: the unit is not asked to resend it
    events = f"{METER}/events/rpc"
    now = NOW.timestamp()
    plan = p.process([msg(events, full_frame(now - 731 * day)), msg(events, full_frame(now - 1))])
    assert [s.ts.timestamp() for s, _ in plan.samples] == [now - 1]
    assert "too old" in plan.rejected[0][1]
    # A shorter retention is honoured too.
    plan = Processor(T, ThresholdSet([]), max_age_days=30).process([reading(seq=1, secs=-31 * day)])
    assert plan.readings == [] and "RETENTION_RAW_DAYS=30" in plan.rejected[0][1]


def stored_as(rows: dict) -> object:
    def lookup(wanted: Wanted) -> Stored:
        return Stored({k: v for k, v in rows.items() if k in wanted.readings}, {})
    return lookup


def test_a_reading_that_conflicts_with_the_stored_one_is_rejected_naming_it() -> None:
    r = reading(seq=1, ph=7.0)
    body = json.loads(r.payload)
    ts = datetime.fromisoformat(body["ts"].replace("Z", "+00:00"))
    measures = {k: body[k] for k in ("tank_temp_c", "ext_temp_c", "milk_kg", "product_kg", "ph", "k_mg_l",
                                     "nacl_g_l", "salmonella_ppm", "ecoli_ppm", "listeria_ppm")}
    same = {(3, 7, ts): StoredReading(42, 1, measures)}
    plan = proc().process([r], stored_as(same))
    assert plan.readings == [] and plan.rejected == [] and plan.duplicates == 1
    other = {(3, 7, ts): StoredReading(42, 1, {**measures, "ph": 6.9})}
    plan = proc().process([r], stored_as(other))
    assert plan.readings == [] and "conflicts with the stored reading" in plan.rejected[0][1]
    assert "id 42" in plan.rejected[0][1]
    # The same inside one batch: the second, different one is refused too.
    plan = proc().process([r, reading(seq=2, ph=7.1)])
    assert len(plan.readings) == 1 and "earlier in this batch" in plan.rejected[0][1]


def test_every_topic_is_stored_rejected_or_known_as_ours() -> None:
    own_request = shelly_request = json.dumps({"id": 1, "src": f"{METER}/bridge", "method": "Shelly.GetStatus"})
    batch = [
        msg(f"{METER}/events/rpc/x", {"a": 1}),
        msg(f"{METER}/rpc", own_request.encode()),
        msg(f"{METER}/rpc", json.dumps({"id": 1, "src": "me", "method": "Switch.Set"}).encode()),
        msg("plant/alarms/units/3/automates/7/ph", b"{}"),
        msg(T.confirmation(3), b"{}"),
        msg(T.bridge_status(), b"{}"),
        msg(f"{METER}/events/rpc", json.loads(notification(METER, "NotifyEvent", {"ts": 1795000000.0}))),
        msg(f"{METER}/events/rpc", json.loads(notification(METER, "NotifyStatus", {"ts": 1795000000.0,
                                                                                   "wifi": {"rssi": -60}}))),
    ]
    del shelly_request
    plan = proc().process(batch)
    reasons = [r for _, r in plan.rejected]
    assert len(reasons) == 2, reasons
    assert "unknown topic" in reasons[0] and "not sent by the bridge" in reasons[1]
    assert plan.ignored == 2  # device chatter without a measurement: counted, not stored


def test_our_bug_holds_the_message_instead_of_rejecting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    p = proc()

    def boom(*_a: object) -> list:
        raise RuntimeError("bug")

    monkeypatch.setattr(AlarmEngine, "evaluate", boom)
    plan = p.process([reading(seq=1), msg(T.reading(3, 7), b"junk")])
    assert [m.topic for m, _ in plan.held] == [T.reading(3, 7)] and "RuntimeError" in plan.held[0][1]
    assert len(plan.rejected) == 1  # the junk one, a real bad message


def test_confirmation_is_published_retained_after_each_batch() -> None:
    plan = proc().process([reading(seq=0), reading(seq=1, secs=1)])
    (conf,) = [o for o in plan.publish if o.topic == T.confirmation(3)]
    assert conf.retain and json.loads(conf.payload)["automates"]["7"]["confirmed"] == 1


def test_messages_the_database_refused_are_recorded_with_its_reason() -> None:
    p = proc()
    p.process([reading(seq=4)])
    plan = p.process([reading(seq=5, secs=1)], reject_reason="the database refused it: (1264, 'Out of range')")
    assert plan.readings == [] and plan.rejected[0][1].startswith("the database refused it")
    assert p.sequences.states[(3, 7)].settled(5)


def test_meters_are_asked_for_a_full_status_periodically() -> None:
    p = Processor(T, ThresholdSet([]), status_refresh=60, rpc_retry=5)
    p.process([msg(f"{METER}/events/rpc", full_frame(1795000000.0))])
    assert p.status_requests(NOW + timedelta(seconds=30)) == []
    (ask,) = p.status_requests(NOW + timedelta(seconds=61))
    assert ask.topic == f"{METER}/rpc"
    p.process([msg(f"{METER}/online", b"false")])
    assert p.status_requests(NOW + timedelta(seconds=200)) == []  # offline: nobody to ask


@pytest.mark.parametrize(("exc", "failure"), [
    (OperationalError("INSERT", {}, Exception(2013, "Lost connection")), Failure.TRANSIENT),
    (OperationalError("INSERT", {}, Exception(1213, "Deadlock found")), Failure.TRANSIENT),
    (OperationalError("INSERT", {}, Exception("database is locked")), Failure.TRANSIENT),
    (DataError("INSERT", {}, Exception(1264, "Out of range value for column 'seq'")), Failure.DATA),
    (IntegrityError("INSERT", {}, Exception(1452, "foreign key")), Failure.DATA),
    (OperationalError("INSERT", {}, Exception(4025, "CONSTRAINT failed")), Failure.DATA),
    (ProgrammingError("INSERT", {}, Exception(1064, "syntax")), Failure.BUG),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), Failure.BUG),
])
def test_database_failures_are_classified(exc: BaseException, failure: Failure) -> None:
    assert classify(exc) is failure


def test_a_frame_with_an_implausible_device_time_is_rejected_not_held() -> None:
    plan = proc().process([msg(f"{METER}/events/rpc", partial_frame(12.0, apower=5.0)),
                           msg(f"{METER}/bridge/rpc", json.loads(response(1, METER, f"{METER}/bridge", {
                               "switch:0": switch(), "sys": {"unixtime": "soon"}})))])
    assert plan.held == [] and len(plan.rejected) == 2


def test_two_status_answers_in_one_second_are_not_a_conflict() -> None:
    p = proc()
    first = json.loads(response(1, METER, f"{METER}/bridge", {"switch:0": switch(), "sys": {"unixtime": 1795000001}}))
    second = json.loads(response(2, METER, f"{METER}/bridge", {"switch:0": switch(apower=1300.0),
                                                               "sys": {"unixtime": 1795000001}}))
    plan = p.process([msg(f"{METER}/bridge/rpc", first), msg(f"{METER}/bridge/rpc", second)])
    assert len(plan.samples) == 1 and plan.rejected == [] and plan.duplicates == 1
    plan = p.process([msg(f"{METER}/events/rpc", partial_frame(1795000002.0, voltage=231.0))])
    assert plan.samples[0][0].apower == 1300.0  # the state took the second answer


def test_a_frame_refused_as_conflicting_leaves_the_meter_state_as_it_was() -> None:
    p = proc()
    events = f"{METER}/events/rpc"
    p.process([msg(events, full_frame(1795000000.0, apower=100.0))])
    stored = {(METER, datetime.fromtimestamp(1795000001.0, UTC)): StoredSample(7, p.process(
        [msg(events, partial_frame(1795000001.0, apower=100.0))]).samples[0][0])}

    def lookup(wanted: Wanted) -> Stored:
        return Stored({}, {k: v for k, v in stored.items() if k in wanted.samples})

    plan = p.process([msg(events, partial_frame(1795000001.0, apower=3900.0))], lookup)
    assert "conflicts with the stored power reading" in plan.rejected[0][1] and "id 7" in plan.rejected[0][1]
    plan = p.process([msg(events, partial_frame(1795000002.0, voltage=231.0))])
    assert plan.samples[0][0].apower == 100.0 and plan.alarms == []


def test_time_the_bridge_was_down_does_not_expire_an_open_gap() -> None:
    p = Processor(T, ThresholdSet([]), gap_timeout=60)
    down_since = NOW - timedelta(hours=1)
    p.load_sequences({(3, 7): SeqState(confirmed=0, newest=5, newest_ts=NOW, max_ts=NOW, ahead=[[4, 5]],
                                       gap_since=down_since)}, NOW)
    plan = p.process([reading(seq=6, secs=6)])
    assert plan.lost == [] and p.sequences.states[(3, 7)].missing == (1, 3)


def test_a_seq_jumping_far_ahead_is_rejected_and_does_not_silence_the_next_readings() -> None:
    p = proc()
    p.process([reading(seq=n, secs=n, boot="A") for n in range(4)])
    plan = p.process([reading(seq=10**9, secs=4, boot="A"), reading(seq=4, secs=5, boot="A", tank_temp_c=4.6)])
    assert "jumps more than" in plan.rejected[0][1]
    assert [a.measure for a in plan.alarms] == ["tank_temp_c"]
    assert p.sequences.states[(3, 7)].newest == 4


# -- throughput: undo without copying, several bridges --------------------------------------------

def state_of(p: Processor) -> object:
    """Everything a batch may change, as plain values (compared, never used to restore)."""
    st = p._st
    return (
        {m: (json.dumps(sw.status, sort_keys=True), sw.complete) for m, sw in st.meters.items()},
        set(st.offline), dict(st.last_full), dict(st.rpc_asked), st.rpc_id,
        {k: (s.confirmed, s.newest, s.newest_ts, s.max_ts, [r[:] for r in s.ahead], s.gap_since, s.boot,
             s.prev_boot) for k, s in p.sequences.states.items()},
        list(p.sequences._lost), dict(p.alarms._active), dict(p.versions),
    )


def random_batch(rng: random.Random, t: int) -> list[RawMessage]:
    """Readings of 3 automates (in order, late, replayed, far ahead, restarts, values around the
    limits, garbage) and meter frames (full, partial, conflicting, online/offline, answers)."""
    out = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        at = NOW + timedelta(seconds=t)
        if kind < 0.6:
            a = rng.choice([7, 8, 9])
            seq = rng.choice([t, t, t - 3, t + 5, rng.randint(0, t + 1), 10**7])
            body = {**EXAMPLE, "automate": a, "seq": seq, "boot": rng.choice(["b1", "b1", "b1", "b2"]),
                    "ts": format_ts(datetime(2026, 11, 21, 10, 15, tzinfo=UTC) + timedelta(seconds=seq % 10**6)),
                    "tank_temp_c": rng.choice([3.4, 4.6, 3.95, 1.0]), "ph": rng.choice([7.0, 7.9])}
            out.append(msg(T.reading(3, a), body, at))
        elif kind < 0.7:
            out.append(msg(T.reading(3, 7), rng.choice([b"{", b'{"unit": 3}', b"[]"]), at))
        elif kind < 0.8:
            out.append(msg(f"{METER}/events/rpc", full_frame(1795000000.0 + t, apower=rng.choice([100.0, 3900.0])),
                           at))
        elif kind < 0.9:
            out.append(msg(f"{METER}/events/rpc", partial_frame(1795000000.0 + rng.choice([t, t - 1]),
                                                                apower=rng.choice([200.0, 3800.0])), at))
        else:
            out.append(msg(f"{METER}/online", rng.choice([b"true", b"false"]), at))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_a_failing_batch_leaves_the_state_exactly_as_before(seed: int) -> None:
    """The undo path: whatever a batch did (gaps, restarts, alarms raised and cleared, meter merges,
    lost gaps, versions), undo puts back exactly the state before it, and the retry plans the same."""
    rng = random.Random(seed)
    p = Processor(T, ThresholdSet(default_thresholds()), gap_timeout=5)
    for t in range(1, 40):
        batch = random_batch(rng, t)
        before = state_of(p)
        first = p.process(batch)
        if rng.random() < 0.5:
            p.undo()  # the transaction failed
            assert state_of(p) == before
            again = p.process(batch)
            assert plan_view(again) == plan_view(first)


def plan_view(plan: BatchPlan) -> object:
    return ([(r.seq, r.ts) for r, _ in plan.readings], [s.to_dict() for s, _ in plan.samples],
            [reason for _, reason in plan.rejected], [a.to_dict() for a in plan.alarms],
            [(o.topic, o.retain) for o in plan.publish], plan.gaps, plan.lost, plan.versions)


def test_undo_costs_what_the_batch_touched_not_the_plant() -> None:
    p = proc()
    p.process([msg(T.reading(u, a), {**EXAMPLE, "unit": u, "automate": a, "seq": 0})
               for u in range(1, 51) for a in range(1, 11)])
    assert len(p.sequences.states) == 500
    p.process([reading(seq=1)])
    assert len(p._undo) < 10  # one automate's entries, not 500


class SharedDatabase:
    """What several bridges share through MariaDB, as dicts: versions, settled seqs, meter states,
    active alarms (the real one: ``bridge.service.lookup_in`` and ``write_plan``)."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.sequences: dict[tuple[int, int], SeqState] = {}
        self.meters: dict[str, MeterStatus] = {}
        self.alarms: dict[str, dict[str, object]] = {}
        self.readings: dict = {}

    def lookup(self, wanted: Wanted) -> Stored:
        versions = {src: self.versions.setdefault(src, 0) for src in wanted.sources}
        stale = [src for src, v in versions.items() if wanted.sources[src] != v]
        sequences, meters = {}, {}
        for src in stale:
            parts = src.split("/")
            if parts[0] == "units":
                key = (int(parts[1]), int(parts[3]))
                sequences[key] = self.sequences[key].copy() if key in self.sequences else None
            else:
                meters[parts[1]] = self.meters.get(parts[1])
        return Stored({k: v for k, v in self.readings.items() if k in wanted.readings}, {}, versions, sequences,
                      meters, {src: list(self.alarms.get(src, {}).values()) for src in stale})  # type: ignore[misc]

    def commit(self, plan: BatchPlan) -> None:
        self.versions.update(plan.versions)
        self.sequences.update({k: s.copy() for k, s in plan.sequences.items()})
        self.meters.update(plan.meter_states)
        for r, _ in plan.readings:
            self.readings[(r.unit, r.automate, r.ts)] = StoredReading(1, r.seq, r.measures())
        for a in plan.alarms:
            if a.state == "active":
                self.alarms.setdefault(a.source.key, {})[a.measure] = a
            else:
                self.alarms.get(a.source.key, {}).pop(a.measure, None)


@pytest.mark.parametrize("shared", [True, False])
def test_two_bridges_sharing_an_automate_raise_one_alarm_for_a_jittering_value(shared: bool) -> None:
    """Round-robin delivery sends one automate's readings to both bridges alternately. Through the
    shared versions each takes the other's state first: one alarm, no gap. (``shared=False``: the
    same without the database's versions, to show what this guards against.)"""
    db = SharedDatabase()
    bridges = [proc(), proc()]
    plans = []
    for seq in range(20):
        value = 4.6 if seq % 4 < 2 else 3.95  # above 4.0, then inside but within the 0.1 deadband
        p = bridges[seq % 2]
        plan = p.process([reading(seq=seq, secs=seq, boot="b1", tank_temp_c=value)],
                         db.lookup if shared else lambda w: Stored())
        db.commit(plan)
        plans.append(plan)
    raised = [a for plan in plans for a in plan.alarms if a.state == "active"]
    gaps = sum(plan.gaps for plan in plans)
    if shared:
        assert len(raised) == 1 and gaps == 0
        assert db.sequences[(3, 7)].confirmed == 19
    else:
        assert len(raised) == 2 and gaps > 0  # each bridge alone: its own alarm, half the seqs "missing"


def test_a_bridge_takes_the_meter_state_another_bridge_merged() -> None:
    db = SharedDatabase()
    a, b = proc(), proc()
    events = f"{METER}/events/rpc"
    db.commit(a.process([msg(events, full_frame(1795000000.0, voltage=231.0))], db.lookup))
    plan = b.process([msg(events, partial_frame(1795000001.0, apower=300.0))], db.lookup)
    (sample, _), = plan.samples
    assert (sample.apower, sample.voltage) == (300.0, 231.0)  # merged into what a had
    assert not [o for o in plan.publish if "GetStatus" in o.payload]  # b knows the state is complete
