"""``/api/openapi.json`` documents exactly the app's /api routes, with their methods, path
parameters and responses, and every ``$ref`` in it resolves."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.webapp import make_web_app, token_for
from webui import web_state


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return make_web_app(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def get(app: Flask) -> Callable[[str], Any]:
    headers = {"Authorization": f"Bearer {token_for(web_state(app).make_session, 'admin')}"}

    def _get(url: str) -> Any:
        resp = app.test_client().get(url, headers=headers)
        assert resp.status_code == 200, url
        return resp.get_json()

    return _get


@pytest.fixture(scope="module")
def doc(get: Callable[[str], Any]) -> dict[str, Any]:
    return get("/api/openapi.json")


def openapi_path(rule: str) -> str:
    """``/api/units/<int:unit>`` -> ``/api/units/{unit}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def app_routes(app: Flask) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api"):
            routes.setdefault(openapi_path(rule.rule), set()).update(
                m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    return routes


def test_every_api_route_is_documented_with_its_methods(app: Flask, doc: dict[str, Any]) -> None:
    routes = app_routes(app)
    documented = {path: set(ops) - {"parameters", "summary", "description"} for path, ops in doc["paths"].items()}
    assert routes == documented
    assert len(routes) >= 25


def test_path_parameters_and_responses_are_declared(doc: dict[str, Any]) -> None:
    for path, ops in doc["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for method, op in ops.items():
            params = [resolve(doc, p) for p in op.get("parameters", [])]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == in_path, (method, path)
            assert op["summary"], (method, path)
            codes = set(op["responses"])
            assert codes & {"200", "201"}, (method, path)
            assert "401" in codes, (method, path)
            if in_path:
                assert "404" in codes, (method, path)


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert len(refs) > 50
    for ref in set(refs):
        resolve(doc, {"$ref": ref})


def test_document_header(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "http://localhost"}]
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "cookieAuth"}


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    target: Any = doc
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return target


@pytest.mark.parametrize(("schema", "url", "pick"), [
    ("ReadingRow", "/api/units/1/automates/1/readings", lambda d: d["items"][0]),
    ("PowerRow", "/api/meters/shellypro1pm-a8032ab1c2d3/readings", lambda d: d["items"][0]),
    ("Automate", "/api/units/1/automates/1", lambda d: d),
    ("Reading", "/api/units/1/automates/1", lambda d: d["latest"]),
    ("Unit", "/api/units/1", lambda d: d),
    ("Meter", "/api/meters/shellypro1pm-a8032ab1c2d3", lambda d: d),
    ("Alarm", "/api/alarms", lambda d: d["items"][0]),
    ("Threshold", "/api/thresholds", lambda d: d["items"][0]),
    ("User", "/api/users", lambda d: d["items"][0]),
    ("Measurement", "/api/measurements/", lambda d: d["results"][0]),
    ("Series", "/api/units/1/automates/1/series", lambda d: d),
])
def test_documented_fields_are_the_real_ones(doc: dict[str, Any], get: Callable[[str], Any], schema: str,
                                             url: str, pick: Callable[[Any], dict[str, Any]]) -> None:
    props = set(doc["components"]["schemas"][schema]["properties"])
    real = set(pick(get(url)))
    if schema == "Alarm":  # an automate's alarm has unit/automate, a meter's has meter
        props -= {"meter"}
    assert real == props
