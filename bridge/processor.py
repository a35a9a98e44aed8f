"""Turns a batch of raw MQTT messages into what must be written and published (no I/O).

The one input from the database is a *lookup* seam (``bridge.service.lookup_in``, inside the
batch's transaction; a function over dicts in unit tests). Given what the batch needs
(:class:`Wanted`) it answers:

- which of the batch's keys are already stored: a redelivered message is recognised as a replay,
  and one that differs from the stored row under the same key is rejected, not silently dropped;
- the *version* of each source (automate or meter) the batch touches, after locking it: several
  bridges share the stream (MQTT shared subscriptions deal messages round-robin), so readings of
  one automate reach different bridges. Whoever holds a source's lock evaluates it; a bridge whose
  version of a source is not the stored one takes the stored state (settled seqs, merged meter
  status, active alarms) before going on. One bridge alone always holds the current version and
  reads nothing more.

State that spans messages (merged meter status, alarm state, each automate's settled ``seq``) lives
here. Every change is recorded first in an undo log (:class:`plantmodel.undo.UndoLog`): ``undo``
puts back what the last ``process`` changed when its transaction failed, so that retrying it gives
exactly the same result, at a cost in proportion to the batch (not to the plant).

Every message ends in exactly one of: a row to store (or a known duplicate of one), a rejection
with its reason (``rejected_messages``), one of our own publications seen again (skipped), or —
only when our own code fails on it — *held*: counted, logged with its traceback, never
acknowledged, so the broker keeps it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from plantmodel import shelly
from plantmodel.decode import (
    AlarmEvent,
    AskStatus,
    Decoder,
    DeviceInfo,
    Event,
    Ignored,
    OnlineEvent,
    Own,
    ReadingEvent,
    RpcAnswer,
    SwitchEvent,
    device_of,
)
from plantmodel.errors import ValidationError
from plantmodel.jsonutil import loads_object
from plantmodel.readings import Reading, check_boot, format_ts, to_ms
from plantmodel.sequence import Key, Lost, SeqState, SequenceTracker, Verdict
from plantmodel.shelly import CounterReset, PowerSample, SwitchState
from plantmodel.sources import AutomateSource, MeterSource, automate_key, parse_source
from plantmodel.storage import SEQ_MAX
from plantmodel.text import printable
from plantmodel.thresholds import Alarm, AlarmEngine, ThresholdSet
from plantmodel.topics import ReadingTopic, Topics
from plantmodel.undo import UndoLog

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
    latest_only: bool = False  # a newer one on the topic replaces one not sent yet (confirmations)


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


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a batch asks of the database."""

    readings: set[ReadingKey]
    samples: set[SampleKey]
    sources: dict[str, int | None]  # source key -> the version this bridge holds (None: none yet)


@dataclass(slots=True)
class Stored:
    readings: dict[ReadingKey, StoredReading] = field(default_factory=dict)
    samples: dict[SampleKey, StoredSample] = field(default_factory=dict)
    # Each wanted source's stored version, once locked (empty: nothing is shared, e.g. unit tests).
    versions: dict[str, int] = field(default_factory=dict)
    # The stored state of the sources whose version differs from this bridge's (None: none stored).
    sequences: dict[Key, SeqState | None] = field(default_factory=dict)
    meters: dict[str, MeterStatus | None] = field(default_factory=dict)
    alarms: dict[str, list[Alarm]] = field(default_factory=dict)  # active alarms of those sources


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """A meter's merged switch status, as stored for the other bridges."""

    status: dict[str, Any]
    complete: bool
    energy_offset_wh: float = 0.0
    last_ts: datetime | None = None


Lookup = Callable[[Wanted], Stored]
# (source key, active alarms by key) -> ({measure: value}, {measure: detail}): the timer's values
Health = Callable[[str, Mapping[tuple[str, str], Alarm]], tuple[dict[str, float], dict[str, str]]]


def nothing_stored(_wanted: Wanted) -> Stored:
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
    meter_states: dict[str, MeterStatus] = field(default_factory=dict)  # merged statuses to persist
    versions: dict[str, int] = field(default_factory=dict)  # sources changed: their new version
    lost: list[Lost] = field(default_factory=list)
    resets: list[CounterReset] = field(default_factory=list)  # meters' energy counters gone back
    devices_seen: dict[str, datetime] = field(default_factory=dict)  # registry key -> last heard from
    device_info: dict[str, DeviceInfo] = field(default_factory=dict)  # what devices said of themselves
    # Readings planned without looking them up (above everything settled): a unique-key error on
    # insert means another writer stored one after all; the service then redoes the batch verified.
    unverified: int = 0
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
    unasked: set[str] = field(default_factory=set)  # meters that cannot be asked (Gen1, legacy HTTP)


# -- decoded messages (first pass: pure parsing, no state) -----------------------------------------

@dataclass(frozen=True, slots=True)
class _Events:
    msg: RawMessage
    events: list[Event]

    @property
    def reading(self) -> Reading | None:
        return self.events[0].reading if len(self.events) == 1 and isinstance(self.events[0], ReadingEvent) else None


@dataclass(frozen=True, slots=True)
class _Rejected:
    msg: RawMessage
    reason: str
    seq: SeqHint | None = None  # the reading's seq, when it can be told: settled anyway


@dataclass(frozen=True, slots=True)
class _Held:
    msg: RawMessage
    error: str


_Decoded = _Events | _Rejected | _Held
LEGACY_BOOT = "http"  # the life of a legacy HTTP sender's readings, which the bridge numbers
METERS_PREFIX = "meters/"  # MeterSource.key


class Processor:
    def __init__(self, topics: Topics, thresholds: ThresholdSet, *, max_future_skew: float = 300.0,
                 rpc_retry: float = 30.0, gap_timeout: float = 300.0, status_refresh: float = 300.0,
                 max_age_days: int = 730) -> None:
        self.topics = topics
        self.decoder = Decoder(topics)
        self.disabled: frozenset[str] = frozenset()  # registry keys whose data is refused
        self._undo = UndoLog()
        self.alarms = AlarmEngine(thresholds, self._undo)
        self.sequences = SequenceTracker(timedelta(seconds=gap_timeout), self._undo)
        self.max_future_skew = timedelta(seconds=max_future_skew)
        # RETENTION_RAW_DAYS (store.retention, default 730): a reading older than what the retention
        # job keeps may be one it already purged; stored again, it would count twice in the rollups.
        self.max_age = timedelta(days=max_age_days)
        self.rpc_retry = timedelta(seconds=rpc_retry)
        self.status_refresh = timedelta(seconds=status_refresh)
        self._st = _ProcState()
        self.versions: dict[str, int] = {}  # source key -> the stored version our state reflects

    def set_thresholds(self, thresholds: ThresholdSet) -> None:
        self.alarms.thresholds = thresholds

    def set_disabled(self, devices: frozenset[str]) -> None:
        """The devices an administrator disabled (registry keys): their data is rejected."""
        self.disabled = devices

    def load_sequences(self, states: dict[Key, SeqState], now: datetime,
                       versions: dict[str, int] | None = None) -> None:
        """Resume from the stored states (and their versions: a state without one is taken as
        version 0, what its source's first lock creates)."""
        for key, st in states.items():
            self._resume(st, now)
            src = automate_key(*key)
            self.versions[src] = (versions or {}).get(src, 0)
        self.sequences.states.update(states)

    @staticmethod
    def _resume(st: SeqState, now: datetime) -> None:
        # The time this bridge did not hold the state does not count against an open gap: the
        # unit's resends may be queued at the broker behind the backlog.
        if st.ahead:
            st.gap_since = now

    def undo(self) -> None:
        """Put back everything the last :meth:`process` changed (its transaction failed)."""
        self._undo.undo()

    # -------------------------------------------------------------------------------------------
    def process(self, messages: list[RawMessage], lookup: Lookup = nothing_stored, *,
                reject_reason: str | None = None, verify: bool = False) -> BatchPlan:
        """Plan a batch. ``reject_reason``: record every message as rejected with it (the database
        refused these messages for a reason the model did not catch). ``verify``: look up every
        reading's key, even those above everything settled (see :attr:`BatchPlan.unverified`)."""
        self._undo.clear()
        plan = BatchPlan()
        if not messages:
            return plan
        st = self._st
        rpc_id = st.rpc_id
        self._undo.on_undo(lambda: setattr(st, "rpc_id", rpc_id))
        now = max(m.received_at for m in messages)
        decoded = [self._decode(m, reject_reason) for m in messages]
        due = self.sequences.due(now)
        automates = set(due)
        reading_keys: set[ReadingKey] = set()
        sample_keys: set[SampleKey] = set()
        meters: set[str] = set()
        for d in decoded:
            if isinstance(d, _Events):
                for ev in d.events:
                    if isinstance(ev, ReadingEvent):
                        r = ev.reading
                        key = (r.unit, r.automate)
                        automates.add(key)
                        if verify or r.seq is None or not self.sequences.beyond(key, r.seq, r.boot):
                            reading_keys.add((r.unit, r.automate, r.ts))
                        else:
                            plan.unverified += 1
                    elif isinstance(ev, SwitchEvent):
                        meters.add(ev.meter)
                        sample_keys.add((ev.meter, ev.ts or to_ms(d.msg.received_at)))
                    elif isinstance(ev, AskStatus):
                        meters.add(ev.meter)
                    elif isinstance(ev, OnlineEvent) and ev.device.startswith(METERS_PREFIX):
                        meters.add(ev.device[len(METERS_PREFIX):])
            elif isinstance(d, _Rejected) and d.seq is not None:
                automates.add(d.seq[0])
        sources: dict[str, Key | str] = {automate_key(*k): k for k in automates}
        sources.update((MeterSource(m).key, m) for m in meters)
        stored = lookup(Wanted(reading_keys, sample_keys, {src: self.versions.get(src) for src in sources}))
        self._refresh(stored, sources, now)
        self._lost(plan, self.sequences.expire(now, due), f"never arrived within {self.sequences.gap_timeout}")
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
        for meter in plan.meters_seen:
            sw = st.meters[meter]
            plan.meter_states[meter] = MeterStatus(sw.status, sw.complete, sw.energy_offset_wh, sw.last_ts)
        changed = [automate_key(*k) for k in plan.sequences] + [MeterSource(m).key for m in plan.meters_seen]
        for src in changed:
            self._undo.save(self.versions, src)
            plan.versions[src] = self.versions[src] = self.versions.get(src, 0) + 1
        for unit, conf in self.sequences.confirmations({u for u, _ in plan.sequences}, now).items():
            plan.publish.append(Outgoing(self.topics.confirmation(unit), conf.to_json(), retain=True,
                                         latest_only=True))
        return plan

    def _refresh(self, stored: Stored, sources: dict[str, Key | str], now: datetime) -> None:
        """Take the stored state of every source another bridge changed since we last held it."""
        for src, version in stored.versions.items():
            if self.versions.get(src) == version or src not in sources:
                continue
            first = src not in self.versions
            self._undo.save(self.versions, src)
            self.versions[src] = version
            which = sources[src]
            if isinstance(which, str):
                self._touch_meter(which)
                ms = stored.meters.get(which)
                if ms is None:
                    self._st.meters.pop(which, None)
                else:
                    sw = self._st.meters[which] = SwitchState(which)
                    sw.status, sw.complete = ms.status, ms.complete
                    sw.energy_offset_wh, sw.last_ts = ms.energy_offset_wh, ms.last_ts
            else:
                seq = stored.sequences.get(which)
                if seq is not None:
                    seq = seq.copy()
                    if first:
                        self._resume(seq, now)
                self.sequences.replace(which, seq)
            self.alarms.replace_source(src, stored.alarms.get(src, []))

    def _touch_meter(self, meter: str) -> None:
        st, undo = self._st, self._undo
        undo.save(st.meters, meter, SwitchState.copy)
        undo.save(st.last_full, meter)
        undo.save(st.rpc_asked, meter)
        undo.save_member(st.offline, meter)
        undo.save_member(st.unasked, meter)

    def _lost(self, plan: BatchPlan, lost: list[Lost], why: str) -> None:
        for gap in lost:
            plan.lost.append(gap)
            plan.sequences[gap.key] = self.sequences.states[gap.key]
            log.warning("%s: seq %d..%d %s; counted as lost", AutomateSource(*gap.key).label,
                        gap.first, gap.last, why)

    def watch(self, now: datetime, sources: list[str], health: Health, lookup: Lookup = nothing_stored) -> BatchPlan:
        """The timer's alarms (no data, probe fault) of ``sources`` at ``now``: ``health(source,
        active)`` gives each one's values and details. A dry run first finds the sources whose alarm
        state would change; only those are locked (as a batch locks its sources), refreshed if
        another bridge changed them, evaluated again and their version bumped. Steady state: no
        lock, no write."""
        self._undo.clear()
        plan = BatchPlan()
        active = {a.key: a for a in self.alarms.active()}
        moving = []
        for src in sources:
            values, details = health(src, active)
            if self.alarms.evaluate(parse_source(src), values, now, details):
                moving.append(src)
        self._undo.undo()  # only a dry run: nothing is decided before the source is locked
        self._undo.clear()
        if not moving:
            return plan
        which: dict[str, Key | str] = {}
        for src in moving:
            source = parse_source(src)
            which[src] = (source.unit, source.automate) if isinstance(source, AutomateSource) else source.meter
        stored = lookup(Wanted(set(), set(), {src: self.versions.get(src) for src in moving}))
        self._refresh(stored, which, now)
        active = {a.key: a for a in self.alarms.active()}
        for src in moving:
            values, details = health(src, active)
            events = self.alarms.evaluate(parse_source(src), values, now, details)
            if events:
                self._alarm(plan, events)
                self._undo.save(self.versions, src)
                plan.versions[src] = self.versions[src] = self.versions.get(src, 0) + 1
        return plan

    def status_requests(self, now: datetime) -> list[Outgoing]:
        """``Shelly.GetStatus`` for every online meter whose last full status is older than the
        refresh period: a Shelly never resends unchanged values, so a periodic full status is what
        bounds how long a missed partial can leave its state wrong."""
        plan = BatchPlan()
        for meter in list(self._st.meters):
            last = self._st.last_full.get(meter)
            if meter in self._st.unasked or MeterSource(meter).key in self.disabled:
                continue
            if meter not in self._st.offline and (last is None or now - last >= self.status_refresh):
                self._ask_status(meter, now, plan, force=False)
        return plan.publish

    # -- first pass ------------------------------------------------------------------------------
    def _decode(self, msg: RawMessage, reject_reason: str | None) -> _Decoded:
        try:
            if reject_reason is not None:
                return _Rejected(msg, reject_reason, self._seq_of(msg))
            return _Events(msg, self.decoder.decode(msg.topic, msg.payload))
        except ValidationError as exc:
            return _Rejected(msg, exc.reason, self._seq_of(msg))
        except Exception as exc:
            log.exception("internal error decoding %s; the message is held (not acknowledged)",
                          printable(msg.topic))
            return _Held(msg, f"{type(exc).__name__}: {exc}")

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
        r = d.reading if isinstance(d, _Events) else None
        if r is not None and r.seq is not None:
            return (r.unit, r.automate), r.seq, r.boot
        return None

    # -- second pass -------------------------------------------------------------------------------
    def _apply(self, d: _Decoded, stored: Stored, batch: Stored, plan: BatchPlan) -> None:
        if isinstance(d, _Rejected):
            self._reject(plan, d.msg, d.reason, d.seq)
            return
        if isinstance(d, _Held):
            plan.held.append((d.msg, d.error))
            return
        msg = d.msg
        devices = {k for ev in d.events if (k := device_of(ev)) is not None}
        refused = sorted(devices & self.disabled)
        if refused:
            raise ValidationError(f"device {refused[0]} is disabled by an administrator: its data is not stored")
        for device in devices:
            plan.devices_seen[device] = msg.received_at
        for ev in d.events:
            match ev:
                case ReadingEvent(reading=reading):
                    self._reading(msg, reading, stored, batch, plan)
                case OnlineEvent(device=device, online=online, ts=ts):
                    self._online(msg, device, online, ts, plan)
                case SwitchEvent():
                    self._switch(msg, ev, stored, batch, plan)
                case AskStatus(meter=meter):
                    self._ask_status(meter, msg.received_at, plan, force=True)
                    self._ask_info(meter, plan)
                case DeviceInfo(device=device):
                    plan.device_info[device] = ev
                case Ignored() | RpcAnswer():
                    plan.ignored += 1
                case Own() | AlarmEvent():
                    pass  # ours (only the bridge and the web UI may write there), seen through '#'

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
        if received_at - ts > self.max_age:
            raise ValidationError(
                f"timestamp {format_ts(ts)} is too old: {(received_at - ts).days} days before the bridge's clock, "
                f"beyond the raw-data retention (RETENTION_RAW_DAYS={self.max_age.days}); a reading that old "
                "may already have been purged, and storing it again would count it twice in the rollups")

    def _reading(self, msg: RawMessage, reading: Reading, stored: Stored, batch: Stored,
                 plan: BatchPlan) -> None:
        self._check_clock(reading.ts, msg.received_at)
        src = AutomateSource(reading.unit, reading.automate)
        key: Key = (reading.unit, reading.automate)
        row_key = (reading.unit, reading.automate, reading.ts)
        if reading.seq is None:
            # A legacy HTTP sender's reading (no seq; its key was looked up): numbered here, under
            # the automate's lock, in a life of its own. Nothing is ever asked back from it.
            have = stored.readings.get(row_key) or batch.readings.get(row_key)
            if have is not None and have.measures == reading.measures():
                plan.duplicates += 1
                return
            st = self.sequences.states.get(key)
            seq = st.newest + 1 if st is not None and st.boot == LEGACY_BOOT else 0
            reading = replace(reading, seq=seq, boot=LEGACY_BOOT)
        assert reading.seq is not None
        implausible = self.sequences.implausible(key, reading.seq, reading.boot)
        if implausible is not None:
            raise ValidationError(implausible)
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
        measures = reading.measures()
        batch.readings[row_key] = StoredReading(None, reading.seq, measures)
        if verdict.evaluate:
            self._alarm(plan, self.alarms.evaluate(src, measures, reading.ts))

    def _alarm(self, plan: BatchPlan, events: list[Alarm]) -> None:
        for ev in events:
            plan.alarms.append(ev)
            plan.publish.append(Outgoing(self.topics.alarm(ev.source, ev.measure), ev.to_json(), retain=True))
            log.log(logging.WARNING if ev.state == "active" else logging.INFO,
                    "alarm %s: %s %s = %s (limit %s)", ev.state, ev.source.label, ev.measure, ev.value, ev.limit)

    # -- meters ----------------------------------------------------------------------------------
    def _online(self, msg: RawMessage, device: str, online: bool, ts: datetime | None, plan: BatchPlan) -> None:
        plan.states.append((device, "online" if online else "offline", ts or msg.received_at, msg.received_at))
        if not device.startswith(METERS_PREFIX):
            return
        meter = device[len(METERS_PREFIX):]
        self._meter_state(meter, plan)
        if online:
            self._st.offline.discard(meter)
        else:
            self._st.offline.add(meter)

    def _meter_state(self, meter: str, plan: BatchPlan) -> SwitchState:
        self._touch_meter(meter)
        plan.meters_seen.add(meter)
        state = self._st.meters.get(meter)
        if state is None:
            state = self._st.meters[meter] = SwitchState(meter)
        return state

    def _switch(self, msg: RawMessage, ev: SwitchEvent, stored: Stored, batch: Stored, plan: BatchPlan) -> None:
        meter = ev.meter
        first_seen = meter not in self._st.meters
        state = self._meter_state(meter, plan)
        if ev.protocol == "gen1" and meter not in self._st.unasked:
            # A Gen1 meter has no RPC to ask; and the registry learns its generation even if its
            # announce (not retained) was missed.
            self._st.unasked.add(meter)
            key = MeterSource(meter).key
            plan.device_info.setdefault(key, DeviceInfo(key, None, 1, None))
        if ev.ts is not None:
            self._check_clock(ev.ts, msg.received_at)
        # No device time (status/switch:0, Gen1): stored under the bridge's receive time.
        ts = ev.ts or to_ms(msg.received_at)
        before = state.copy()
        try:
            sample, reset = state.apply(ev.status, ts, full=ev.full, device_time=ev.ts is not None)
        except ValidationError:
            # The frame is refused and the state kept as it was; ask for a full status all the same,
            # since what the meter believes and what we hold may now differ.
            self._ask_status(meter, msg.received_at, plan, force=False)
            raise
        if ev.full:
            self._st.last_full[meter] = msg.received_at
        if ev.answer:
            self._st.rpc_asked.pop(meter, None)
        if not state.complete:
            self._ask_status(meter, msg.received_at, plan, force=first_seen)
        row_key = (meter, sample.ts)
        have = stored.samples.get(row_key)
        planned = batch.samples.get(row_key)
        if have is None and planned is not None and ev.ts is None:
            # Two time-less frames of one meter within a millisecond (Gen1 sends power and energy
            # back to back): one row, the merged state after both.
            plan.samples = [(sample, t) if s.meter == meter and s.ts == sample.ts else (s, t)
                            for s, t in plan.samples]
            batch.samples[row_key] = StoredSample(None, sample)
            self._counter_reset(reset, plan)
            self._alarm(plan, self.alarms.evaluate(MeterSource(meter), sample.alarm_values(), sample.ts))
            return
        have = have or planned
        if have is not None:
            if ev.answer or ev.ts is None:
                # sys.unixtime has whole seconds: two answers (e.g. to the ask on the retained
                # "online" and on the reconnect) can share one. The state took this one; the row of
                # that second stays the first.
                plan.duplicates += 1
                return
            if _differs(have.sample, sample, ev):
                state.restore(before)  # as if it never came
                where = f"id {have.id}" if have.id is not None else "received earlier in this batch"
                raise ValidationError(f"conflicts with the stored power reading of meter {meter} at "
                                      f"{format_ts(sample.ts)} ({where}): same meter and time, other values")
            plan.duplicates += 1
            return
        plan.samples.append((sample, msg.received_at))
        batch.samples[row_key] = StoredSample(None, sample)
        self._counter_reset(reset, plan)
        self._alarm(plan, self.alarms.evaluate(MeterSource(meter), sample.alarm_values(), sample.ts))

    @staticmethod
    def _counter_reset(reset: CounterReset | None, plan: BatchPlan) -> None:
        if reset is None:
            return
        plan.resets.append(reset)
        log.warning("meter %s: energy counter reset (%.3f Wh -> %.3f Wh at %s); %.3f Wh counted before it "
                    "are kept as its offset", reset.meter, reset.before_wh, reset.after_wh, format_ts(reset.ts),
                    reset.offset_wh)

    def _ask_info(self, meter: str, plan: BatchPlan) -> None:
        """``Shelly.GetDeviceInfo``: model, generation and firmware for the device registry."""
        self._st.rpc_id += 1
        body = shelly.request(self._st.rpc_id, Topics.shelly_reply_src(meter), "Shelly.GetDeviceInfo")
        plan.publish.append(Outgoing(Topics.shelly(meter, "rpc"), body))

    def _ask_status(self, meter: str, now: datetime, plan: BatchPlan, *, force: bool) -> None:
        if meter in self._st.unasked or MeterSource(meter).key in self.disabled:
            return  # a Gen1 meter has no RPC (and resends its values itself); a disabled one is left alone
        asked = self._st.rpc_asked.get(meter)
        if not force and asked is not None and now - asked < self.rpc_retry:
            return
        self._st.rpc_asked[meter] = now  # (in a batch, _touch_meter journaled it)
        self._st.rpc_id += 1
        body = shelly.request(self._st.rpc_id, Topics.shelly_reply_src(meter), "Shelly.GetStatus")
        plan.publish.append(Outgoing(Topics.shelly(meter, "rpc"), body))


def _differs(have: PowerSample, new: PowerSample, ev: SwitchEvent) -> bool:
    """Whether a frame disagrees with the stored sample under the same (meter, ts): only the
    fields the frame itself carries count (a partial says nothing about the others)."""
    carried = set(new.measures()) | {"output"}
    if not ev.full:
        partial = shelly.sample_from_switch(new.meter, new.ts, ev.status)
        carried = {k for k, v in partial.to_dict().items() if v is not None} - {"meter", "ts", "errors",
                                                                                 "energy_offset_wh",
                                                                                 "energy_total_wh"}
    old, cur = have.to_dict(), new.to_dict()
    return any(old.get(k) != cur.get(k) for k in carried)
