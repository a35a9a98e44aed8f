"""Which language a page is in (the user's choice, else the browser's, else the plant's), the users'
language setting through the API, and how numbers and times are written for people."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from plantmodel.errors import ValidationError
from plantmodel.i18n import (
    TRANSLATIONS_DIR,
    CatalogsNotCompiled,
    format_number,
    format_time,
    js_catalog,
    language_from_env,
    plural_indices,
    require_compiled,
    stale_catalogs,
)
from tests.webapp import csrf, login, make_web_app
from webui.settings import WebSettings

NNBSP = "\u202f"  # French thousands separator (CLDR): a narrow no-break space


def _lang(html: str) -> str:
    match = re.search(r'<html lang="(\w+)">', html)
    assert match, html[:200]
    return match.group(1)


def _page_config(html: str) -> dict:
    match = re.search(r'<script id="page-config" type="application/json">(.*?)</script>', html, re.S)
    assert match
    return json.loads(match.group(1))


@pytest.fixture
def french_plant(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path, plant_language="fr")


def test_the_log_in_page_follows_the_browser_else_the_plant(french_plant: Flask, tmp_path: Path) -> None:
    http = french_plant.test_client()
    page = http.get("/login").get_data(as_text=True)
    assert _lang(page) == "fr" and "Se connecter" in page  # no Accept-Language: the plant's language
    page = http.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert _lang(page) == "en" and "Log in" in page
    page = http.get("/login", headers={"Accept-Language": "de-DE,fr;q=0.5"}).get_data(as_text=True)
    assert _lang(page) == "fr"  # the best we speak
    page = http.get("/login", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    assert _lang(page) == "fr"  # none we speak: the plant's
    # A regional tag counts for its language, in the browser's order of preference.
    for header, expected in [("fr-FR,en-US;q=0.7,en;q=0.3", "fr"), ("fr-BE,en;q=0.5", "fr"),
                             ("en-GB,fr;q=0.5", "en"), ("de,en-US;q=0.8,fr;q=0.5", "en"), ("*", "fr"),
                             ("en;q=0.2,fr;q=0.9", "fr")]:
        page = http.get("/login", headers={"Accept-Language": header}).get_data(as_text=True)
        assert _lang(page) == expected, header
    (tmp_path / "en").mkdir()
    english = make_web_app(tmp_path / "en", plant_language="en").test_client()
    assert _lang(english.get("/login", headers={"Accept-Language": "*"}).get_data(as_text=True)) == "en"


def test_a_users_choice_beats_the_browser_and_is_kept(french_plant: Flask) -> None:
    http = french_plant.test_client()
    english = {"Accept-Language": "en"}
    login(http, "operator")
    page = http.get("/", headers=english).get_data(as_text=True)
    assert _lang(page) == "en" and ">Overview<" in page
    resp = http.patch("/api/me", json={"language": "fr"}, headers={**csrf(http), **english})
    assert resp.status_code == 200 and resp.get_json()["language"] == "fr"
    page = http.get("/", headers=english).get_data(as_text=True)
    assert _lang(page) == "fr" and ">Vue d'ensemble<" in page
    config = _page_config(page)["i18n"]
    assert config["language"] == "fr" and config["intl"] == "fr"
    assert config["plural"] == {"one": 0, "many": 1, "other": 2}
    assert config["messages"] and all(isinstance(k, str) for k in config["messages"])
    # measure names from their one definition, in the page's language
    assert _page_config(page)["measures"]["automate"]["tank_temp_c"]["label"] == "Température cuve"
    # back to automatic: the browser's
    assert http.patch("/api/me", json={"language": None}, headers={**csrf(http), **english}).status_code == 200
    assert _lang(http.get("/", headers=english).get_data(as_text=True)) == "en"
    assert http.get("/api/me").get_json()["language"] is None


def test_api_errors_for_people_are_in_their_language(french_plant: Flask) -> None:
    http = french_plant.test_client()
    login(http, "operator")
    resp = http.patch("/api/me", json={"language": "de"}, headers=csrf(http))
    assert resp.status_code == 400 and "language" in resp.get_json()["error"]
    resp = http.patch("/api/me", json={"language": 3}, headers=csrf(http))
    assert resp.get_json()["error"] == "le champ 'language' doit être une chaîne ou null"
    resp = http.patch("/api/me", json={"language": 3}, headers={**csrf(http), "Accept-Language": "en"})
    assert resp.get_json()["error"] == "field 'language' must be a string or null"


def test_an_admin_sets_a_users_language(french_plant: Flask) -> None:
    http = french_plant.test_client()
    login(http, "admin")
    resp = http.patch("/api/users/viewer", json={"language": "en"}, headers=csrf(http))
    assert resp.status_code == 200 and resp.get_json()["language"] == "en"
    created = http.post("/api/users", json={"username": "marie", "password": "marie-pass-1", "role": "viewer",
                                            "language": "fr"}, headers=csrf(http))
    assert created.status_code == 201 and created.get_json()["language"] == "fr"
    assert http.post("/api/users", json={"username": "paul", "password": "paul-pass-1", "role": "viewer",
                                         "language": "xx"}, headers=csrf(http)).status_code == 400
    viewer = french_plant.test_client()
    login(viewer, "viewer")
    page = viewer.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert _lang(page) == "en"  # the admin's setting wins over the browser
    audit = http.get("/api/audit?action=user.update").get_json()["items"]
    assert any(e["details"].get("language") == "en" for e in audit), audit


def test_plant_language_is_checked_at_start() -> None:
    assert language_from_env({}) == "fr"
    assert language_from_env({"PLANT_LANGUAGE": " EN "}) == "en"
    with pytest.raises(ValidationError, match="PLANT_LANGUAGE='de' is not one of fr, en"):
        WebSettings.from_env({"PLANT_LANGUAGE": "de"})


def test_numbers_and_times_in_each_language() -> None:
    assert format_number(4012.5, 1, "fr") == f"4{NNBSP}012,5"
    assert format_number(4012.5, 1, "en") == "4,012.5"
    assert format_number(3.14159, 2, "fr") == "3,14" and format_number(None, 1, "fr") == "—"
    ts = datetime(2026, 12, 1, 19, 25, 7, tzinfo=UTC)
    paris = ZoneInfo("Europe/Paris")
    assert format_time(ts, paris, "fr") == "1 déc. 2026 20:25 CET"
    assert format_time(ts, paris, "en", seconds=True) == "1 Dec 2026 20:25:07 CET"
    assert format_time(ts, paris, "en", with_zone=False) == "1 Dec 2026 20:25"


def test_plural_forms_map_cldr_categories_to_the_catalogs_forms() -> None:
    assert plural_indices("en") == {"one": 0, "other": 1}
    assert plural_indices("fr") == {"one": 0, "many": 1, "other": 2}  # 0 and 1 are singular in French
    plurals = {k: v for k, v in js_catalog("fr").items() if isinstance(v, list)}
    assert plurals and all(len(v) == 3 and all(v) for v in plurals.values()), plurals


def test_a_missing_or_older_compiled_catalog_is_found(tmp_path: Path) -> None:
    """A service started without compiling would show English to a French plant: it refuses."""
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS_DIR, copy)
    assert stale_catalogs(copy) == []
    mo = copy / "fr" / "LC_MESSAGES" / "js.mo"
    po = mo.with_suffix(".po")
    po.touch()
    mtime = po.stat().st_mtime
    os.utime(mo, (mtime - 10, mtime - 10))
    assert stale_catalogs(copy) == [str(mo)]
    mo.unlink()
    assert stale_catalogs(copy) == [str(mo)]
    with pytest.raises(CatalogsNotCompiled, match="run: python -m webui translations compile"):
        require_compiled(copy)


def test_error_pages_are_in_the_users_language(french_plant: Flask) -> None:
    """A page's 403, 404 and 405 are the dashboard's error page in the request's language, not
    Werkzeug's English one; the API's stay JSON."""
    http = french_plant.test_client()
    login(http, "viewer")
    page = http.get("/admin/users")
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert _lang(html) == "fr" and "Accès refusé" in html and "Forbidden" not in html
    page = http.get("/units/abc")
    assert page.status_code == 404 and ">Introuvable<" in page.get_data(as_text=True)
    page = http.post("/alarms")
    assert page.status_code == 405 and "GET" in page.headers.get("Allow", "")
    assert _lang(page.get_data(as_text=True)) == "fr"
    english = http.get("/admin/users", headers={"Accept-Language": "en"})
    assert english.status_code == 403 and "Access denied" in english.get_data(as_text=True)
    api = http.get("/api/users")
    assert api.status_code == 403 and api.is_json
