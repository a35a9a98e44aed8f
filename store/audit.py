"""The tamper-evident audit trail (``audit_log``): an append-only hash chain.

Each entry's ``hash`` is the SHA-256 of the previous entry's hash and the entry's own canonical
content, so editing, inserting or deleting an entry breaks the chain at that point
(:func:`verify`). ``prev_hash`` is unique: two writers racing for the same head cannot both land;
the loser re-reads the head and tries again. The caller owns the transaction: an entry commits with
the change it records, or not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plantmodel.readings import format_ts
from store.models import AuditEntry

log = logging.getLogger(__name__)

GENESIS = "0" * 64  # the prev_hash of the first entry
MAX_RACES = 8
PROGRESS_EVERY = 10_000


def canonical_details(details: Mapping[str, Any]) -> str:
    """The details as stored and hashed: sorted keys, no spaces, non-JSON values as text."""
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(prev_hash: str, at: datetime, actor: str | None, address: str | None, action: str,
               details: str) -> str:
    content = json.dumps([prev_hash, format_ts(at), actor, address, action, details],
                         separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def head(session: Session) -> str:
    """The hash the next entry chains to (a locking read: the latest committed head, whatever the
    transaction's snapshot)."""
    last = session.scalars(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
                           .with_for_update()).first()
    return last or GENESIS


def _queue(session: Session) -> None:
    """Wait for the chain's first entry, locked until this transaction ends: writers take turns on it
    (MariaDB). Locking the head instead would deadlock: two writers share the gap lock past the last
    row and then both insert into that gap. Call it only on a chain that has begun."""
    session.scalars(select(AuditEntry.id).order_by(AuditEntry.id).limit(1).with_for_update()).first()


def append(session: Session, action: str, details: Mapping[str, Any], *, at: datetime,
           actor: str | None = None, address: str | None = None) -> AuditEntry:
    """Add one entry to the chain within the caller's transaction (flushed, not committed)."""
    text = canonical_details(details)
    # The first entry ever: no lock (a lock on an empty table is a shared gap lock, a deadlock for two
    # writers); of two first entries, the unique prev_hash lets one land, the other queues below.
    started = session.scalars(select(AuditEntry.id).limit(1)).first() is not None  # the snapshot's view
    for _ in range(MAX_RACES):
        if started:
            _queue(session)
            prev = head(session)
        else:
            prev = GENESIS
        started = True  # a lost race for the first entry: the chain has begun, queue for it
        entry = AuditEntry(at=at, actor=actor, address=address, action=action, details=text, prev_hash=prev,
                           hash=entry_hash(prev, at, actor, address, action, text))
        try:
            with session.begin_nested():  # a lost race rolls back this entry only
                session.add(entry)
        except IntegrityError:
            log.info("audit: another writer took head %s; chaining again", prev[:12])
            continue
        return entry
    raise RuntimeError(f"audit: could not append {action!r} after {MAX_RACES} races for the chain's head")


@dataclass(frozen=True, slots=True)
class Problem:
    entry_id: int
    what: str


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    head: str
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _entries(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    last_id = 0
    while True:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id)
                               .limit(batch)).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


def verify(session: Session, *, progress: Callable[[int], None] | None = None,
           every: int = PROGRESS_EVERY) -> Verification:
    """Walk the chain in id order. An edited entry no longer matches its hash; a deleted one leaves
    the next entry pointing at a hash that is not its predecessor's; an inserted one does both.
    Deleting the newest entries leaves a shorter chain that is intact: compare ``head`` (and
    ``entries``) with a value recorded earlier to see that. ``progress(n)`` is called every
    ``every`` entries on a long chain."""
    problems: list[Problem] = []
    prev, count = GENESIS, 0
    for e in _entries(session):
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
        if e.prev_hash != prev:
            problems.append(Problem(e.id, "does not chain to the entry before it (an entry was deleted or "
                                          "inserted before this one)"))
        if entry_hash(e.prev_hash, e.at, e.actor, e.address, e.action, e.details) != e.hash:
            problems.append(Problem(e.id, "its content does not match its hash (edited)"))
        prev = e.hash
    return Verification(count, prev, tuple(problems))
