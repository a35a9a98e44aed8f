"""Which readings are settled, new, late, replayed, and what the bridge confirms to the units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plantmodel.confirm import Confirmation
from plantmodel.sequence import MAX_RANGES, SeqState, SequenceTracker, Verdict

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
K = (3, 7)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def tracker(timeout: float = 60) -> SequenceTracker:
    return SequenceTracker(timedelta(seconds=timeout))


def test_in_order_readings_are_new_and_confirmed() -> None:
    t = tracker()
    assert [t.settle(K, n, at(n), at(n)) for n in range(3)] == [Verdict.NEW] * 3
    st = t.states[K]
    assert (st.confirmed, st.newest, st.newest_ts, st.ahead) == (2, 2, at(2), [])
    assert t.settle(K, 1, at(1), at(9)) is Verdict.REPLAY


def test_a_gap_is_reported_then_filled_late() -> None:
    t = tracker()
    for n in (0, 1, 4, 5):
        t.settle(K, n, at(n), at(n))
    st = t.states[K]
    assert (st.confirmed, st.newest, st.ahead, st.missing) == (1, 5, [[4, 5]], (2, 3))
    conf = t.confirmation(3, at(6))
    assert conf is not None and conf.automates[7].gap and conf.automates[7].confirmed == 1
    assert t.settle(K, 3, at(3), at(7)) is Verdict.LATE  # older than the newest: no alarm evaluation
    assert t.settle(K, 2, at(2), at(8)) is Verdict.LATE
    assert (st.confirmed, st.ahead, st.gap_since) == (5, [], None)


def test_first_reading_seen_late_asks_for_the_earlier_ones() -> None:
    t = tracker()
    t.settle(K, 37, at(37), at(37))
    assert t.states[K].missing == (0, 36)


def test_a_gap_without_progress_is_declared_lost() -> None:
    t = tracker(timeout=60)
    for n in (0, 3, 4):
        t.settle(K, n, at(n), at(n))
    assert t.expire(at(30)) == []
    (lost,) = t.expire(at(70))
    assert (lost.key, lost.first, lost.last) == (K, 1, 2)
    assert (t.states[K].confirmed, t.states[K].ahead) == (4, [])


def test_a_unit_restart_starts_a_new_life() -> None:
    t = tracker()
    for n in range(5):
        t.settle(K, n, at(n), at(n))
    assert t.settle(K, 0, at(100), at(100)) is Verdict.RESTART
    assert (t.states[K].confirmed, t.states[K].newest, t.states[K].newest_ts) == (0, 0, at(100))
    assert t.settle(K, 1, at(101), at(101)) is Verdict.NEW


def test_a_future_stamped_reading_does_not_hide_the_next_ones() -> None:
    t = tracker()
    t.settle(K, 0, at(0), at(0))
    assert t.settle(K, 1, at(240), at(1)) is Verdict.NEW  # 4 minutes ahead
    assert t.settle(K, 2, at(2), at(2)) is Verdict.NEW  # next by seq: newest, whatever its time
    assert t.states[K].newest_ts == at(2)
    assert t.settle(K, 1, at(240), at(3)) is Verdict.REPLAY  # its redelivery is no restart


def test_rejected_readings_settle_their_seq_without_a_time() -> None:
    t = tracker()
    t.settle(K, 0, at(0), at(0))
    t.settle(K, 1, None, at(1))  # recorded as rejected
    t.settle(K, 2, at(2), at(2))
    assert (t.states[K].confirmed, t.states[K].missing) == (2, None)


def test_ranges_merge() -> None:
    st = SeqState(confirmed=1)
    for n in (8, 5, 10, 6, 7, 9):
        st._mark(n)
    assert st.ahead == [[5, 10]]
    st._mark(3)
    st._mark(2)
    assert (st.confirmed, st.ahead) == (3, [[5, 10]])
    assert SeqState.parse_ahead(st.ahead_json()) == [[5, 10]]


def test_confirmation_payload_round_trips() -> None:
    t = tracker()
    t.settle((3, 1), 0, at(0), at(0))
    t.settle((3, 2), 4, at(4), at(4))
    t.settle((4, 1), 0, at(0), at(0))
    conf = t.confirmation(3, at(5))
    assert conf is not None and set(conf.automates) == {1, 2}
    again = Confirmation.from_json(conf.to_json())
    assert again == conf
    assert (again.automates[2].confirmed, again.automates[2].newest) == (-1, 4)


def test_readings_above_a_gap_do_not_keep_it_open_for_ever() -> None:
    t = tracker(timeout=60)
    t.settle(K, 0, at(0), at(0))
    for n in range(2, 200):  # seq 1 never comes; the unit goes on sending every second
        t.settle(K, n, at(n), at(n))
        t.expire(at(n))
    assert t.states[K].confirmed == 199  # declared lost 60 s after it opened, not never


def test_a_unit_skipping_every_other_seq_cannot_grow_the_state_without_bound() -> None:
    t = tracker(timeout=10_000)
    for n in range(0, 5000, 2):
        t.settle(K, n, at(n), at(n))
    st = t.states[K]
    assert len(st.ahead) <= MAX_RANGES and len(st.ahead_json()) < 5000
    lost = t.take_lost()
    assert len(lost) > 2000 and (lost[0].first, lost[0].last) == (1, 1)


def test_the_boot_id_tells_a_restart_from_a_replay() -> None:
    t = tracker()
    for n in range(5):
        t.settle(K, n, at(n), at(n), boot="a1")
    # Same boot, same seq, a later time (a glitch or a crafted copy): not a restart.
    assert t.settle(K, 3, at(500), at(6), boot="a1") is Verdict.REPLAY
    assert t.states[K].confirmed == 4
    # A new boot whose clock went back: a restart all the same.
    assert t.settle(K, 0, at(-100), at(7), boot="b2") is Verdict.RESTART
    assert (t.states[K].boot, t.states[K].confirmed) == ("b2", 0)


def test_a_late_message_of_the_previous_life_does_not_reset_the_current_one() -> None:
    t = tracker()
    for n in range(51):
        t.settle(K, n, at(n), at(n), boot="A")
    for n in range(10):
        t.settle(K, n, at(100 + n), at(100 + n), boot="B")
    assert t.settle(K, 50, at(50), at(120), boot="A") is Verdict.REPLAY  # redelivered from life A
    assert t.settle(K, 900, None, at(121), boot="A") is Verdict.REPLAY  # a rejected one of life A
    st = t.states[K]
    assert (st.boot, st.prev_boot, st.confirmed, st.newest, st.ahead) == ("B", "A", 9, 9, [])
    assert t.settle(K, 10, at(110), at(122), boot="B") is Verdict.NEW


def test_a_seq_far_ahead_is_not_believed() -> None:
    t = tracker()
    for n in range(4):
        t.settle(K, n, at(n), at(n), boot="A")
    assert t.implausible(K, 10**9, "A") is not None and t.implausible(K, 10**9, "B") is None
    assert t.settle(K, 10**9, None, at(5), boot="A") is Verdict.REPLAY  # rejected: settles nothing
    assert (t.states[K].newest, t.states[K].ahead) == (3, [])


def test_the_first_boot_id_after_readings_without_one_is_a_restart_if_the_count_went_back() -> None:
    t = tracker()
    for n in range(500):
        t.settle(K, n, at(n), at(n))  # no boot id (a state from before boot ids)
    # The unit restarts with a boot id and a clock an hour behind: a new life all the same.
    assert t.settle(K, 0, at(-3600), at(600), boot="B") is Verdict.RESTART
    assert t.settle(K, 1, at(-3599), at(601), boot="B") is Verdict.NEW
