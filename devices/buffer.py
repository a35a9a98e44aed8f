"""Store-and-forward pieces of a unit's MQTT link (pure, thread-safe, no paho).

:class:`OutboundBuffer` keeps readings while the broker is unreachable (bounded, drops the oldest);
:class:`SendWindow` limits how many un-acknowledged messages are handed to paho at once, because
a long paho queue collapses throughput and would escape our bound.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class OutboundBuffer(Generic[T]):
    """Bounded FIFO that drops its oldest item when full (recent readings matter most)."""

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("buffer size must be >= 1")
        self.maxlen = maxlen
        self.dropped = 0  # total since start
        self._items: deque[T] = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def append(self, item: T) -> T | None:
        """Add ``item``; returns the item dropped to make room, if any."""
        with self._lock:
            dropped = None
            if len(self._items) >= self.maxlen:
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            return dropped

    def pop(self) -> T | None:
        """The oldest item, or None when empty."""
        with self._lock:
            return self._items.popleft() if self._items else None

    def push_back(self, item: T) -> None:
        """Return an item that could not be sent to the front, keeping the order. If the buffer
        filled up meanwhile, the item is the oldest and is the one dropped."""
        with self._lock:
            if len(self._items) >= self.maxlen:
                self.dropped += 1
                return
            self._items.appendleft(item)


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
