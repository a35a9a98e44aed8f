"""Store-and-forward pieces of a unit's MQTT link (pure, thread-safe, no paho).

:class:`UnconfirmedReadings` keeps every reading of a unit until the bridge confirms it is
committed (:mod:`plantmodel.confirm`): a broker's PUBACK only means the reading sits in the
broker's memory, which a broker crash loses. It is bounded (the oldest reading goes when full),
and it is also the send queue: what to hand to paho next, in the unit's original order.

:class:`SendWindow` limits how many un-acknowledged messages are handed to paho at once, because
a long paho queue collapses throughput and would escape our bound.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from plantmodel.confirm import Confirmation
from plantmodel.errors import ValidationError
from plantmodel.readings import Reading


@dataclass(frozen=True, slots=True)
class HeldReading:
    """A reading the unit keeps until it is confirmed, ready to (re)send."""

    order: int  # position in the unit's output since start: the original order
    automate: int
    seq: int
    topic: str
    payload: str


@dataclass(frozen=True, slots=True)
class ConfirmOutcome:
    forgotten: int  # readings settled by this confirmation
    applied: tuple[int, ...]  # automates whose entry was taken into account
    stale: tuple[int, ...]  # automates whose entry predates this run (retained from a previous life)


@dataclass(frozen=True, slots=True)
class GapResend:
    """A range the bridge reported missing and what the unit could requeue of it."""

    automate: int
    confirmed: int
    newest: int
    requeued: int  # readings of (confirmed, newest] still held and not already queued


@dataclass(slots=True)
class _Gap:
    confirmed: int
    newest: int
    since: float  # first seen (monotonic); reset only when the bridge reports no gap
    resent_at: float = float("-inf")


class UnconfirmedReadings:
    """A unit's readings between their creation and the bridge's confirmation.

    Per automate, readings are kept ordered by ``seq``; a confirmation forgets every held reading
    of that automate with ``seq <= confirmed``. Being sent does not remove a reading: the send
    queue (oldest first) only says what still has to be handed to paho, so a reading can be queued
    again (on reconnect, or when the bridge reports a gap) as long as it is unconfirmed.

    Bounded by ``maxlen`` readings in total: when full, the oldest unconfirmed reading is dropped
    and counted in :attr:`dropped` (the bridge then sees a gap, and declares it lost after its gap
    timeout).

    Thread-safe: the unit's tick thread adds and sends, paho's network thread confirms and
    requeues on reconnect.
    """

    def __init__(self, unit: int, maxlen: int, resend_after: float) -> None:
        if maxlen < 1:
            raise ValueError("buffer size must be >= 1")
        if resend_after <= 0:
            raise ValueError("the resend delay must be > 0")
        self.unit = unit
        self.maxlen = maxlen
        self.resend_after = resend_after
        self.dropped = 0  # total since start
        self._lock = threading.Lock()
        self._next_order = 0
        self._start: datetime | None = None
        self._boot: str | None = None  # this run's boot id, from its first reading
        self._confirmed_any = False
        # order -> reading; insertion order is the original order (OrderedDict: popping the
        # oldest is O(1), a plain dict degrades when emptied from the front).
        self._held: OrderedDict[int, HeldReading] = OrderedDict()
        self._by_automate: dict[int, OrderedDict[int, int]] = {}  # automate -> seq -> order
        # Send queue: a min-heap of orders with lazy deletion; `_queued` is the truth.
        self._heap: list[int] = []
        self._queued: set[int] = set()
        self._confirmed: dict[int, int] = {}  # automate -> highest confirmed seq seen in this run
        self._gaps: dict[int, _Gap] = {}

    def __len__(self) -> int:
        """Readings not confirmed yet (queued or already sent)."""
        with self._lock:
            return len(self._held)

    @property
    def queued(self) -> int:
        """Readings waiting to be handed to paho."""
        with self._lock:
            return len(self._queued)

    @property
    def start(self) -> datetime | None:
        """The unit timestamp of the first reading of this run (None before it)."""
        with self._lock:
            return self._start

    @property
    def confirmed_any(self) -> bool:
        """Whether a confirmation for this run has come from the bridge."""
        with self._lock:
            return self._confirmed_any

    def add(self, reading: Reading, topic: str) -> HeldReading | None:
        """Hold ``reading`` and queue it for sending; returns the reading dropped to make room."""
        if reading.unit != self.unit:
            raise ValueError(f"reading of unit {reading.unit} added to unit {self.unit}")
        if reading.seq is None:
            raise ValueError("a unit numbers its readings: seq is required")
        payload = reading.to_json()  # outside the lock: paho's thread should not wait on JSON
        with self._lock:
            seqs = self._by_automate.setdefault(reading.automate, OrderedDict())
            if seqs and reading.seq <= next(reversed(seqs)):
                # Forgetting walks from the front of each automate, so seqs must only grow.
                raise ValueError(f"automate {reading.automate}: seq {reading.seq} is not after "
                                 f"{next(reversed(seqs))}")
            if self._start is None:
                self._start, self._boot = reading.ts, reading.boot
            dropped = None
            if len(self._held) >= self.maxlen:
                order, dropped = self._held.popitem(last=False)
                del self._by_automate[dropped.automate][dropped.seq]
                self._queued.discard(order)
                self.dropped += 1
            item = HeldReading(self._next_order, reading.automate, reading.seq, topic, payload)
            self._next_order += 1
            self._held[item.order] = item
            seqs[item.seq] = item.order
            self._enqueue(item.order)
            self._compact()
            return dropped

    def next(self) -> HeldReading | None:
        """Take the oldest queued reading to hand it to paho (it stays held until confirmed)."""
        with self._lock:
            while self._heap:
                order = heapq.heappop(self._heap)
                if order in self._queued:
                    self._queued.discard(order)
                    return self._held[order]
            return None

    def unsent(self, item: HeldReading) -> None:
        """Paho did not take ``item``: it is queued again, still first in line."""
        with self._lock:
            if item.order in self._held:
                self._enqueue(item.order)

    def requeue_all(self) -> int:
        """Queue every unconfirmed reading again, in original order (after a reconnect nothing
        says which sent ones reached the bridge). Returns how many had been sent already."""
        with self._lock:
            resent = len(self._held) - len(self._queued)
            self._queued = set(self._held)
            self._heap = list(self._held)  # ascending orders: already a valid heap
            return resent

    def confirm(self, confirmation: Confirmation, now: float) -> ConfirmOutcome:
        """Apply a confirmation received at monotonic time ``now``: forget what it settles and
        note the gaps it reports. Raises ValidationError when it is for another unit."""
        if confirmation.unit != self.unit:
            raise ValidationError(f"confirmation for unit {confirmation.unit} on unit {self.unit}'s topic")
        forgotten = 0
        applied: list[int] = []
        stale: list[int] = []
        with self._lock:
            for automate, entry in sorted(confirmation.automates.items()):
                # seq restarts at 0 on every start: an entry of a previous life (retained) says
                # nothing about ours. The boot id tells; without one, the entry's newest reading
                # being older than this run's first one does (not if the clock went back at boot).
                if self._start is None or (entry.boot != self._boot if self._boot
                                           else entry.newest_ts < self._start):
                    stale.append(automate)
                    continue
                applied.append(automate)
                forgotten += self._forget(automate, entry.confirmed)
                if entry.confirmed < self._confirmed.get(automate, -1):
                    continue  # an older confirmation than one already seen: the newer one stands
                self._confirmed[automate] = entry.confirmed
                gap = self._gaps.get(automate)
                if not entry.gap:
                    self._gaps.pop(automate, None)
                elif gap is None:
                    self._gaps[automate] = _Gap(entry.confirmed, entry.newest, since=now)
                else:  # still a gap: the clock keeps running, the range follows the bridge
                    gap.confirmed, gap.newest = entry.confirmed, entry.newest
            if applied:
                self._confirmed_any = True
            self._compact()
        return ConfirmOutcome(forgotten, tuple(applied), tuple(stale))

    def resend_gaps(self, now: float) -> list[GapResend]:
        """Queue again the held readings of every gap the bridge has reported for at least
        ``resend_after`` seconds, at most once per ``resend_after`` per automate, skipping those
        already queued. A short gap is left alone: it is usually readings still in flight."""
        out: list[GapResend] = []
        with self._lock:
            for automate, gap in self._gaps.items():
                if now - gap.since < self.resend_after or now - gap.resent_at < self.resend_after:
                    continue
                gap.resent_at = now
                requeued = 0
                for seq, order in self._by_automate.get(automate, OrderedDict()).items():
                    if seq > gap.newest:
                        break
                    if seq > gap.confirmed and order not in self._queued:
                        self._enqueue(order)
                        requeued += 1
                out.append(GapResend(automate, gap.confirmed, gap.newest, requeued))
        return out

    # -- under the lock ---------------------------------------------------------------------
    def _enqueue(self, order: int) -> None:
        if order not in self._queued:
            self._queued.add(order)
            heapq.heappush(self._heap, order)

    def _forget(self, automate: int, confirmed: int) -> int:
        seqs = self._by_automate.get(automate)
        n = 0
        while seqs:
            seq, order = next(iter(seqs.items()))
            if seq > confirmed:
                break
            seqs.popitem(last=False)
            del self._held[order]
            self._queued.discard(order)
            n += 1
        return n

    def _compact(self) -> None:
        # Forgotten or dropped readings leave their heap entries behind; rebuild before they
        # outnumber the live ones, so the heap stays bounded like the store.
        if len(self._heap) > 2 * len(self._queued) + 64:
            self._heap = sorted(self._queued)


class SendWindow:
    """Message ids handed to paho and not yet acknowledged (PUBACK)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.size = size
        self._inflight: set[int] = set()
        # An ack can arrive (on paho's thread) before publish() has returned the mid to us.
        self._early: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._inflight)

    @property
    def free(self) -> int:
        with self._lock:
            return max(0, self.size - len(self._inflight))

    def sent(self, mid: int) -> None:
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
            else:
                self._inflight.add(mid)

    def acked(self, mid: int) -> None:
        with self._lock:
            if mid in self._inflight:
                self._inflight.discard(mid)
            elif len(self._early) < 2 * self.size:  # bounded: never grows without limit
                self._early.add(mid)
