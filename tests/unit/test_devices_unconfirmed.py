"""A unit's unconfirmed-readings store (devices.buffer) and how its link applies the bridge's
confirmations: forget only what is confirmed, resend on reconnect and on a reported gap."""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import threading
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest

from devices.buffer import GapResend, HeldReading, UnconfirmedReadings
from devices.units import UnitSimulator
from plantmodel.confirm import AutomateConfirmation, Confirmation
from plantmodel.errors import ValidationError
from plantmodel.readings import Reading
from tests.unit.test_devices_units import make_link

UNIT = 3
T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


@functools.cache
def _template() -> Reading:
    return UnitSimulator(UNIT, 1, random.Random(1)).tick(T0)[0]


def reading(automate: int, seq: int) -> Reading:
    return dataclasses.replace(_template(), automate=automate, seq=seq, ts=T0 + timedelta(seconds=seq))


def store(maxlen: int = 1000, resend_after: float = 5.0) -> UnconfirmedReadings:
    return UnconfirmedReadings(UNIT, maxlen, resend_after)


def add(s: UnconfirmedReadings, *keys: tuple[int, int]) -> list[HeldReading | None]:
    return [s.add(reading(a, seq), f"plant/units/{UNIT}/automates/{a}/readings") for a, seq in keys]


def interleaved(automates: int, seqs: range) -> list[tuple[int, int]]:
    """The order a unit produces readings in: every automate once per tick."""
    return [(a, seq) for seq in seqs for a in range(1, automates + 1)]


def drain(s: UnconfirmedReadings) -> list[tuple[int, int]]:
    """Everything queued, in the order it would be handed to paho."""
    out = []
    while (item := s.next()) is not None:
        out.append((item.automate, item.seq))
    return out


def confirmation(entries: dict[int, tuple[int, int]], *, newest_ts: datetime | None = None,
                 unit: int = UNIT, boot: str | None = "ours") -> Confirmation:
    """automate -> (confirmed, newest); newest_ts defaults to the newest reading's own ts; boot to
    this run's (the readings' boot id), None for a bridge that knows none."""
    return Confirmation(unit, T0 + timedelta(hours=1), {
        a: AutomateConfirmation(c, n, newest_ts if newest_ts is not None else T0 + timedelta(seconds=n),
                                _template().boot if boot == "ours" else boot)
        for a, (c, n) in entries.items()})


# -- holding and confirming --------------------------------------------------------------------

def test_sent_readings_stay_held_until_confirmed() -> None:
    s = store()
    add(s, *interleaved(2, range(3)))
    assert drain(s) == interleaved(2, range(3))  # original order
    assert len(s) == 6 and s.queued == 0  # handed to paho (and maybe acked): still held
    assert drain(s) == []  # but not sent twice on its own


def test_confirm_clears_up_to_confirmed_for_that_automate_only() -> None:
    s = store()
    add(s, *interleaved(2, range(5)))
    drain(s)
    outcome = s.confirm(confirmation({1: (2, 2)}), now=0.0)
    assert outcome.forgotten == 3 and outcome.applied == (1,) and outcome.stale == ()
    assert len(s) == 7 and s.confirmed_any
    s.requeue_all()
    assert drain(s) == [(2, 0), (2, 1), (2, 2), (1, 3), (2, 3), (1, 4), (2, 4)]
    assert s.confirm(confirmation({1: (4, 4), 2: (4, 4)}), now=0.0).forgotten == 7
    assert len(s) == 0


def test_confirmed_readings_still_queued_are_not_sent() -> None:
    s = store()
    add(s, *interleaved(1, range(6)))
    s.confirm(confirmation({1: (3, 3)}), now=0.0)
    assert drain(s) == [(1, 4), (1, 5)]


def test_start_time_guard_ignores_a_retained_confirmation_from_a_previous_life() -> None:
    s = store()  # a unit that sends no boot id: its start time tells its lives apart
    # Before this run's first reading nothing can be about it.
    assert s.confirm(confirmation({1: (500, 500)}, boot=None), now=0.0).stale == (1,)
    for a, seq in interleaved(2, range(4)):  # start = T0, the ts of seq 0
        s.add(dataclasses.replace(reading(a, seq), boot=None), f"plant/units/{UNIT}/automates/{a}/readings")
    assert s.start == T0
    # The previous life got up to seq 500, stamped before this start: not about our seq 0..3.
    old = confirmation({1: (500, 500), 2: (2, 2)}, newest_ts=T0 - timedelta(milliseconds=1), boot=None)
    outcome = s.confirm(old, now=0.0)
    assert outcome == type(outcome)(forgotten=0, applied=(), stale=(1, 2))
    assert len(s) == 8 and not s.confirmed_any
    # One about this run (even its very first reading) counts.
    outcome = s.confirm(confirmation({1: (0, 0)}, newest_ts=T0, boot=None), now=0.0)
    assert outcome.forgotten == 1 and outcome.applied == (1,) and s.confirmed_any


def test_confirmation_for_another_unit_is_refused() -> None:
    s = store()
    add(s, (1, 0))
    with pytest.raises(ValidationError):
        s.confirm(confirmation({1: (0, 0)}, unit=UNIT + 1), now=0.0)
    assert len(s) == 1


def test_seq_must_grow_per_automate() -> None:
    s = store()
    add(s, (1, 5), (2, 0))
    with pytest.raises(ValueError):
        add(s, (1, 5))


# -- bound ---------------------------------------------------------------------------------------

def test_overflow_drops_the_oldest_unconfirmed_and_counts() -> None:
    s = store(maxlen=5)
    dropped = add(s, *interleaved(2, range(4)))  # 8 readings into 5 places
    assert [(d.automate, d.seq) if d else None for d in dropped] == [None] * 5 + [(1, 0), (2, 0), (1, 1)]
    assert s.dropped == 3 and len(s) == 5
    assert drain(s) == [(2, 1), (1, 2), (2, 2), (1, 3), (2, 3)]
    # Sent but unconfirmed readings are dropped the same way (sending does not make them safe).
    add(s, (1, 4))
    assert s.dropped == 4
    s.requeue_all()
    assert drain(s) == [(1, 2), (2, 2), (1, 3), (2, 3), (1, 4)]
    # The per-automate index followed the drops: confirming automate 1 leaves automate 2 alone.
    assert s.confirm(confirmation({1: (4, 4)}), now=0.0).forgotten == 3 and len(s) == 2


def test_send_queue_stays_bounded_while_readings_come_and_go() -> None:
    s = store(maxlen=100)
    for seq in range(3_000):
        add(s, (1, seq))
        if seq > 50 and seq % 7 == 0:
            s.confirm(confirmation({1: (seq - 50, seq - 50)}), now=0.0)
    assert len(s) <= 100 and len(s._heap) <= 2 * 100 + 64  # no trail of forgotten entries


# -- sending and resending -------------------------------------------------------------------------

def test_unsent_reading_stays_first_in_line() -> None:
    s = store()
    add(s, *interleaved(1, range(3)))
    item = s.next()
    assert item is not None
    s.unsent(item)  # paho's queue was full
    assert drain(s) == [(1, 0), (1, 1), (1, 2)]


def test_requeue_on_reconnect_keeps_the_original_order() -> None:
    s = store()
    add(s, *interleaved(2, range(3)))
    assert len(drain(s)) == 6  # all six sent before the connection broke
    add(s, *interleaved(2, range(3, 5)))  # made while offline: queued
    s.confirm(confirmation({2: (1, 1)}), now=0.0)
    assert s.requeue_all() == 4  # the sent ones, queued again next to the 4 never sent
    assert drain(s) == [(1, 0), (1, 1), (1, 2), (2, 2), (1, 3), (2, 3), (1, 4), (2, 4)]
    assert s.requeue_all() == 8 and len(drain(s)) == 8  # every reconnect: all of them again, once
    assert s.requeue_all() == 8 and s.requeue_all() == 0 and s.queued == 8  # no duplicates queued


def test_gap_is_resent_after_the_delay_not_before_and_not_twice_within_it() -> None:
    s = store(resend_after=5.0)
    add(s, *interleaved(2, range(10)))
    drain(s)
    # The bridge committed automate 1 up to 3 and up to 7 beyond a hole; automate 2 has no gap.
    s.confirm(confirmation({1: (3, 7), 2: (9, 9)}), now=100.0)
    assert s.resend_gaps(100.0) == [] and s.resend_gaps(104.9) == []  # may still be in flight
    assert drain(s) == []
    assert s.resend_gaps(105.0) == [GapResend(automate=1, confirmed=3, newest=7, requeued=4)]
    assert drain(s) == [(1, 4), (1, 5), (1, 6), (1, 7)]  # exactly the missing range, in order
    assert s.resend_gaps(105.1) == [] and s.resend_gaps(109.9) == []  # not twice within the delay
    s.confirm(confirmation({1: (3, 8)}), now=107.0)  # still the same hole: the clock runs on
    assert s.resend_gaps(110.0) == [GapResend(1, 3, 8, 5)]  # a delay later, if still missing
    assert drain(s) == [(1, 4), (1, 5), (1, 6), (1, 7), (1, 8)]


def test_gap_resend_skips_readings_already_queued() -> None:
    s = store(resend_after=1.0)
    add(s, *interleaved(1, range(10)))
    assert drain(s)[-1] == (1, 9)
    s.requeue_all()  # a reconnect: all queued again
    for _ in range(5):
        s.next()  # 0..4 sent again, 5..9 still queued
    s.confirm(confirmation({1: (1, 8)}), now=0.0)
    assert s.resend_gaps(1.0) == [GapResend(1, 1, 8, 3)]  # 2, 3, 4; 5..8 are queued already
    assert drain(s) == [(1, seq) for seq in range(2, 10)]  # each once, in order


def test_a_closed_gap_restarts_the_delay() -> None:
    s = store(resend_after=5.0)
    add(s, *interleaved(1, range(10)))
    drain(s)
    s.confirm(confirmation({1: (3, 7)}), now=0.0)
    s.confirm(confirmation({1: (7, 7)}), now=3.0)  # the hole filled: no gap
    assert s.resend_gaps(5.0) == []
    s.confirm(confirmation({1: (7, 9)}), now=4.0)  # a new hole
    assert s.resend_gaps(8.9) == []
    assert s.resend_gaps(9.0) == [GapResend(1, 7, 9, 2)]


def test_an_older_confirmation_does_not_reopen_a_gap() -> None:
    s = store(resend_after=1.0)
    add(s, *interleaved(1, range(10)))
    drain(s)
    s.confirm(confirmation({1: (7, 7)}), now=0.0)
    s.confirm(confirmation({1: (3, 7)}), now=1.0)  # a stale copy, e.g. redelivered after a reconnect
    assert s.resend_gaps(100.0) == [] and len(s) == 2


def test_gap_of_readings_no_longer_held_requeues_nothing() -> None:
    s = store(maxlen=3, resend_after=1.0)
    add(s, *interleaved(1, range(10)))  # 0..6 dropped (buffer full)
    drain(s)
    s.confirm(confirmation({1: (2, 8)}), now=0.0)
    assert s.resend_gaps(1.0) == [GapResend(1, 2, 8, 2)]  # only 7 and 8 are left to resend
    assert drain(s) == [(1, 7), (1, 8)]


def test_thread_safe_under_concurrent_adds_sends_and_confirms() -> None:
    s = store(maxlen=500)
    n = 2_000
    readings = [reading(1, seq) for seq in range(n)]
    added = threading.Event()

    def produce() -> None:
        for r in readings:
            s.add(r, "t")
        added.set()

    def confirm() -> None:
        seq = 0
        while not added.is_set():
            s.confirm(confirmation({1: (seq, seq)}), now=0.0)
            if seq % 10 == 0:
                s.requeue_all()
            seq = min(seq + 1, n - 1)

    threads = [threading.Thread(target=produce), threading.Thread(target=confirm)]
    for t in threads:
        t.start()
    while not added.is_set():
        s.next()
    for t in threads:
        t.join()
    assert len(s) <= 500
    s.confirm(confirmation({1: (n - 1, n - 1)}), now=0.0)
    assert len(s) == 0 and s.queued == 0 and drain(s) == []


# -- the link: confirmations from paho's thread, reconnect, stop --------------------------------------

def confirm_message(payload: bytes | str, topic: str = "plant/confirm/units/4") -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(topic=topic.encode())
    message.payload = payload.encode() if isinstance(payload, str) else payload
    return message


def link_confirmation(entries: dict[int, tuple[int, int]], unit: int = 4, boot: str | None = None) -> str:
    c = Confirmation(unit, T0, {a: AutomateConfirmation(cf, nw, T0 + timedelta(minutes=nw), boot)
                                for a, (cf, nw) in entries.items()})
    return c.to_json()


def test_link_forgets_only_what_the_bridge_confirms() -> None:
    link, _ = make_link()
    for i in range(3):
        link.enqueue(link.sim.tick(T0 + timedelta(minutes=i)))  # 10 automates x seq 0..2
    link.connected = True
    assert link.pump() == 30
    for mid in range(1, 31):
        link.window.acked(mid)  # the broker has them: that no longer makes them safe
    assert link.unconfirmed == 30 and link.settled()  # no bridge heard of yet: as before
    link._on_message(link.client, None, confirm_message(link_confirmation({1: (1, 1), 2: (2, 2)}, boot=link.sim.boot)))
    assert link.unconfirmed == 25 and not link.settled()  # now a stop waits for the bridge
    link._on_message(link.client, None, confirm_message(
        link_confirmation({a: (2, 2) for a in range(1, 11)}, boot=link.sim.boot)))
    assert link.unconfirmed == 0 and link.settled()


def test_link_requeues_every_unconfirmed_reading_on_reconnect() -> None:
    link, fake = make_link()
    for i in range(2):
        link.enqueue(link.sim.tick(T0 + timedelta(minutes=i)))
    link.connected = True
    link.pump()
    link._on_message(link.client, None, confirm_message(
        link_confirmation({a: (0, 0) for a in range(1, 6)}, boot=link.sim.boot)))
    fake.published.clear()
    link.on_online()  # reconnected
    for mid in list(link.window._inflight):
        link.window.acked(mid)
    link.pump()
    birth, *resent = fake.published
    assert birth[0] == "plant/units/4/status"  # the birth message first, as before
    got = [(r.automate, r.seq) for r in (Reading.from_json(p) for _, p, _, _ in resent)]
    assert got == [(a, 0) for a in range(6, 11)] + [(a, 1) for a in range(1, 11)]


def test_link_survives_bad_confirmations(caplog: pytest.LogCaptureFixture) -> None:
    link, _ = make_link()
    link.enqueue(link.sim.tick(T0))
    caplog.set_level(logging.DEBUG, logger="devices.runner")
    for payload in (b"not json", b'{"unit":4}', b'{"unit":4,"ts":"x","automates":{}}',
                    link_confirmation({1: (0, 0)}, unit=5), b"\xff\xfe"):
        link._on_message(link.client, None, confirm_message(payload))  # must not raise
    link._on_message(link.client, None, confirm_message(b""))  # a cleared retained message: silent
    assert link.unconfirmed == 10
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bad confirmation" in warnings[0].getMessage()  # at most once a minute
    assert sum("bad confirmation" in r.getMessage() for r in caplog.records) == 5


def test_link_without_a_bridge_stops_as_before_once_the_broker_has_everything() -> None:
    link, _ = make_link()
    link.enqueue(link.sim.tick(T0))
    assert not link.settled()  # still queued
    link.connected = True
    link.pump()
    assert not link.settled()  # handed to paho, not acknowledged yet
    for mid in list(link.window._inflight):
        link.window.acked(mid)
    assert link.settled() and link.unconfirmed == 10  # kept, but nothing a stop could wait for


def test_boot_id_guard_ignores_a_previous_life_whatever_its_clock_did() -> None:
    s = store()
    add(s, *interleaved(1, range(20)))  # never sent: the broker was unreachable at boot
    boot = _template().boot
    assert boot is not None
    # The previous life's clock ran 60 s ahead: its newest reading looks newer than our start.
    ahead = T0 + timedelta(seconds=60)
    old = Confirmation(UNIT, ahead, {1: AutomateConfirmation(999, 999, ahead, "0ldb00t")})
    assert s.confirm(old, now=0.0).stale == (1,)
    assert len(s) == 20  # nothing forgotten that the bridge never had
    ours = Confirmation(UNIT, ahead, {1: AutomateConfirmation(4, 4, T0, boot)})
    assert s.confirm(ours, now=0.0).forgotten == 5


def test_a_unit_with_a_boot_id_ignores_entries_without_one() -> None:
    s = store()
    add(s, *interleaved(1, range(5)))
    # A bridge state from before boot ids (or a previous life) cannot say which run it is about.
    assert s.confirm(confirmation({1: (3, 3)}, boot=None), now=0.0).stale == (1,)
    assert len(s) == 5
