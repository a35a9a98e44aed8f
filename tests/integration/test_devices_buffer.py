"""A unit keeps its readings while the broker is away and sends them all when it is back."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from plantmodel import Reading
from plantmodel.layout import PlantLayout
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer

pytestmark = pytest.mark.integration


def test_readings_buffered_during_a_broker_outage_all_arrive(tmp_path: Path) -> None:
    broker = MosquittoServer(tmp_path / "broker", PlantLayout(units=1, automates=2, meters=()))
    broker.start()
    # A persistent-session subscriber: the broker (persistence on) keeps its subscription and
    # queue across its own restart, so it sees what the unit sends right after reconnecting. The
    # session is its user's (the broker takes the user name as the client id).
    spy = Client(broker, broker.debug_user(), ["plant/units/+/automates/+/readings"], clean_session=False)
    devices = Service("devices", ["devices", "run", "--units-only", "--period", "0.2"], broker.env(), tmp_path)
    try:
        def seqs() -> dict[int, set[int]]:
            out: dict[int, set[int]] = defaultdict(set)
            for _, payload, _ in spy.received():
                r = Reading.from_json(payload)
                out[r.automate].add(r.seq)
            return out

        wait_for(lambda: all(len(seqs()[a]) >= 3 for a in (1, 2)), 20, "the first readings", services=[devices])
        broker.stop()
        before = {a: max(s) for a, s in seqs().items()}
        time.sleep(3)  # ~15 periods without a broker
        broker.start()

        def complete() -> bool:
            s = seqs()
            return all(len(s[a]) > before[a] + 12 and s[a] == set(range(max(s[a]) + 1)) for a in (1, 2))

        wait_for(complete, 30, "every seq from 0 up, without a gap", services=[devices])
        assert "connected" in devices.log()
    finally:
        spy.close()
        code = devices.stop()
        broker.stop()
    assert code == 0
