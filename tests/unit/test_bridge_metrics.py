"""The bridge's Prometheus metrics: bounded rejection labels on the real reasons, values, HTTP endpoint."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.exc import DataError

from bridge.metrics import REASONS, BridgeMetrics, reason_label
from bridge.processor import Processor, RawMessage
from bridge.service import database_reason
from plantmodel import shelly
from plantmodel.errors import ValidationError
from plantmodel.readings import Reading, format_ts
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import ThresholdSet
from plantmodel.topics import Topics

NOW = datetime(2026, 11, 21, 10, 15, 1, tzinfo=UTC)
TS = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
METER = "shellypro1pm-a8032ab1c2d3"
T = Topics()
GOOD = {"unit": 3, "automate": 7, "type": "0x0000BA27", "seq": 1, "ts": format_ts(TS),
        "tank_temp_c": 3.4, "ext_temp_c": 11.2, "milk_kg": 4012, "product_kg": 35, "ph": 7.0,
        "k_mg_l": 41, "nacl_g_l": 1.3, "salmonella_ppm": 22, "ecoli_ppm": 40, "listeria_ppm": 31}

METRIC_NAMES = (
    "bridge_messages_received_total", "bridge_rows_stored_total", "bridge_messages_rejected_total",
    "bridge_duplicates_total", "bridge_ignored_total", "bridge_internal_errors_total", "bridge_gaps_total",
    "bridge_lost_readings_total", "bridge_alarm_transitions_total", "bridge_db_errors_total",
    "bridge_mqtt_reconnects_total", "bridge_mqtt_connected", "bridge_batch_size", "bridge_commit_seconds",
    "bridge_ingest_age_seconds", "bridge_queue_depth", "bridge_active_alarms", "bridge_info",
)


def reading(**changes: Any) -> bytes:
    return json.dumps({k: v for k, v in {**GOOD, **changes}.items() if v is not ...}).encode()


def reason_of(call: Callable[[], object]) -> str:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.reason


# -- reason_label on what the model really says -------------------------------------------------------------

MODEL_REASONS: list[tuple[str, Callable[[], object], str]] = [
    ("not JSON", lambda: Reading.from_json(b"not json"), "malformed"),
    ("not UTF-8", lambda: Reading.from_json(b"\xff\xfe"), "malformed"),
    ("not an object", lambda: Reading.from_json(b"[1, 2]"), "malformed"),
    ("NaN", lambda: Reading.from_json(b'{"unit": 3, "ph": NaN}'), "malformed"),
    ("missing field", lambda: Reading.from_json(reading(ph=...)), "malformed"),
    ("wrong type", lambda: Reading.from_json(reading(ph="7")), "malformed"),
    ("bool for an int", lambda: Reading.from_json(reading(seq=True)), "malformed"),
    ("bad ts format", lambda: Reading.from_json(reading(ts="yesterday")), "malformed"),
    ("bad ts value", lambda: Reading.from_json(reading(ts="2026-13-01T00:00:00Z")), "malformed"),
    ("bad type", lambda: Reading.from_json(reading(type="is absurd 12")), "malformed"),
    ("bad boot", lambda: Reading.from_json(reading(boot="no spaces allowed")), "malformed"),
    ("absurd value", lambda: Reading.from_json(reading(ph=15)), "out_of_range"),
    ("absurd negative", lambda: Reading.from_json(reading(tank_temp_c=-273.15)), "out_of_range"),
    ("unit 0", lambda: Reading.from_json(reading(unit=0)), "out_of_range"),
    ("seq past BIGINT", lambda: Reading.from_json(reading(seq=2**63)), "out_of_range"),
    ("year", lambda: Reading.from_json(reading(ts="1999-01-01T00:00:00Z")), "out_of_range"),
    ("bad status", lambda: DeviceStatus.from_json('{"state": "asleep", "ts": "2026-11-21T10:15:00Z"}'),
     "malformed"),
    ("unknown topic", lambda: T.parse("plant/units/3/bogus"), "topic"),
    ("automate past the model", lambda: T.parse("plant/units/3/automates/1000/readings"), "topic"),
    ("meter prefix subtopic", lambda: T.parse(f"{METER}/events/rpc/x"), "topic"),
    ("Shelly frame without src", lambda: shelly.parse_rpc_frame(b'{"method": "NotifyStatus"}'), "malformed"),
    ("Shelly method", lambda: shelly.parse_rpc_frame(json.dumps({"src": METER, "method": "Reboot"})), "malformed"),
    ("Shelly neither", lambda: shelly.parse_rpc_frame(json.dumps({"src": METER})), "malformed"),
    ("Shelly not JSON", lambda: shelly.parse_rpc_frame(b"{"), "malformed"),
    ("Shelly params", lambda: shelly.parse_rpc_frame(json.dumps({"src": METER, "method": "NotifyStatus",
                                                                  "params": []})), "malformed"),
    ("online payload", lambda: shelly.parse_online(b"maybe"), "malformed"),
    ("switch output", lambda: shelly.sample_from_switch(METER, TS, {"output": "yes"}), "malformed"),
    ("switch sub-object", lambda: shelly.sample_from_switch(METER, TS, {"aenergy": 5}), "malformed"),
    ("switch number", lambda: shelly.sample_from_switch(METER, TS, {"apower": "high"}), "malformed"),
    ("absurd voltage", lambda: shelly.sample_from_switch(METER, TS, {"voltage": 5000}), "out_of_range"),
    ("device clock", lambda: shelly.unix_to_dt(12.0), "out_of_range"),
    ("RPC request without src", lambda: shelly.parse_request(b'{"method": "Shelly.GetStatus"}'), "malformed"),
]


@pytest.mark.parametrize(("what", "call", "label"), MODEL_REASONS, ids=[m[0] for m in MODEL_REASONS])
def test_model_reasons_map_to_their_label(what: str, call: Callable[[], object], label: str) -> None:
    reason = reason_of(call)
    assert reason_label(reason) == label, (what, reason)


def msg(topic: str, payload: bytes | dict[str, Any], at: datetime = NOW) -> RawMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(topic, raw, at, 1, 1)


def test_the_processors_own_reasons_map_to_their_label() -> None:
    """Reasons only the bridge's processing gives: through a real Processor, one batch."""
    # A conflict inside the batch (same key, other values) gives the conflict reason without a
    # database lookup: the processor's lookup seam is not what this test is about.
    same_key = format_ts(TS + timedelta(seconds=5))
    error_answer = shelly.error_response(1, METER, f"{METER}/bridge", -103, "busy")
    batch = [
        (msg(T.reading(3, 7), reading(seq=1)), None),  # stored: anchors the seq-jump check
        (msg(T.reading(3, 7), reading(seq=2, ts=format_ts(TS + timedelta(hours=1)))), "future"),
        (msg(T.reading(3, 7), reading(seq=3, ts=same_key)), None),
        (msg(T.reading(3, 7), reading(seq=3, ts=same_key, ph=6.5)), "conflict"),
        (msg(T.reading(3, 8), reading(seq=4)), "topic"),  # the payload says automate 7
        (msg(T.reading(3, 7), reading(seq=5_000_000, ts=format_ts(TS + timedelta(seconds=9)))), "out_of_range"),
        (msg(T.reading(3, 7), b"{"), "malformed"),
        (msg("plant/units/3/bogus", {"x": 1}), "topic"),
        (msg(f"{METER}/rpc", {"id": 1, "src": "someone", "method": "Switch.Set"}), "rpc"),
        (msg(f"{METER}/bridge/rpc", json.loads(error_answer)), "rpc"),
        (msg(f"{METER}/bridge/rpc", {"id": 2, "src": METER, "result": {"sys": {}}}), "rpc"),
    ]
    plan = Processor(T, ThresholdSet([]), max_future_skew=300).process([m for m, _ in batch])
    expected = {id(m): label for m, label in batch if label is not None}
    got = {id(m): reason for m, reason in plan.rejected}
    assert set(got) == set(expected), [r for _, r in plan.rejected]
    for key, reason in got.items():
        assert reason_label(reason) == expected[key], reason


def test_database_refusals_are_database_whatever_they_say() -> None:
    exc = DataError("INSERT INTO readings ...", {}, Exception(1264, "Out of range value for column 'seq' at row 1"))
    reason = database_reason(exc)
    assert reason_label(reason) == "database", reason


@pytest.mark.parametrize("reason", [
    "", "something nobody planned for", "x" * 5000, "online payload must be true or false, got 'is absurd'",
    "unknown topic 'plant/the database refused it: '",
])
def test_every_reason_gets_one_of_the_fixed_labels(reason: str) -> None:
    assert reason_label(reason) in REASONS


def test_payload_text_quoted_in_a_reason_does_not_move_it() -> None:
    assert reason_label("unknown topic 'plant/x' is absurd ") == "topic"
    assert reason_label("online payload must be true or false, got 'field \\'ph\\' = 1 is absurd '") == "malformed"
    assert reason_label("something else: the database refused it: x") == "other"


# -- the metrics -------------------------------------------------------------------------------------------

def value(m: BridgeMetrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels)
    assert got is not None, (name, labels)
    return got


def test_every_metric_is_exposed_from_the_start() -> None:
    text = generate_latest(BridgeMetrics().registry).decode()
    for name in METRIC_NAMES:
        assert f"\n{name}" in f"\n{text}", name
    for reason in REASONS:
        assert f'bridge_messages_rejected_total{{reason="{reason}"}} 0.0' in text
    assert 'bridge_rows_stored_total{kind="power_sample"} 0.0' in text
    assert 'bridge_alarm_transitions_total{state="cleared"} 0.0' in text


def test_values_change_after_calls() -> None:
    m = BridgeMetrics()
    m.received(5)
    m.stored(readings=3, power_samples=1)
    assert m.rejected("field 'ph' = 15 is absurd (plausible 0..14 pH)") == "out_of_range"
    m.rejected("reading is not valid JSON: Expecting value: line 1 column 1 (char 0)")
    m.rejected("reading is not valid JSON: Expecting value: line 1 column 2 (char 1)")
    m.duplicates(2)
    m.ignored()
    m.internal_error()
    m.gaps(1)
    m.lost(4)
    m.alarm_transition("active")
    m.alarm_transition("cleared")
    m.alarm_transition("active")
    m.db_error()
    m.observe_batch(500, 0.12)
    assert value(m, "bridge_messages_received_total") == 5
    assert value(m, "bridge_rows_stored_total", kind="reading") == 3
    assert value(m, "bridge_rows_stored_total", kind="power_sample") == 1
    assert value(m, "bridge_messages_rejected_total", reason="out_of_range") == 1
    assert value(m, "bridge_messages_rejected_total", reason="malformed") == 2
    assert value(m, "bridge_duplicates_total") == 2
    assert value(m, "bridge_ignored_total") == 1
    assert value(m, "bridge_internal_errors_total") == 1
    assert value(m, "bridge_gaps_total") == 1
    assert value(m, "bridge_lost_readings_total") == 4
    assert value(m, "bridge_alarm_transitions_total", state="active") == 2
    assert value(m, "bridge_alarm_transitions_total", state="cleared") == 1
    assert value(m, "bridge_db_errors_total") == 1
    assert value(m, "bridge_batch_size_count") == 1 and value(m, "bridge_batch_size_sum") == 500
    assert value(m, "bridge_batch_size_bucket", le="200.0") == 0
    assert value(m, "bridge_batch_size_bucket", le="500.0") == 1
    assert value(m, "bridge_commit_seconds_bucket", le="0.1") == 0
    assert value(m, "bridge_commit_seconds_bucket", le="0.25") == 1
    # The series of two different payloads' reasons are one: the label set stays bounded.
    text = generate_latest(m.registry).decode()
    assert text.count("bridge_messages_rejected_total{") == len(REASONS)


def test_unknown_alarm_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown alarm state"):
        BridgeMetrics().alarm_transition("acknowledged")


def test_ingest_ages_clamp_skewed_clocks_to_zero() -> None:
    m = BridgeMetrics()
    committed = TS + timedelta(seconds=2)
    m.observe_device_times([TS, TS + timedelta(seconds=1, milliseconds=990), TS + timedelta(seconds=30)], committed)
    assert value(m, "bridge_ingest_age_seconds_count") == 3
    assert value(m, "bridge_ingest_age_seconds_sum") == pytest.approx(2.01)
    assert value(m, "bridge_ingest_age_seconds_bucket", le="0.005") == 1  # the 30 s ahead: age 0
    assert value(m, "bridge_ingest_age_seconds_bucket", le="0.01") == 2
    assert value(m, "bridge_ingest_age_seconds_bucket", le="1.0") == 2
    assert value(m, "bridge_ingest_age_seconds_bucket", le="2.5") == 3


def test_gauges_read_their_source_at_each_scrape() -> None:
    depth = [0]
    m = BridgeMetrics(queue_depth=lambda: depth[0])
    assert value(m, "bridge_queue_depth") == 0 and value(m, "bridge_active_alarms") == 0
    depth[0] = 17
    m.track_active_alarms(lambda: 3)
    assert value(m, "bridge_queue_depth") == 17 and value(m, "bridge_active_alarms") == 3


def test_mqtt_connection_and_reconnects() -> None:
    m = BridgeMetrics()
    assert value(m, "bridge_mqtt_connected") == 0
    m.mqtt_connected()
    assert value(m, "bridge_mqtt_connected") == 1 and value(m, "bridge_mqtt_reconnects_total") == 0
    m.mqtt_disconnected()
    assert value(m, "bridge_mqtt_connected") == 0
    m.mqtt_connected()
    assert value(m, "bridge_mqtt_connected") == 1 and value(m, "bridge_mqtt_reconnects_total") == 1


def test_info_names_the_user_and_share_group() -> None:
    m = BridgeMetrics(mqtt_user="bridge-2", share_group="plant")
    assert value(m, "bridge_info", mqtt_user="bridge-2", share_group="plant") == 1
    m.set_info("bridge")
    assert value(m, "bridge_info", mqtt_user="bridge", share_group="") == 1


def test_two_bridges_in_one_process_have_their_own_registries() -> None:
    a, b = BridgeMetrics(), BridgeMetrics()
    a.received(3)
    assert value(a, "bridge_messages_received_total") == 3 and value(b, "bridge_messages_received_total") == 0
    shared = CollectorRegistry()
    c = BridgeMetrics(shared)
    assert c.registry is shared
    with pytest.raises(ValueError, match="Duplicated"):
        BridgeMetrics(shared)  # one bridge per registry: the library refuses a second set of names


def test_the_http_endpoint_serves_the_metrics_on_loopback() -> None:
    m = BridgeMetrics(mqtt_user="bridge")
    m.received(7)
    server = m.serve("127.0.0.1", 0)
    try:
        assert server.port > 0 and server.host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        assert "bridge_messages_received_total 7.0" in text
        assert 'bridge_info{mqtt_user="bridge",share_group=""} 1.0' in text
        for name in METRIC_NAMES:
            assert name in text
    finally:
        server.shutdown()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=2)
