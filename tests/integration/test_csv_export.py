"""The readings CSV's fast path on MariaDB and SQLite: ``stream_rows(naive_times=True)`` (on MariaDB,
each row read as one text and split) with the per-column formatter writes byte for byte what the
previous path wrote (the default ``stream_rows`` and ``CsvFormat.cell`` per value), in both variants:
times at 0 and 999 ms, a NULL ``stored_at``, a meter with missing fields and no output state,
awkward doubles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample
from store import history, queries
from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.unit.test_csv_typed_rows import BOOLS, FLOATS, TIMES, reference_csv, typed_csv
from tests.webapp import METER
from webui.api.csvout import CsvFormat

pytestmark = pytest.mark.integration

TS = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # Paris changes to summer time at 01:00 UTC
PLAUSIBLE = [f for f in FLOATS if abs(f) < 40]


def test_fast_csv_path_is_byte_identical(database_url: str) -> None:
    engine = create_db_engine(database_url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    readings, samples = [], []
    for i in range(120):
        ts = TS + timedelta(minutes=i, milliseconds=(0, 999, 1, 500)[i % 4])
        t = PLAUSIBLE[i % len(PLAUSIBLE)]  # readings refuse absurd values
        readings.append((Reading(1, 1, "0x0000BA27", i, ts, t, -t, 4000.0, 12, 7.0, 40, 1.3, 20, 40, 30),
                         ts + timedelta(seconds=1, milliseconds=999)))
        missing = i % 3 == 0  # older firmware: no temperature sensor, no output state
        samples.append((PowerSample(meter=METER, ts=ts, output=None if missing else bool(i % 2), apower=t,
                                    voltage=None if missing else 230.1, current=3.6, freq=50.0, pf=0.98,
                                    energy_wh=1000.0 + i, ret_energy_wh=0.0,
                                    temperature_c=None if missing else 41.2), ts))
    with sessions.begin() as s:
        queries.insert_readings(s, readings, TS)
        queries.insert_power_samples(s, samples, TS)
        for model in (orm.Reading, orm.PowerReading):  # some rows without stored_at
            s.execute(update(model).where(model.ts < TS + timedelta(minutes=10)).values(stored_at=None))
        for (sample, _), f in zip(samples, FLOATS, strict=False):  # doubles no meter would send
            s.execute(update(orm.PowerReading).where(orm.PowerReading.ts == sample.ts).values(energy_wh=f))
    sources = [(history.automate_source(1, 1), ("ts", "received_at", "stored_at", "seq")),
               (history.meter_source(METER), ("ts", "received_at", "stored_at", "output"))]
    formats = [CsvFormat(), CsvFormat(ZoneInfo("Europe/Paris"), "Europe/Paris")]
    try:
        for src, first in sources:
            columns = (*first, *src.measures)
            for fmt in formats:
                with sessions() as s:
                    expected = reference_csv(fmt, columns, history.stream_rows(s, src, columns, None, None))
                with sessions() as s:
                    fast = typed_csv(fmt, columns, history.stream_rows(s, src, columns, None, None, batch=7,
                                                                       naive_times=True))
                assert expected.count("\n") == 121
                assert fast == expected, (src.key, fmt.zone_name)
        with sessions() as s:  # naive UTC times, the driver's values otherwise
            row = next(iter(history.stream_rows(s, sources[1][0], ("ts", "output", "voltage"), None, None,
                                                naive_times=True)))
        assert row[0] == TS.replace(tzinfo=None) and row[1] is None and row[2] is None
    finally:
        engine.dispose()


def test_the_checked_columns_are_the_csv_ones() -> None:
    assert TIMES == ("ts", "received_at", "stored_at") and BOOLS == ("output",)
