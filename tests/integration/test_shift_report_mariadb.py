"""The shift report's queries on a real MariaDB: the same GROUP BY aggregates, completeness, energy
across a counter reset, alarms and rejected counts as on SQLite (tests/unit/test_shift_report.py)."""

from __future__ import annotations

import pytest

from store import report
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.servers import MariaDBServer
from tests.unit.test_shift_report import END, METER, START, seed

pytestmark = pytest.mark.integration


def test_shift_report_on_mariadb(mariadb: MariaDBServer) -> None:
    engine = create_db_engine(mariadb.create_database("report"))
    init_schema(engine)
    make_session = make_sessionmaker(engine)
    seed(make_session)
    with make_session() as session:
        r = report.shift_report(session, START, END, 60.0)
    tank = next(s for s in r.unit_stats if (s.source, s.measure) == ("units/1", "tank_temp_c"))
    temps = [2.0 + (i % 11) / 10 for i in range(45)] + [2.5] * 30
    assert (tank.count, tank.minimum, tank.maximum) == (75, 2.0, 3.0)
    assert tank.mean == pytest.approx(sum(temps) / 75)
    apower = next(s for s in r.meter_stats if (s.source, s.measure) == (f"meters/{METER}", "apower"))
    assert (apower.count, apower.minimum, apower.maximum, apower.mean) == (4, 400.0, 800.0, 625.0)
    assert {(c.unit, c.automate): (c.expected, c.stored) for c in r.completeness} == {
        (1, 1): (60, 45), (1, 2): (30, 30), (2, 1): (60, 60)}
    (energy,) = r.energy
    assert (energy.from_wh, energy.to_wh, energy.energy_wh, energy.samples) == (1000.0, 1620.0, 620.0, 4)
    assert {a.measure for a in r.alarms} == {"salmonella_ppm", "listeria_ppm", "ecoli_ppm"}
    assert next(a for a in r.alarms if a.measure == "salmonella_ppm").ack_disposition == "hold"
    assert [(x.reason, x.count) for x in r.rejected] == [("tank_temp_c=-273 is outside -40..150", 3), ("not JSON", 2)]
    with make_session() as session:
        assert report.shift_report(session, START.replace(year=2020), END.replace(year=2020), 60.0).empty
