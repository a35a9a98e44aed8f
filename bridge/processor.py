"""Turns a batch of raw MQTT messages into what must be written and published (no I/O).

The one input from the database is a *lookup* seam: which of the batch's keys are already stored
(``store.queries.stored_rows`` inside the batch's transaction; a dict in unit tests). With it a
redelivered message is recognised as a replay, and a reading that differs from the stored one
under the same key is rejected instead of silently dropped.

State that spans messages (merged meter status, alarm state, each automate's settled ``seq``) lives
here; ``snapshot``/``restore`` let the service undo a batch whose transaction failed, so that
retrying it gives exactly the same result.

Every message ends in exactly one of: a row to store (or a known duplicate of one), a rejection
with its reason (``rejected_messages``), one of our own publications seen again (skipped), or —
only when our own code fails on it — *held*: counted, logged with its traceback, never
acknowledged, so the broker keeps it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from plantmodel import shelly
from plantmodel.errors import ValidationError
from plantmodel.jsonutil import loads_object
from plantmodel.readings import Reading, check_boot, format_ts
from plantmodel.sequence import Key, Lost, SeqState, SequenceTracker, Verdict
from plantmodel.shelly import PowerSample, RpcNotification, RpcResponse, SwitchState
from plantmodel.sources import AutomateSource, MeterSource, unit_key
from plantmodel.status import DeviceStatus
from plantmodel.storage import SEQ_MAX
from plantmodel.text import printable
from plantmodel.thresholds import Alarm, AlarmEngine, ThresholdSet
from plantmodel.topics import (
    AlarmTopic,
    ConfirmTopic,
    ReadingTopic,
    ShellyTopic,
    Topics,
    UnitStatusTopic,
)

log = logging.getLogger(__name__)

ReadingKey = tuple[int, int, datetime]  # (unit, automate, ts): readings' unique key
SeqHint = tuple[Key, int, str | None]  # a rejected reading's (automate, seq, boot)
SampleKey = tuple[str, datetime]  # (meter, device ts): power readings' unique key


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    link: int = 0  # the connection it came on (its mid means nothing on another one)


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: str
    retain: bool = False


@dataclass(frozen=True, slots=True)
class StoredReading:
    """What the database holds under a reading's key."""

    id: int | None  # None: stored earlier in the same batch
    seq: int
    measures: dict[str, float]


@dataclass(frozen=True, slots=True)
class StoredSample:
    id: int | None
    sample: PowerSample


@dataclass(slots=True)
class Stored:
    readings: dict[ReadingKey, StoredReading] = field(default_factory=dict)
    samples: dict[SampleKey, StoredSample] = field(default_factory=dict)


Lookup = Callable[[set[ReadingKey], set[SampleKey]], Stored]


def nothing_stored(_readings: set[ReadingKey], _samples: set[SampleKey]) -> Stored:
    return Stored()


@dataclass(slots=True)
class BatchPlan:
    readings: list[tuple[Reading, datetime]] = field(default_factory=list)
    samples: list[tuple[PowerSample, datetime]] = field(default_factory=list)
    states: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)  # device, state, ts, rx
    meters_seen: set[str] = field(default_factory=set)
    rejected: list[tuple[RawMessage, str]] = field(default_factory=list)
    held: list[tuple[RawMessage, str]] = field(default_factory=list)  # our bug: not acked
    alarms: list[Alarm] = field(default_factory=list)
    publish: list[Outgoing] = field(default_factory=list)  # after commit
    sequences: dict[Key, SeqState] = field(default_factory=dict)  # settled seqs to persist
    lost: list[Lost] = field(default_factory=list)
    gaps: int = 0
    duplicates: int = 0
    ignored: int = 0  # valid device messages with nothing to store (e.g. NotifyEvent)


@dataclass(slots=True)
class _ProcState:
    meters: dict[str, SwitchState] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    last_full: dict[str, datetime] = field(default_factory=dict)  # last full status per meter
    rpc_asked: dict[str, datetime] = field(default_factory=dict)
    rpc_id: int = 0


# -- decoded messages (first pass: pure parsing, no state) -----------------------------------------

@dataclass(frozen=True, slots=True)
class _Reading:
    msg: RawMessage
    reading: Reading


@dataclass(frozen=True, slots=True)
class _Rejected:
    msg: RawMessage
    reason: str
    seq: SeqHint | None = None  # the reading's seq, when it can be told: settled anyway


@dataclass(frozen=True, slots=True)
class _Held:
    msg: RawMessage
    error: str


@dataclass(frozen=True, slots=True)
class _Own:
    msg: RawMessage


@dataclass(frozen=True, slots=True)
class _Status:
    msg: RawMessage
    unit: int
    status: DeviceStatus


@dataclass(frozen=True, slots=True)
class _Shelly:
    msg: RawMessage
    topic: ShellyTopic
    frame: shelly.RpcFrame | None  # events/rpc, bridge/rpc
    switch: dict[str, Any] | None  # status/switch:0
    online: bool | None  # online
    ts: datetime | None = None  # the device time the frame carries, if any


_Decoded = _Reading | _Rejected | _Held | _Own | _Status | _Shelly
Snapshot = tuple[_ProcState, dict[Key, SeqState], dict[tuple[str, str], Alarm]]


class Processor:
    def __init__(self, topics: Topics, thresholds: ThresholdSet, *, max_future_skew: float = 300.0,
                 rpc_retry: float = 30.0, gap_timeout: float = 300.0, status_refresh: float = 300.0) -> None:
        self.topics = topics
        self.alarms = AlarmEngine(thresholds)
        self.sequences = SequenceTracker(timedelta(seconds=gap_timeout))
        self.max_future_skew = timedelta(seconds=max_future_skew)
        self.rpc_retry = timedelta(seconds=rpc_retry)
        self.status_refresh = timedelta(seconds=status_refresh)
        self._st = _ProcState()

    def set_thresholds(self, thresholds: ThresholdSet) -> None:
        self.alarms.thresholds = thresholds

    def load_sequences(self, states: dict[Key, SeqState], now: datetime) -> None:
        """Resume from the stored states. The time the bridge was down does not count against an
        open gap: the unit's resends may be queued at the broker behind the backlog."""
        for st in states.values():
            if st.ahead:
                st.gap_since = now
        self.sequences.states.update(states)

    def snapshot(self) -> Snapshot:
        return (copy.deepcopy(self._st), copy.deepcopy(self.sequences.states), self.alarms.snapshot())

    def restore(self, snap: Snapshot) -> None:
        st, sequences, alarms = snap
        self._st = st
        self.sequences.states = sequences
        self.alarms.restore(alarms)

    # -------------------------------------------------------------------------------------------
    def process(self, messages: list[RawMessage], lookup: Lookup = nothing_stored, *,
                reject_reason: str | None = None) -> BatchPlan:
        """Plan a batch. ``reject_reason``: record every message as rejected with it (the database
        refused these messages for a reason the model did not catch)."""
        plan = BatchPlan()
        if not messages:
            return plan
        now = max(m.received_at for m in messages)
        self._lost(plan, self.sequences.expire(now), f"never arrived within {self.sequences.gap_timeout}")
        decoded = [self._decode(m, reject_reason) for m in messages]
        stored = lookup({(d.reading.unit, d.reading.automate, d.reading.ts) for d in decoded
                         if isinstance(d, _Reading)},
                        {(d.topic.meter, ts) for d in decoded if isinstance(d, _Shelly) and (ts := d.ts)})
        batch = Stored()  # what this batch stores, for duplicates inside the batch
        for d in decoded:
            try:
                self._apply(d, stored, batch, plan)
            except ValidationError as exc:
                self._reject(plan, d.msg, exc.reason, self._seq_hint(d))
            except Exception as exc:  # our bug, not the message's fault: never ack what we did not store
                log.exception("internal error on %s; the message is held (not acknowledged)",
                              printable(d.msg.topic))
                plan.held.append((d.msg, f"{type(exc).__name__}: {exc}"))
        self._lost(plan, self.sequences.take_lost(), "given up: too many gaps open")
        for unit in sorted({u for u, _ in plan.sequences}):
            conf = self.sequences.confirmation(unit, now)
            if conf is not None:
                plan.publish.append(Outgoing(self.topics.confirmation(unit), conf.to_json(), retain=True))
        return plan

    def _lost(self, plan: BatchPlan, lost: list[Lost], why: str) -> None:
        for gap in lost:
            plan.lost.append(gap)
            plan.sequences[gap.key] = self.sequences.states[gap.key]
            log.warning("%s: seq %d..%d %s; counted as lost", AutomateSource(*gap.key).label,
                        gap.first, gap.last, why)

    def status_requests(self, now: datetime) -> list[Outgoing]:
        """``Shelly.GetStatus`` for every online meter whose last full status is older than the
        refresh period: a Shelly never resends unchanged values, so a periodic full status is what
        bounds how long a missed partial can leave its state wrong."""
        plan = BatchPlan()
        for meter in list(self._st.meters):
            last = self._st.last_full.get(meter)
            if meter not in self._st.offline and (last is None or now - last >= self.status_refresh):
                self._ask_status(meter, now, plan, force=False)
        return plan.publish

    # -- first pass ------------------------------------------------------------------------------
    def _decode(self, msg: RawMessage, reject_reason: str | None) -> _Decoded:
        try:
            if reject_reason is not None:
                return _Rejected(msg, reject_reason, self._seq_of(msg))
            if msg.topic == self.topics.bridge_status():
                return _Own(msg)
            parsed = self.topics.parse(msg.topic) if not self._is_rpc_request(msg.topic) else None
            if parsed is None:
                return self._rpc_request(msg)
            if isinstance(parsed, AlarmTopic | ConfirmTopic):
                return _Own(msg)  # ours (only bridges may write there), seen through '#'
            if isinstance(parsed, ReadingTopic):
                reading = Reading.from_json(msg.payload)
                if AutomateSource(reading.unit, reading.automate) != parsed.source:
                    raise ValidationError(
                        f"payload is for unit {reading.unit} automate {reading.automate} "
                        f"but was published on {parsed.source.key}")
                return _Reading(msg, reading)
            if isinstance(parsed, UnitStatusTopic):
                return _Status(msg, parsed.unit, DeviceStatus.from_json(msg.payload))
            assert isinstance(parsed, ShellyTopic)
            if parsed.kind == "online":
                return _Shelly(msg, parsed, None, None, shelly.parse_online(msg.payload))
            if parsed.kind == "status/switch:0":
                return _Shelly(msg, parsed, None, shelly.parse_switch_status(msg.payload), None)
            frame = shelly.parse_rpc_frame(msg.payload)
            ts = frame.ts if isinstance(frame, RpcNotification) else frame.switch_status()[1]
            return _Shelly(msg, parsed, frame, None, None, ts)
        except ValidationError as exc:
            return _Rejected(msg, exc.reason, self._seq_of(msg))
        except Exception as exc:
            log.exception("internal error decoding %s; the message is held (not acknowledged)",
                          printable(msg.topic))
            return _Held(msg, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _is_rpc_request(topic: str) -> bool:
        parts = topic.split("/")
        return len(parts) == 2 and parts[1] == "rpc"

    def _rpc_request(self, msg: RawMessage) -> _Decoded:
        """``<meter>/rpc``: our own requests to a meter come back through '#'; anything else there
        was published by the meter itself (its ACL allows its whole prefix)."""
        meter = msg.topic.split("/")[0]
        try:
            _id, src, _method, _params = shelly.parse_request(msg.payload)
            if src == Topics.shelly_reply_src(meter):
                return _Own(msg)
        except ValidationError:
            pass
        return _Rejected(msg, "not stored: an RPC request on the meter's request topic not sent by the bridge")

    def _seq_of(self, msg: RawMessage) -> SeqHint | None:
        """Best effort: the (automate, seq) a rejected reading claims, so that its seq counts as
        settled (it is recorded) and the unit is not asked for it again."""
        try:
            parsed = self.topics.parse(msg.topic)
            if not isinstance(parsed, ReadingTopic):
                return None
            data = loads_object(msg.payload, "reading")
        except ValidationError:
            return None
        seq, src = data.get("seq"), parsed.source
        if data.get("unit", src.unit) != src.unit or data.get("automate", src.automate) != src.automate:
            return None
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= SEQ_MAX:
            return None
        try:
            boot = check_boot(data.get("boot"))
        except ValidationError:
            return None  # which life it belongs to cannot be told
        return (src.unit, src.automate), seq, boot

    def _seq_hint(self, d: _Decoded) -> SeqHint | None:
        if isinstance(d, _Reading):
            return (d.reading.unit, d.reading.automate), d.reading.seq, d.reading.boot
        return None

    # -- second pass -------------------------------------------------------------------------------
    def _apply(self, d: _Decoded, stored: Stored, batch: Stored, plan: BatchPlan) -> None:
        if isinstance(d, _Rejected):
            self._reject(plan, d.msg, d.reason, d.seq)
        elif isinstance(d, _Held):
            plan.held.append((d.msg, d.error))
        elif isinstance(d, _Reading):
            self._reading(d.msg, d.reading, stored, batch, plan)
        elif isinstance(d, _Status):
            plan.states.append((unit_key(d.unit), d.status.state, d.status.ts, d.msg.received_at))
        elif isinstance(d, _Shelly):
            self._shelly(d, stored, batch, plan)

    def _reject(self, plan: BatchPlan, msg: RawMessage, reason: str, seq: SeqHint | None) -> None:
        plan.rejected.append((msg, reason))
        if seq is not None:
            key, n, boot = seq
            self.sequences.settle(key, n, None, msg.received_at, boot)
            if key in self.sequences.states:
                plan.sequences[key] = self.sequences.states[key]

    def _check_clock(self, ts: datetime, received_at: datetime) -> None:
        if ts - received_at > self.max_future_skew:
            raise ValidationError(
                f"timestamp {format_ts(ts)} is in the future: {(ts - received_at).total_seconds():.0f} s ahead of the "
                f"bridge's clock (at most {self.max_future_skew.total_seconds():g} s allowed)")

    def _reading(self, msg: RawMessage, reading: Reading, stored: Stored, batch: Stored,
                 plan: BatchPlan) -> None:
        self._check_clock(reading.ts, msg.received_at)
        src = AutomateSource(reading.unit, reading.automate)
        key: Key = (reading.unit, reading.automate)
        implausible = self.sequences.implausible(key, reading.seq, reading.boot)
        if implausible is not None:
            raise ValidationError(implausible)
        row_key = (reading.unit, reading.automate, reading.ts)
        have = stored.readings.get(row_key) or batch.readings.get(row_key)
        if have is not None:
            if have.seq != reading.seq or have.measures != reading.measures():
                where = f"id {have.id}" if have.id is not None else "received earlier in this batch"
                raise ValidationError(
                    f"conflicts with the stored reading of {src.key} at {format_ts(reading.ts)} "
                    f"({where}, seq {have.seq}): same automate and time, other values")
            plan.duplicates += 1  # a redelivery of what is stored: nothing new
            if self.sequences.same_life(key, reading.boot):
                self.sequences.settle(key, reading.seq, reading.ts, msg.received_at, reading.boot)
                plan.sequences[key] = self.sequences.states[key]
            return
        before = self.sequences.states.get(key)
        newest_before = before.newest if before is not None else None
        verdict = self.sequences.settle(key, reading.seq, reading.ts, msg.received_at, reading.boot)
        plan.sequences[key] = self.sequences.states[key]
        if verdict is Verdict.RESTART:
            log.info("%s restarted: seq went back from %s to %d", src.label, newest_before, reading.seq)
        elif verdict is Verdict.NEW and newest_before is not None and reading.seq > newest_before + 1:
            plan.gaps += 1
            log.warning("%s: %d reading(s) missing (seq %d -> %d); asking the unit to resend", src.label,
                        reading.seq - newest_before - 1, newest_before, reading.seq)
        plan.readings.append((reading, msg.received_at))
        batch.readings[row_key] = StoredReading(None, reading.seq, reading.measures())
        if verdict.evaluate:
            self._alarm(plan, self.alarms.evaluate(src, reading.measures(), reading.ts))

    def _alarm(self, plan: BatchPlan, events: list[Alarm]) -> None:
        for ev in events:
            plan.alarms.append(ev)
            plan.publish.append(Outgoing(self.topics.alarm(ev.source, ev.measure), ev.to_json(), retain=True))
            log.log(logging.WARNING if ev.state == "active" else logging.INFO,
                    "alarm %s: %s %s = %s (limit %s)", ev.state, ev.source.label, ev.measure, ev.value, ev.limit)

    # -- Shelly ----------------------------------------------------------------------------------
    def _shelly(self, d: _Shelly, stored: Stored, batch: Stored, plan: BatchPlan) -> None:
        meter, msg = d.topic.meter, d.msg
        state = self._st.meters.get(meter)
        first_seen = state is None
        if state is None:
            state = self._st.meters[meter] = SwitchState(meter)
        plan.meters_seen.add(meter)
        if d.online is not None:
            plan.states.append((MeterSource(meter).key, "online" if d.online else "offline",
                                msg.received_at, msg.received_at))
            if d.online:  # (re)connected: what it sends next are only changes, so ask for everything
                self._st.offline.discard(meter)
                self._ask_status(meter, msg.received_at, plan, force=True)
            else:
                self._st.offline.add(meter)
            return
        # Merges build new dicts: references suffice to put a refused frame's effect back.
        before = (state.status, state.complete, self._st.last_full.get(meter))
        try:
            sample = self._merge(d, state, plan)
        except ValidationError:
            # The frame is refused and the state kept as it was; ask for a full status all the same,
            # since what the meter believes and what we hold may now differ.
            self._ask_status(meter, msg.received_at, plan, force=False)
            raise
        if not state.complete:
            self._ask_status(meter, msg.received_at, plan, force=first_seen)
        if sample is None:
            return
        row_key = (meter, sample.ts)
        have = stored.samples.get(row_key) or batch.samples.get(row_key)
        if have is not None:
            if isinstance(d.frame, RpcResponse):
                # sys.unixtime has whole seconds: two answers (e.g. to the ask on the retained
                # "online" and on the reconnect) can share one. The state took this one; the row of
                # that second stays the first.
                plan.duplicates += 1
                return
            if _differs(have.sample, sample, d):
                state.status, state.complete, last_full = before  # as if it never came
                if last_full is None:
                    self._st.last_full.pop(meter, None)
                else:
                    self._st.last_full[meter] = last_full
                where = f"id {have.id}" if have.id is not None else "received earlier in this batch"
                raise ValidationError(f"conflicts with the stored power reading of meter {meter} at "
                                      f"{format_ts(sample.ts)} ({where}): same meter and time, other values")
            plan.duplicates += 1
            return
        plan.samples.append((sample, msg.received_at))
        batch.samples[row_key] = StoredSample(None, sample)
        self._alarm(plan, self.alarms.evaluate(MeterSource(meter), sample.measures(), sample.ts))

    def _merge(self, d: _Shelly, state: SwitchState, plan: BatchPlan) -> PowerSample | None:
        """Validate and merge one frame into the meter's state; the sample to store, if the frame
        carries a device time (``status/switch:0`` and Switch.GetStatus answers carry none)."""
        msg = d.msg
        if d.switch is not None:  # status/switch:0
            state.apply_full(d.switch, msg.received_at)
            self._st.last_full[state.meter] = msg.received_at
            return None
        frame = d.frame
        ts = d.ts
        if ts is not None:
            self._check_clock(ts, msg.received_at)
        if isinstance(frame, RpcNotification):
            sw = frame.switch
            if sw is None or frame.method == "NotifyEvent":
                # Device chatter with no measurement (a button event, Wi-Fi signal, a firmware
                # update notice): known, valid and not ours to store. Counted, not rejected, or a
                # real Gen2 device would fill rejected_messages with healthy traffic.
                plan.ignored += 1
                return None
            if frame.method == "NotifyFullStatus":
                sample = state.apply_full(sw, ts or msg.received_at)
                self._st.last_full[state.meter] = msg.received_at
            else:
                sample = state.apply_partial(sw, ts or msg.received_at)
        else:
            assert isinstance(frame, RpcResponse)
            if frame.error is not None:
                raise ValidationError(f"not stored: the meter answered an RPC with an error: {frame.error}")
            sw, _ = frame.switch_status()
            if sw is None:
                raise ValidationError(f"not stored: RPC answer without a {shelly.SWITCH_KEY} status")
            sample = state.apply_full(sw, ts or msg.received_at)
            self._st.last_full[state.meter] = msg.received_at
            self._st.rpc_asked.pop(state.meter, None)
        return sample if ts is not None else None

    def _ask_status(self, meter: str, now: datetime, plan: BatchPlan, *, force: bool) -> None:
        asked = self._st.rpc_asked.get(meter)
        if not force and asked is not None and now - asked < self.rpc_retry:
            return
        self._st.rpc_asked[meter] = now
        self._st.rpc_id += 1
        body = shelly.request(self._st.rpc_id, Topics.shelly_reply_src(meter), "Shelly.GetStatus")
        plan.publish.append(Outgoing(Topics.shelly(meter, "rpc"), body))


def _differs(have: PowerSample, new: PowerSample, d: _Shelly) -> bool:
    """Whether a frame disagrees with the stored sample under the same (meter, ts): only the
    fields the frame itself carries count (a partial says nothing about the others)."""
    carried = set(new.measures()) | {"output"}
    if isinstance(d.frame, RpcNotification) and d.frame.method == "NotifyStatus" and d.frame.switch is not None:
        partial = shelly.sample_from_switch(new.meter, new.ts, d.frame.switch)
        carried = {k for k, v in partial.to_dict().items() if v is not None} - {"meter", "ts"}
    old, cur = have.to_dict(), new.to_dict()
    return any(old.get(k) != cur.get(k) for k in carried)
