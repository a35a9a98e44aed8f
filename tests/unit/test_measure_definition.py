"""A measure is defined once, in ``plantmodel.measures``: the reading type, the database columns,
the rollup columns and the dashboard's labels are derived from that definition. These tests fail
when one of them is written out by hand again and drifts (or when a derivation breaks)."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Double, Integer, Table
from sqlalchemy.orm import DeclarativeBase

import store.models as orm
from plantmodel.errors import ValidationError
from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_MEASURES, Measure
from plantmodel.readings import Reading, make_reading_type
from plantmodel.shelly import PowerSample
from tests.webapp import login, make_web_app

WEBUI = Path(__file__).resolve().parents[2] / "webui"
COMMON_FIELDS = ["unit", "automate", "type", "seq", "ts"]
STATS = ("n", "min", "max", "sum")
TS = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)


def _table(cls: type[DeclarativeBase] | type[orm.Base]) -> Table:
    table = cls.__table__
    assert isinstance(table, Table)
    return table


# -- the reading type -----------------------------------------------------------------------------


def test_reading_fields_are_the_automate_measures_in_order() -> None:
    fields = dataclasses.fields(Reading)
    assert [f.name for f in fields] == [*COMMON_FIELDS, *AUTOMATE_MEASURES, "boot"]
    assert all(f.type is float for f in fields if f.name in AUTOMATE_MEASURES)
    assert dict(Reading.measure_definitions) == AUTOMATE_MEASURES


def test_reading_keeps_a_hand_written_dataclass_behaviour() -> None:
    # Any: mypy cannot tell that a dict of floats holds no "boot"
    values: dict[str, Any] = {name: m.low if m.low is not None else m.plausible_min
                              for name, m in AUTOMATE_MEASURES.items()}
    r = Reading(unit=3, automate=7, type="0x0000BA27", seq=5, ts=TS, boot="b1", **values)
    assert r == Reading(3, 7, "0x0000BA27", 5, TS, *values.values())  # positional; boot is not compared
    assert hash(r) == hash(Reading(3, 7, "0x0000BA27", 5, TS, *values.values()))
    assert (r.tank_temp_c, r.measures()) == (values["tank_temp_c"], values)
    assert Reading.from_json(r.to_json()) == r and Reading.from_dict(r.to_dict()).boot == "b1"
    assert list(r.to_dict()) == [*COMMON_FIELDS, *AUTOMATE_MEASURES, "boot"]
    assert dataclasses.replace(r, ph=7.1).ph == 7.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.ph = 7.1  # type: ignore[attr-defined]
    assert not hasattr(r, "__dict__")  # slots, as before


# -- the database ----------------------------------------------------------------------------------


def test_readings_table_has_one_double_not_null_column_per_automate_measure() -> None:
    doubles = [c for c in _table(orm.Reading).columns if isinstance(c.type, Double)]
    assert [c.name for c in doubles] == list(AUTOMATE_MEASURES)
    assert not any(c.nullable for c in doubles)


@pytest.mark.parametrize(("rollups", "measures"), [(orm.READING_ROLLUPS, AUTOMATE_MEASURES),
                                                   (orm.POWER_ROLLUPS, METER_MEASURES)], ids=["automate", "meter"])
def test_rollup_tables_have_count_min_max_sum_of_exactly_the_measures(rollups: dict[str, type[orm.Base]],
                                                                       measures: dict[str, Measure]) -> None:
    assert rollups
    stat = re.compile(rf"(.+)_({'|'.join(STATS)})")
    for cls in rollups.values():
        table = _table(cls)
        columns = {c.name: c for c in table.columns if stat.fullmatch(c.name)}
        assert sorted(columns) == sorted(f"{m}_{s}" for m in measures for s in STATS), table.name
        for m in measures:
            assert isinstance(columns[f"{m}_n"].type, Integer) and not columns[f"{m}_n"].nullable
            assert all(isinstance(columns[f"{m}_{s}"].type, Double) for s in ("min", "max", "sum"))


def test_power_readings_store_the_meter_measures() -> None:
    # Written out in the ORM (they are the Shelly protocol's fields), but every meter measure has one.
    columns = {c.name: c for c in _table(orm.PowerReading).columns}
    assert set(METER_MEASURES) <= set(columns)
    assert all(isinstance(columns[m].type, Double) and columns[m].nullable for m in METER_MEASURES)
    assert set(METER_MEASURES) <= {f.name for f in dataclasses.fields(PowerSample)}


# -- the dashboard --------------------------------------------------------------------------------


def test_page_config_sends_every_measure_with_its_labels(tmp_path: Path) -> None:
    http = make_web_app(tmp_path).test_client()
    login(http, "viewer")
    html = http.get("/").get_data(as_text=True)
    match = re.search(r'<script id="page-config" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    measures = json.loads(match.group(1))["measures"]
    assert list(measures["automate"]) == list(AUTOMATE_MEASURES)  # the order the cells show them in
    assert list(measures["meter"]) == list(METER_MEASURES)
    sent = {name: info for group in measures.values() for name, info in group.items()}
    assert set(sent) == set(MEASURES)
    for name, m in MEASURES.items():
        assert (sent[name]["label"], sent[name]["short"], sent[name]["key"], sent[name]["unit"]) == (
            m.label, m.short, m.key, m.unit), name


def test_short_labels_and_phone_values_come_from_the_definitions() -> None:
    shorts = {name: m.short for name, m in AUTOMATE_MEASURES.items()}
    assert shorts == {"tank_temp_c": "Tank", "ext_temp_c": "Outside", "milk_kg": "Milk", "product_kg": "Product",
                      "ph": "pH", "k_mg_l": "K+", "nacl_g_l": "NaCl", "salmonella_ppm": "Salm.",
                      "ecoli_ppm": "E. coli", "listeria_ppm": "Listeria"}
    assert [name for name, m in AUTOMATE_MEASURES.items() if m.key] == ["tank_temp_c", "ph", "nacl_g_l"]
    assert METER_MEASURES["apower"].short == METER_MEASURES["apower"].label  # default: the label


def hard_coded_measures(directory: Path, pattern: str) -> dict[str, list[str]]:
    """{file: automate measure names or labels it spells out} of the files matching ``pattern``."""
    words = [re.escape(name) for name in AUTOMATE_MEASURES]
    # A label or short label as a string literal: what a hand-written label table holds.
    words += [rf"(?<=[\"'`]){re.escape(text)}(?=[\"'`])"
              for m in AUTOMATE_MEASURES.values() for text in {m.label, m.short}]
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob(pattern)):
        text = path.read_text(encoding="utf-8")
        hits = [hit.group(0) for word in words for hit in re.finditer(rf"(?<![\w-]){word}(?![\w-])", text)]
        if hits:
            found[path.name] = hits
    return found


@pytest.mark.parametrize(("folder", "pattern"), [("static", "*.js"), ("templates", "*.html")])
def test_no_page_spells_out_the_automate_measures(folder: str, pattern: str) -> None:
    # The pages take names, labels, units and order from the page config (P.config.measures) or the
    # template's ``measures``: a table written in a script would miss a measure added later.
    assert hard_coded_measures(WEBUI / folder, pattern) == {}


def test_the_page_check_finds_a_hand_written_label_table(tmp_path: Path) -> None:
    (tmp_path / "page.js").write_text('const SHORT = { tank_temp_c: "Tank", salmonella_ppm: "Salm." };\n'
                                      'const KEY = new Set(["ph"]);\nconst photo = "graph";\n')
    assert hard_coded_measures(tmp_path, "*.js") == {"page.js": ["tank_temp_c", "ph", "salmonella_ppm", "Tank",
                                                                 "Salm."]}


# -- adding a measure -------------------------------------------------------------------------------


def test_a_new_definition_is_a_new_reading_field() -> None:
    lactose = Measure("lactose_g_l", "Lactose", "g/L", 44, 52, 0.1, 0, 200, short="Lact.")
    reading_type = make_reading_type({**AUTOMATE_MEASURES, lactose.name: lactose})
    names = [f.name for f in dataclasses.fields(reading_type)]
    assert names == [*COMMON_FIELDS, *AUTOMATE_MEASURES, "lactose_g_l", "boot"]
    values: dict[str, Any] = {name: m.plausible_min for name, m in AUTOMATE_MEASURES.items()}
    r = reading_type(unit=1, automate=1, type="0x0000BA27", seq=0, ts=TS, **values, lactose_g_l=48.5)
    assert r.measures()["lactose_g_l"] == 48.5 and r.to_dict()["lactose_g_l"] == 48.5
    assert reading_type.from_json(r.to_json()) == r
    with pytest.raises(ValidationError, match="'lactose_g_l'"):  # its definition's plausible range applies
        dataclasses.replace(r, lactose_g_l=1e6)
    with pytest.raises(ValidationError, match="'lactose_g_l'"):  # and a payload without it is refused
        reading_type.from_dict({k: v for k, v in r.to_dict().items() if k != "lactose_g_l"})
    with pytest.raises(TypeError):  # the plant's own Reading does not know it
        Reading(unit=1, automate=1, type="0x0000BA27", seq=0, ts=TS, **values, lactose_g_l=48.5)
