"""An undo log: put back what a batch changed, at the cost of what it touched.

The bridge must leave its state exactly as it was when a batch's transaction fails (a retry must
give the same result). Copying all state before every batch costs in proportion to the plant (it
was 44 % of the bridge's CPU); recording the first value of each key a batch touches costs in
proportion to the batch.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

_MISSING = object()


class UndoLog:
    """Remembers the value each touched key had when first touched since :meth:`clear`."""

    def __init__(self) -> None:
        self._entries: list[tuple[Any, Any, Any]] = []  # (mapping or set, key, old value or _MISSING)
        self._seen: set[tuple[int, Any]] = set()
        self._actions: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._entries) + len(self._actions)

    def save(self, mapping: MutableMapping[Any, Any], key: Any, copy: Callable[[Any], Any] | None = None) -> None:
        """Before changing ``mapping[key]`` (or the object it holds, then pass ``copy``)."""
        tag = (id(mapping), key)
        if tag in self._seen:
            return
        self._seen.add(tag)
        old = mapping.get(key, _MISSING)
        if old is not _MISSING and copy is not None:
            old = copy(old)
        self._entries.append((mapping, key, old))

    def save_member(self, members: set[Any], item: Any) -> None:
        """Before adding ``item`` to or discarding it from ``members``."""
        tag = (id(members), item)
        if tag in self._seen:
            return
        self._seen.add(tag)
        self._entries.append((members, item, item in members))

    def on_undo(self, action: Callable[[], None]) -> None:
        """Run ``action`` on undo (for what is not a key of a mapping, e.g. a counter)."""
        self._actions.append(action)

    def undo(self) -> None:
        for target, key, old in reversed(self._entries):
            if isinstance(target, set):
                (target.add if old else target.discard)(key)
            elif old is _MISSING:
                target.pop(key, None)
            else:
                target[key] = old
        for action in reversed(self._actions):
            action()
        self.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._seen.clear()
        self._actions.clear()
