"""Property-based tests (hypothesis) of the REST API's parameters and bodies, with the Flask test
client on SQLite (as ``test_webui_api*.py``): whatever the query string or JSON body, the answer is a
2xx or a JSON 4xx error ``{"error": "...", "status": N}`` (README, "REST API" / "Errors"), never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import event, example, given
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_MEASURES
from plantmodel.thresholds import SEVERITIES
from tests.unit.test_properties_model import JSON_TEXT, SCOPE_LIKE, deep, props
from tests.webapp import METER, USERS, make_web_app, token_for
from webui import web_state


class Client:
    def __init__(self, app: Flask) -> None:
        self.client: FlaskClient = app.test_client()
        self.tokens = {name: token_for(web_state(app).make_session, name) for name in USERS}

    def open(self, method: str, url: str, role: str = "viewer", **kw: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kw.pop("headers", {})}
        return self.client.open(url, method=method, headers=headers, **kw)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One seeded app for the module (hypothesis runs many examples per test; a fresh database each
    would cost seconds). Writes (threshold edits, acknowledgements) accumulate: answers stay 2xx/4xx."""
    path: Path = tmp_path_factory.mktemp("properties-api")
    yield Client(make_web_app(path))


def check_answer(resp: TestResponse, *, csv: bool = False, record: bool = True) -> None:
    body = resp.get_data()  # the whole body: a streamed CSV fails while it is read, not before
    if record:  # (hypothesis statistics: only inside a hypothesis test)
        event(f"HTTP {resp.status_code}")
    assert resp.status_code < 500, (resp.status_code, body[:500])
    assert 200 <= resp.status_code < 300 or 400 <= resp.status_code < 500, resp.status_code
    if resp.status_code >= 400:
        data = json.loads(body)
        assert data["status"] == resp.status_code
        assert isinstance(data["error"], str) and data["error"].strip()
    elif csv:
        assert resp.mimetype == "text/csv"
        body.decode("utf-8")
    else:
        json.loads(body)


# -- query strings -------------------------------------------------------------------------------------

GOOD_TIMES = st.datetimes(datetime(2026, 11, 20), datetime(2026, 11, 22)).map(
    lambda d: d.isoformat(timespec="milliseconds") + "Z")
HOSTILE_TIMES = st.one_of(
    st.sampled_from(["2026-11-21T10:15:00Z", "2026-11-21T10:15:00.000Z", "2026-11-21T10:15:00+01:00",
                     "2026-11-21T10:15:00", "2026-11-21", "2026-11-21T10:15:00z", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-14:00", "1001-01-01T00:00:00Z", "9998-12-31T23:59:59.999999Z",
                     "1000-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-02-30", "２０２６-11-21", "٢٠٢٦-11-21",
                     "2026-11-21T10:15:00+24:00", "2026-11-21T25:00:00Z", " 2026-11-21 ", "now", "", "Z",
                     "2026-11-21T10:15:00\x00", "2026-W47-6", "20261121T101500Z"]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=25),
)
TIMES = GOOD_TIMES | HOSTILE_TIMES
HOSTILE_INTS = st.one_of(
    st.sampled_from(["0", "1", "2", "-1", "1000", "1001", "5000", "5001", "9" * 18, "9" * 19, "1" * 5000, "1_000",
                     " 7", "٣", "1e3", "0x10", "", "+1", "1.0", "\x00"]),
    st.integers().map(str),
    st.text(max_size=6),
)
INTS = st.integers(1, 3).map(str) | HOSTILE_INTS
ORDERS = st.sampled_from(["asc", "desc", "asc", "desc", "ASC", "", "random", "asc\x00"])


def params(spec: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Query pairs: known parameters with hostile values, now and then an unknown or repeated one."""
    known = st.sampled_from(list(spec)).flatmap(lambda k: st.tuples(st.just(k), spec[k]))
    unknown = st.tuples(st.sampled_from(["foo", "Start", "page[]", "", "start ", "per-page"]), st.text(max_size=5))
    return st.lists(known, max_size=3, unique_by=lambda kv: kv[0]) | st.lists(known | unknown, max_size=4)


def url(path: str, pairs: list[tuple[str, str]]) -> str:
    return path + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")


AUTOMATES = st.sampled_from([(1, 1), (1, 1), (1, 2), (2, 1), (1, 9), (0, 0), (99999, 1), (10**20, 10**20)])
READINGS = params({"start": TIMES, "end": TIMES, "order": ORDERS, "page": INTS, "per_page": INTS})
SERIES = params({"start": TIMES, "end": TIMES, "points": INTS})
CSV = params({"start": TIMES, "end": TIMES})


@props(70)
@given(AUTOMATES, READINGS)
@example((1, 1), [("start", "0001-01-01T00:00:00+14:00")])
@example((1, 1), [("page", "9" * 18), ("per_page", "1000")])
def test_automate_readings_parameters(api: Client, ua: tuple[int, int], pairs: list[tuple[str, str]]) -> None:
    check_answer(api.open("GET", url(f"/api/units/{ua[0]}/automates/{ua[1]}/readings", pairs)))


@props(70)
@given(AUTOMATES, SERIES)
@example((1, 1), [("start", "1001-01-01T00:00:00Z"), ("end", "9998-12-31T23:59:59.999999Z"), ("points", "5000")])
@example((1, 1), [("end", "1001-01-01T00:00:00Z")])
def test_automate_series_parameters(api: Client, ua: tuple[int, int], pairs: list[tuple[str, str]]) -> None:
    check_answer(api.open("GET", url(f"/api/units/{ua[0]}/automates/{ua[1]}/series", pairs)))


@props(50)
@given(AUTOMATES, CSV)
def test_automate_csv_parameters(api: Client, ua: tuple[int, int], pairs: list[tuple[str, str]]) -> None:
    check_answer(api.open("GET", url(f"/api/units/{ua[0]}/automates/{ua[1]}/readings.csv", pairs)), csv=True)


@props(40)
@given(st.sampled_from([METER, METER, "unknown-meter", "x" * 100, "%00", "a%2Fb"]),
       st.sampled_from(["readings", "series", "readings.csv"]),
       params({"start": TIMES, "end": TIMES, "order": ORDERS, "page": INTS, "per_page": INTS, "points": INTS}))
def test_meter_history_parameters(api: Client, meter: str, what: str, pairs: list[tuple[str, str]]) -> None:
    check_answer(api.open("GET", url(f"/api/meters/{meter}/{what}", pairs)), csv=what.endswith(".csv"))


ALARMS = params({
    "state": st.sampled_from(["open", "active", "cleared", "all", "", "OPEN", "closed"]),
    "unit": INTS, "automate": INTS,
    "meter": st.sampled_from([METER, "nope", "", " ", "\x00", "x" * 70]) | st.text(max_size=8),
    "measure": st.sampled_from([*MEASURES, "bogus", "", "PH"]) | st.text(max_size=8),
    "start": TIMES, "end": TIMES, "page": INTS, "per_page": INTS,
})


@props(90)
@given(ALARMS)
@example([("unit", "1"), ("automate", "1"), ("measure", "apower")])
@example([("meter", METER), ("measure", "ph"), ("state", "open")])
def test_alarm_list_parameters(api: Client, pairs: list[tuple[str, str]]) -> None:
    check_answer(api.open("GET", url("/api/alarms", pairs)))


# -- JSON bodies ---------------------------------------------------------------------------------------

THRESHOLD_VALUES = st.one_of(
    st.none(), st.floats(), st.integers(), st.booleans(), st.text(max_size=5),
    st.sampled_from([10**400, -(10**400), 1e308, 0, -0.0, "1.5", [], {}, [1.0]]),
)
@st.composite
def good_threshold_bodies(draw: st.DrawFn) -> dict[str, Any]:
    scope = draw(st.sampled_from(["*", "units/1", "units/1/automates/1", f"meters/{METER}"]))
    measures = METER_MEASURES if scope.startswith("meters/") else AUTOMATE_MEASURES if scope != "*" else MEASURES
    bounds = sorted(draw(st.lists(st.floats(-1e6, 1e6) | st.integers(-1000, 1000), min_size=2, max_size=2)))
    body: dict[str, Any] = {"scope": scope, "measure": draw(st.sampled_from(list(measures))),
                            "low": draw(st.none() | st.just(bounds[0])), "high": draw(st.none() | st.just(bounds[1]))}
    if draw(st.booleans()):
        body["deadband"] = draw(st.floats(0, 10))
    if draw(st.booleans()):
        body["severity"] = draw(st.sampled_from(SEVERITIES))
    return body


THRESHOLD_BODIES = st.fixed_dictionaries(
    {"scope": st.sampled_from(["*", "units/1", "units/1/automates/1", f"meters/{METER}", "units/7"]) | SCOPE_LIKE,
     "measure": st.sampled_from([*MEASURES, "bogus"])},
    optional={"low": THRESHOLD_VALUES, "high": THRESHOLD_VALUES, "deadband": THRESHOLD_VALUES,
              "severity": st.sampled_from([*SEVERITIES, "fatal", 1, None]), "extra": st.just(1)},
)


def body_text(body: Any) -> str:
    return json.dumps(body, allow_nan=True)  # NaN and Infinity too: Flask's parser takes them


RAW_BODIES = st.one_of(
    THRESHOLD_BODIES.map(body_text),
    JSON_TEXT,
    deep(max_depth=990),  # deeper: see test_threshold_edit_with_a_body_nested_too_deep
    st.sampled_from(["", "null", "[]", '"text"', "{", '{"scope": "*", "measure": "ph", "low": ' + "1" * 5000 + "}",
                     '{"scope": "*", "measure": "ph", "low": 1e400, "high": null}', "\ufeff{}"]),
    st.text(max_size=20),
)


@props(90)
@given(good_threshold_bodies().map(body_text) | RAW_BODIES,
       st.sampled_from(["application/json", "application/json", "text/plain", None]))
@example(body_text({"scope": "units/1", "measure": "ph", "low": 10**400, "high": None}), "application/json")
@example(body_text({"scope": "units/1/automates/²", "measure": "ph", "low": 1, "high": 2}), "application/json")
@example(body_text({"scope": "units/" + "1" * 5000, "measure": "ph", "low": 1, "high": 2}), "application/json")
@example(body_text({"scope": "*", "measure": "ph", "low": float("nan"), "high": 2}), "application/json")
def test_threshold_edit_bodies(api: Client, body: str, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    check_answer(api.open("PUT", "/api/thresholds", "admin", data=body.encode("utf-8", "surrogatepass"),
                          headers=headers))


@props(50)
@given(params({"scope": SCOPE_LIKE, "measure": st.sampled_from([*MEASURES, "bogus", ""])}))
@example([("scope", "units/²/automates/1"), ("measure", "ph")])
@example([("scope", "units/" + "1" * 5000), ("measure", "ph")])
def test_threshold_delete_parameters(api: Client, pairs: list[tuple[str, str]]) -> None:
    check_answer(api.open("DELETE", url("/api/thresholds", pairs), "admin"))


@props(50)
@given(st.sampled_from([1, 1, 2, 0, 999, 2**63 - 1, 2**63, 10**30]), RAW_BODIES,
       st.sampled_from(["application/json", None]), st.lists(st.tuples(st.sampled_from(["x", "ack"]),
                                                                       st.text(max_size=3)), max_size=1))
def test_alarm_acknowledgement_bodies(api: Client, alarm_id: int, body: str, content_type: str | None,
                                      pairs: list[tuple[str, str]]) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    check_answer(api.open("POST", url(f"/api/alarms/{alarm_id}/ack", pairs), "operator",
                          data=body.encode("utf-8", "surrogatepass"), headers=headers))


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_threshold_edit_with_a_body_nested_too_deep(api: Client, opening: str) -> None:
    body = opening * 5000 + "1" + ("]" if opening == "[" else "}") * 5000
    check_answer(api.open("PUT", "/api/thresholds", "admin", data=body, headers={"Content-Type": "application/json"}),
                 record=False)
