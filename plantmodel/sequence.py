"""Which readings of each automate are settled, which are new, and what to confirm to the units.

Pure logic, no I/O. A unit numbers each automate's readings with ``seq`` (0, 1, 2 … from the unit's
start). For each automate the tracker keeps:

- ``confirmed``: every seq up to it is *settled* (stored, recorded as rejected, or declared lost
  after ``gap_timeout``); the bridge confirms it to the unit, which may then forget those readings;
- ``ahead``: settled seqs above ``confirmed + 1`` (a gap is open below them), as inclusive ranges;
- ``newest`` / ``newest_ts``: the highest seq settled and the unit time of the newest stored one (the
  dashboard's "latest", and what tells a unit's previous life from its current one);
- ``max_ts``: the newest unit time stored in this life of the unit;
- ``boot``: the unit's boot id (readings carry it): a new one means the unit restarted.

A reading is classified by :meth:`SequenceTracker.settle`:

- ``NEW``: above everything seen: the unit's own order says it is the latest, so alarms are
  evaluated on it, whatever its timestamp (a reading stamped in the future cannot hide the next ones);
- ``LATE``: fills a gap (e.g. resent after a broker crash): stored, but older than the current state;
- ``REPLAY``: already settled (a redelivery): nothing to do;
- ``RESTART``: the unit restarted (its boot id changed; for a unit that sends none, its counter
  went back while its clock went forward): the history of its previous life is dropped and the
  reading is ``NEW`` in the new one.

Bounded: at most :data:`MAX_RANGES` ranges above a gap (a unit skipping every other ``seq`` would
otherwise grow them without end); past that the oldest gap is declared lost at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from plantmodel.confirm import AutomateConfirmation, Confirmation
from plantmodel.undo import UndoLog

Key = tuple[int, int]  # (unit, automate)
MAX_RANGES = 100
# A seq more than this above the newest of the same life is not believed (a corrupt or crafted
# counter would otherwise pose as the newest reading for the rest of that life).
MAX_SEQ_JUMP = 1_000_000


class Verdict(Enum):
    NEW = "new"
    LATE = "late"
    REPLAY = "replay"
    RESTART = "restart"

    @property
    def evaluate(self) -> bool:
        """Whether the reading is the automate's newest and so drives its alarm state."""
        return self in (Verdict.NEW, Verdict.RESTART)


@dataclass(slots=True)
class SeqState:
    confirmed: int = -1
    newest: int = -1
    newest_ts: datetime | None = None
    max_ts: datetime | None = None
    ahead: list[list[int]] = field(default_factory=list)  # sorted, disjoint [lo, hi] above confirmed + 1
    gap_since: datetime | None = None  # when the oldest open gap opened or last moved up
    boot: str | None = None
    prev_boot: str | None = None  # the life before: its late messages must not reset this one

    def copy(self) -> SeqState:
        return SeqState(self.confirmed, self.newest, self.newest_ts, self.max_ts, [r[:] for r in self.ahead],
                        self.gap_since, self.boot, self.prev_boot)

    def settled(self, seq: int) -> bool:
        if seq <= self.confirmed:
            return True
        return bool(self.ahead) and any(lo <= seq <= hi for lo, hi in self.ahead)

    def _mark(self, seq: int) -> None:
        if seq == self.confirmed + 1:
            self.confirmed = seq
            while self.ahead and self.ahead[0][0] == self.confirmed + 1:
                self.confirmed = self.ahead.pop(0)[1]
            return
        # Insert into the ranges, merging neighbours (gaps are few: a short list suffices).
        ranges = self.ahead
        i = 0
        while i < len(ranges) and ranges[i][1] < seq - 1:
            i += 1
        if i < len(ranges) and ranges[i][0] <= seq + 1:
            ranges[i][0], ranges[i][1] = min(ranges[i][0], seq), max(ranges[i][1], seq)
            if i + 1 < len(ranges) and ranges[i + 1][0] <= ranges[i][1] + 1:
                ranges[i][1] = max(ranges[i][1], ranges.pop(i + 1)[1])
        else:
            ranges.insert(i, [seq, seq])

    @property
    def missing(self) -> tuple[int, int] | None:
        """The first open gap (inclusive), if any."""
        return (self.confirmed + 1, self.ahead[0][0] - 1) if self.ahead else None

    def ahead_json(self) -> str:
        return json.dumps(self.ahead, separators=(",", ":"))

    @staticmethod
    def parse_ahead(text: str | None) -> list[list[int]]:
        data = json.loads(text) if text else []
        return [[int(lo), int(hi)] for lo, hi in data]


@dataclass(frozen=True, slots=True)
class Lost:
    key: Key
    first: int
    last: int


class SequenceTracker:
    """``journal``: where every change is recorded before it is made, so that a batch whose
    transaction fails can be undone (see :class:`plantmodel.undo.UndoLog`)."""

    def __init__(self, gap_timeout: timedelta, journal: UndoLog | None = None) -> None:
        self.gap_timeout = gap_timeout
        self.states: dict[Key, SeqState] = {}
        self._lost: list[Lost] = []  # gaps given up on since the last take_lost()
        self.journal = journal if journal is not None else UndoLog()

    def _touch(self, key: Key) -> None:
        self.journal.save(self.states, key, SeqState.copy)

    def replace(self, key: Key, state: SeqState | None) -> None:
        """Take ``state`` as the automate's (another bridge settled readings of it since)."""
        self._touch(key)
        if state is None:
            self.states.pop(key, None)
        else:
            self.states[key] = state

    def same_life(self, key: Key, boot: str | None) -> bool:
        """Whether a reading with ``boot`` belongs to the automate's current life (as far as known)."""
        st = self.states.get(key)
        return st is None or self._same_life(st, boot)

    def beyond(self, key: Key, seq: int, boot: str | None) -> bool:
        """Whether ``seq`` is above everything settled in the automate's current life (so, unless
        another bridge stored it meanwhile, not stored yet): what lets a batch skip looking up
        rows that cannot exist. Only a guess: the database's unique key has the last word."""
        st = self.states.get(key)
        return (st is not None and st.newest >= 0 and boot == st.boot and boot is not None
                and st.newest < seq <= st.newest + MAX_SEQ_JUMP)

    def implausible(self, key: Key, seq: int, boot: str | None) -> str | None:
        """Why ``seq`` cannot be believed as the next reading of the current life, if it cannot."""
        st = self.states.get(key)
        if st is None or st.newest < 0 or not self._same_life(st, boot) or seq <= st.newest + MAX_SEQ_JUMP:
            return None
        return (f"seq {seq} jumps more than {MAX_SEQ_JUMP} above the newest reading ({st.newest}) of the "
                "same run of the unit (a restart sends a new boot id)")

    def settle(self, key: Key, seq: int, ts: datetime | None, now: datetime, boot: str | None = None) -> Verdict:
        """Record that reading ``seq`` of automate ``key`` is settled. ``ts`` is the unit time of a
        reading being stored, None for one recorded as rejected (its clock is not trusted, and
        it can neither start a new life nor move the newest reading far)."""
        self._touch(key)
        st = self.states.get(key)
        verdict = Verdict.NEW
        if st is None:
            if ts is None:
                return Verdict.REPLAY  # a rejected first reading anchors nothing
            # Never seen: start from -1, so that readings before this one (if the unit still
            # holds them) show as a gap and are asked for again.
            st = self.states[key] = SeqState(boot=boot)
        elif boot is not None and boot == st.prev_boot:
            return Verdict.REPLAY  # a late message of the unit's previous life: nothing to settle now
        elif ts is None:
            if not self._same_life(st, boot) or (st.newest >= 0 and seq > st.newest + MAX_SEQ_JUMP):
                return Verdict.REPLAY
        elif self._restarted(st, seq, ts, boot):
            st = self.states[key] = SeqState(boot=boot, prev_boot=st.boot)
            verdict = Verdict.RESTART
        if st.settled(seq):
            return Verdict.REPLAY
        confirmed_before = st.confirmed
        st._mark(seq)
        if st.boot is None and boot is not None:
            st.boot = boot
        if seq > st.newest:
            st.newest = seq
            if ts is not None:
                st.newest_ts = ts
        elif verdict is Verdict.NEW:
            verdict = Verdict.LATE
        if ts is not None and (st.max_ts is None or ts > st.max_ts):
            st.max_ts = ts
        # The gap clock runs from when the oldest gap opened and restarts only when it moves up
        # (its lower end was filled): readings arriving above it are no progress.
        if not st.ahead:
            st.gap_since = None
        elif st.gap_since is None or st.confirmed != confirmed_before:
            st.gap_since = now
        while len(st.ahead) > MAX_RANGES:
            lost = self._lost
            if not lost:
                self.journal.on_undo(lost.clear)
            lost.append(self._give_up(key, st, now))
        return verdict

    @staticmethod
    def _same_life(st: SeqState, boot: str | None) -> bool:
        return boot is None or st.boot is None or boot == st.boot

    @staticmethod
    def _restarted(st: SeqState, seq: int, ts: datetime, boot: str | None) -> bool:
        if boot is not None:
            # Another boot id; or the first one from a unit whose earlier readings had none, whose
            # count went back.
            return boot != st.boot if st.boot is not None else seq <= st.newest
        # A unit that sends no boot id: its count went back while its clock went on.
        return st.max_ts is not None and seq <= st.newest and ts > st.max_ts

    @staticmethod
    def _give_up(key: Key, st: SeqState, now: datetime) -> Lost:
        first, last = st.confirmed + 1, st.ahead[0][0] - 1
        st.confirmed = st.ahead.pop(0)[1]
        st.gap_since = now if st.ahead else None
        return Lost(key, first, last)

    def take_lost(self) -> list[Lost]:
        """Gaps given up on because there were too many (see :data:`MAX_RANGES`)."""
        lost, self._lost = self._lost, []
        return lost

    def due(self, now: datetime) -> set[Key]:
        """The automates whose first gap made no progress for ``gap_timeout`` (changes nothing)."""
        return {key for key, st in self.states.items()
                if st.ahead and st.gap_since is not None and now - st.gap_since >= self.gap_timeout}

    def expire(self, now: datetime, keys: set[Key] | None = None) -> list[Lost]:
        """Declare lost the first gap of every automate (of ``keys``, if given) that made no
        progress for ``gap_timeout`` (the unit no longer holds those readings: it dropped them, or
        restarted)."""
        lost: list[Lost] = []
        for key in sorted(self.due(now) if keys is None else keys & self.due(now)):
            self._touch(key)
            lost.append(self._give_up(key, self.states[key], now))
        return lost

    def confirmation(self, unit: int, now: datetime) -> Confirmation | None:
        """The retained confirmation of every automate of ``unit`` that has a stored reading."""
        return self.confirmations({unit}, now).get(unit)

    def confirmations(self, units: set[int], now: datetime) -> dict[int, Confirmation]:
        """:meth:`confirmation` of each of ``units``, in one pass over the automates."""
        automates: dict[int, dict[int, AutomateConfirmation]] = {}
        for (u, a), st in self.states.items():
            if u in units and st.newest_ts is not None:
                automates.setdefault(u, {})[a] = AutomateConfirmation(st.confirmed, st.newest, st.newest_ts, st.boot)
        return {u: Confirmation(u, now, entries) for u, entries in sorted(automates.items())}
