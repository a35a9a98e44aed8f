"""The bridge evaluates an inherited limit live: a change at ``units/2`` reaches
``units/2/automates/3`` (which inherits its low limit) on the bridge's next threshold poll, without a
restart. The bridge runs in-process on a real database (MariaDB and SQLite) with a fake MQTT client;
tests/integration/test_pipeline.py covers the poll through the whole running stack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bridge.service import Bridge
from bridge.settings import BridgeSettings
from plantmodel.readings import utcnow
from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Threshold
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker

TANK = "tank_temp_c"


class FakeClient:
    def __init__(self, *_a: Any, **_k: Any) -> None:
        pass

    def will_set(self, *_a: Any, **_k: Any) -> None:
        pass


def test_a_change_at_the_unit_reaches_an_inheriting_automate_without_restart(database_url: str) -> None:
    engine = create_db_engine(database_url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    now = utcnow()
    try:
        with sessions.begin() as session:
            queries.seed_default_thresholds(session, now)
            # The case: High 5.0 alone at the automate; its low is inherited.
            queries.upsert_threshold(session, Threshold(TANK, "units/2/automates/3", None, 5.0, 0.2,
                                                        inherit_low=True), now, "test")
        bridge = Bridge(BridgeSettings(database_url, metrics_port=0), sessions=sessions, client_factory=FakeClient)
        bridge._reload_thresholds(force=True)
        alarms = bridge.processor.alarms
        source = AutomateSource(2, 3)
        assert alarms.evaluate(source, {TANK: 2.7}, now) == []  # inside the default 2.5 low
        (raised,) = alarms.evaluate(source, {TANK: 2.4}, now)
        assert (raised.bound, raised.limit) == ("low", 2.5)
        alarms.evaluate(source, {TANK: 3.5}, now)  # cleared

        with sessions.begin() as session:  # a later edit of the unit, as the web UI makes it
            queries.upsert_threshold(session, Threshold(TANK, "units/2", 3.0, 4.0, 0.2),
                                     now + timedelta(seconds=1), "test")
        bridge._reload_thresholds()  # the poll: the version changed
        (raised,) = alarms.evaluate(source, {TANK: 2.8}, now + timedelta(seconds=2))
        assert (raised.bound, raised.limit) == ("low", 3.0)  # the unit's new low, live
        assert alarms.thresholds.resolve_scope("units/2/automates/3", TANK).high == 5.0  # its own high kept
    finally:
        engine.dispose()
