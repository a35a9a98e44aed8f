"""Turns a batch of raw MQTT messages into what must be written and published (no I/O).

State that spans messages (merged meter status, alarm state, last seq per automate) lives here;
``snapshot``/``restore`` let the service undo a batch whose transaction failed, so that retrying
it gives exactly the same result.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plantmodel import shelly
from plantmodel.errors import ValidationError
from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample, RpcNotification, RpcResponse, SwitchState
from plantmodel.sources import AutomateSource, MeterSource, unit_key
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Alarm, AlarmEngine, ThresholdSet
from plantmodel.topics import ReadingTopic, ShellyTopic, Topics, UnitStatusTopic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: str
    retain: bool = False


@dataclass(slots=True)
class BatchPlan:
    readings: list[tuple[Reading, datetime]] = field(default_factory=list)
    samples: list[tuple[PowerSample, datetime]] = field(default_factory=list)
    states: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)  # device, state, ts, rx
    meters_seen: set[str] = field(default_factory=set)
    rejected: list[tuple[RawMessage, str]] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    publish: list[Outgoing] = field(default_factory=list)  # after commit
    gaps: int = 0


@dataclass(slots=True)
class _ProcState:
    meters: dict[str, SwitchState] = field(default_factory=dict)
    last_seq: dict[tuple[int, int], int] = field(default_factory=dict)
    rpc_asked: dict[str, datetime] = field(default_factory=dict)
    rpc_id: int = 0


class Processor:
    def __init__(self, topics: Topics, thresholds: ThresholdSet, *, max_future_skew: float = 86_400.0,
                 rpc_retry: float = 30.0) -> None:
        self.topics = topics
        self.alarms = AlarmEngine(thresholds)
        self.max_future_skew = timedelta(seconds=max_future_skew)
        self.rpc_retry = timedelta(seconds=rpc_retry)
        self._st = _ProcState()

    def set_thresholds(self, thresholds: ThresholdSet) -> None:
        self.alarms.thresholds = thresholds

    def snapshot(self) -> object:
        return (copy.deepcopy(self._st), self.alarms.snapshot())

    def restore(self, snap: object) -> None:
        st, alarms = snap  # type: ignore[misc]
        self._st = st
        self.alarms.restore(alarms)

    # -------------------------------------------------------------------------------------------
    def process(self, messages: list[RawMessage]) -> BatchPlan:
        plan = BatchPlan()
        for msg in messages:
            try:
                self._one(msg, plan)
            except ValidationError as exc:
                plan.rejected.append((msg, exc.reason))
            except Exception as exc:  # a bug must not stop the flow: record it like a bad message
                log.exception("unexpected error on %s", msg.topic)
                plan.rejected.append((msg, f"internal error: {type(exc).__name__}: {exc}"))
        return plan

    def _one(self, msg: RawMessage, plan: BatchPlan) -> None:
        parsed = self.topics.parse(msg.topic)
        if isinstance(parsed, ReadingTopic):
            self._reading(parsed, msg, plan)
        elif isinstance(parsed, UnitStatusTopic):
            status = DeviceStatus.from_json(msg.payload)
            plan.states.append((unit_key(parsed.unit), status.state, status.ts, msg.received_at))
        elif isinstance(parsed, ShellyTopic):
            self._shelly(parsed, msg, plan)
        else:
            raise ValidationError(f"the bridge does not accept messages on {msg.topic!r}")

    def _reading(self, topic: ReadingTopic, msg: RawMessage, plan: BatchPlan) -> None:
        reading = Reading.from_json(msg.payload)
        src = AutomateSource(reading.unit, reading.automate)
        if src != topic.source:
            raise ValidationError(
                f"payload is for unit {reading.unit} automate {reading.automate} "
                f"but was published on {topic.source.key}")
        if reading.ts - msg.received_at > self.max_future_skew:
            raise ValidationError(f"timestamp {reading.ts.isoformat()} is too far in the future")
        key = (reading.unit, reading.automate)
        last = self._st.last_seq.get(key)
        if last is not None and reading.seq > last + 1:
            plan.gaps += 1
            log.warning("%s: %d reading(s) missing (seq %d -> %d)", src.label, reading.seq - last - 1,
                        last, reading.seq)
        if last is None or reading.seq > last or reading.seq < last // 2:
            # (a much lower seq: the unit restarted and counts from 0 again)
            self._st.last_seq[key] = reading.seq
        plan.readings.append((reading, msg.received_at))
        self._alarm(plan, self.alarms.evaluate(src, reading.measures(), reading.ts))

    def _alarm(self, plan: BatchPlan, events: list[Alarm]) -> None:
        for ev in events:
            plan.alarms.append(ev)
            plan.publish.append(Outgoing(self.topics.alarm(ev.source, ev.measure), ev.to_json(), retain=True))
            log.log(logging.WARNING if ev.state == "active" else logging.INFO,
                    "alarm %s: %s %s = %s (limit %s)", ev.state, ev.source.label, ev.measure, ev.value, ev.limit)

    # -- Shelly ----------------------------------------------------------------------------------
    def _shelly(self, topic: ShellyTopic, msg: RawMessage, plan: BatchPlan) -> None:
        meter = topic.meter
        state = self._st.meters.get(meter)
        first_seen = state is None
        if state is None:
            state = self._st.meters[meter] = SwitchState(meter)
        plan.meters_seen.add(meter)
        if topic.kind == "online":
            online = shelly.parse_online(msg.payload)
            plan.states.append((f"meters/{meter}", "online" if online else "offline",
                                msg.received_at, msg.received_at))
            if online:  # (re)connected: what it sends next are only changes, so ask for everything
                self._ask_status(meter, msg.received_at, plan, force=True)
            return
        if topic.kind == "status/switch:0":
            state.apply_full(shelly.parse_switch_status(msg.payload))
            return
        frame = shelly.parse_rpc_frame(msg.payload)
        ts: datetime | None
        if isinstance(frame, RpcNotification):
            sw, ts = frame.switch, frame.ts
            if frame.method == "NotifyFullStatus" and sw is not None:
                state.apply_full(sw)
            elif frame.method == "NotifyStatus" and sw is not None:
                state.apply_partial(sw)
            else:
                return  # NotifyEvent, or a component we do not store
        else:
            assert isinstance(frame, RpcResponse)
            if frame.error is not None:
                log.warning("meter %s answered an RPC with an error: %s", meter, frame.error)
                return
            sw, ts = frame.switch_status()
            if sw is None:
                return
            state.apply_full(sw)
            self._st.rpc_asked.pop(meter, None)
        if not state.complete:
            self._ask_status(meter, msg.received_at, plan, force=first_seen)
            return
        if ts is None:
            return  # merged, but no device time to store it under
        sample = state.sample(ts)
        if sample is not None:
            plan.samples.append((sample, msg.received_at))
            self._alarm(plan, self.alarms.evaluate(MeterSource(meter), sample.measures(), ts))

    def _ask_status(self, meter: str, now: datetime, plan: BatchPlan, *, force: bool) -> None:
        asked = self._st.rpc_asked.get(meter)
        if not force and asked is not None and now - asked < self.rpc_retry:
            return
        self._st.rpc_asked[meter] = now
        self._st.rpc_id += 1
        body = shelly.request(self._st.rpc_id, Topics.shelly_reply_src(meter), "Shelly.GetStatus")
        plan.publish.append(Outgoing(Topics.shelly(meter, "rpc"), body))
