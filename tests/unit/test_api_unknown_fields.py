"""Nothing sent to the API is silently ignored: every state-changing route under ``/api`` answers an
unknown JSON body field with a 400 naming it, and every GET route an unknown query parameter.

The routes come from the app's own url_map, so a route added later is covered without editing this
file (a route with a path argument not in :data:`PATH_VALUES` fails until one is added).

Not covered, on purpose: the legacy HTTP senders (``/collector/info``, ``/webhook/``) are not under
``/api`` and ignore fields they do not know by design (plantmodel/legacy.py: old unit firmware and
newer Shelly firmware send more than the seed's fields, and refusing them would drop readings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from store import models as orm
from store.db import create_db_engine, make_sessionmaker
from tests.webapp import METER, TS, make_web_app, token_for
from webui import create_app
from webui.settings import WebSettings
from webui.state import web_state

UNKNOWN = "zz_not_a_field"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# A value for each path argument, naming something the seeded plant has (tests/webapp.py).
PATH_VALUES: dict[str, Any] = {"alarm_id": 1, "device": "units/1", "meter": METER, "username": "viewer",
                               "unit": 1, "automate": 1, "route_id": 1}
# route rule -> why it may accept an unknown body field. Empty: every route refuses them.
BODY_EXCEPTIONS: dict[str, str] = {}
# route rule -> why it may accept an unknown query parameter.
QUERY_EXCEPTIONS: dict[str, str] = {}


def _rules() -> list[Rule]:
    # An app on an empty in-memory database is enough to read the routes (nothing is queried).
    app = create_app(WebSettings(database_url="sqlite://", secret_key="test"),
                     sessionmaker=make_sessionmaker(create_db_engine("sqlite://")))
    return sorted((r for r in app.url_map.iter_rules() if r.rule.startswith("/api/")), key=lambda r: r.rule)


def _cases(methods: tuple[str, ...]) -> list[Any]:
    return [pytest.param(rule.rule, method, id=f"{method} {rule.rule}")
            for rule in _rules() for method in sorted(rule.methods or ()) if method in methods]


WRITE_CASES = _cases(WRITE_METHODS)
READ_CASES = _cases(("GET",))


def _url(app: Flask, rule_text: str, method: str, query: str = "") -> str:
    rule = next(r for r in app.url_map.iter_rules() if r.rule == rule_text and method in (r.methods or ()))
    missing = sorted(set(rule.arguments) - set(PATH_VALUES))
    assert not missing, f"{rule_text}: add a sample value for {missing} to PATH_VALUES"
    with app.test_request_context():
        adapter = app.url_map.bind("localhost")
        return adapter.build(rule.endpoint, {a: PATH_VALUES[a] for a in rule.arguments}, method=method) + query


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app = make_web_app(tmp_path)  # fresh per route: a route that wrongly succeeds changes nothing else
    with web_state(app).make_session.begin() as session:  # what PATH_VALUES names beyond tests/webapp.py
        session.add(orm.NotificationRoute(id=1, name="quality", channel="email", target="qa@example.com",
                                          min_severity="critical", scope="*", events="raise", enabled=True,
                                          updated_at=TS, updated_by="admin"))
    return app


def _admin(app: Flask) -> dict[str, str]:
    # A token, not the session: no CSRF token needed, and the admin may call every route.
    return {"Authorization": f"Bearer {token_for(web_state(app).make_session, 'admin')}"}


def test_the_sweep_finds_routes() -> None:
    assert len(WRITE_CASES) >= 10 and len(READ_CASES) >= 20
    assert not set(BODY_EXCEPTIONS) - {c.values[0] for c in WRITE_CASES}, "an exception names no route"


@pytest.mark.parametrize(("rule", "method"), WRITE_CASES)
def test_an_unknown_body_field_is_refused(app: Flask, rule: str, method: str) -> None:
    if rule in BODY_EXCEPTIONS:
        pytest.skip(BODY_EXCEPTIONS[rule])
    resp = app.test_client().open(_url(app, rule, method), method=method, json={UNKNOWN: 1}, headers=_admin(app))
    assert resp.status_code == 400, f"{method} {rule} answered {resp.status_code}: {resp.get_data(as_text=True)}"
    assert UNKNOWN in resp.get_json()["error"], resp.get_json()  # refused for that field, not another reason


@pytest.mark.parametrize(("rule", "method"), READ_CASES)
def test_an_unknown_query_parameter_is_refused(app: Flask, rule: str, method: str) -> None:
    if rule in QUERY_EXCEPTIONS:
        pytest.skip(QUERY_EXCEPTIONS[rule])
    resp = app.test_client().get(_url(app, rule, method, f"?{UNKNOWN}=1"), headers=_admin(app))
    assert resp.status_code == 400, f"GET {rule} answered {resp.status_code}"
    assert UNKNOWN in resp.get_json()["error"], resp.get_json()
