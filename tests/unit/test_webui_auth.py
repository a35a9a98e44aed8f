"""Log-in, roles, API tokens, CSRF and the user commands, on SQLite with the Flask test client."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from store import users as user_store
from store.db import create_db_engine, make_sessionmaker
from tests.webapp import METER, USERS, csrf, form_csrf, login, make_web_app, token_for
from webui import assets, web_state
from webui.auth import authenticate, hash_password, require_role, verify_password

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"auth.login", "dashboard.healthz", "static"}
SAMPLE_ARGS = {"unit": 1, "automate": 1, "meter": METER, "meter_id": METER, "alarm_id": 1, "id": 1, "route_id": 1,
               "username": "viewer", "filename": "dashboard.css"}


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)


def _url(app: Flask, rule: object) -> str:
    with app.test_request_context():
        from flask import url_for

        args = {a: SAMPLE_ARGS.get(a, "x") for a in rule.arguments}  # type: ignore[attr-defined]
        return url_for(rule.endpoint, **args)  # type: ignore[attr-defined]


def test_every_route_but_login_and_health_refuses_anonymous_users(app: Flask) -> None:
    http = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        url = _url(app, rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            resp = http.open(url, method=method)
            # /api and the machine endpoints (/metrics) answer a status; pages send to the log-in form.
            if url.startswith("/api") or getattr(app.view_functions[rule.endpoint], "api_style", False):
                assert resp.status_code == 401, (method, url, resp.status_code)
                assert "log in" in resp.get_json()["error"]
            else:
                assert resp.status_code == 302, (method, url, resp.status_code)
                assert resp.headers["Location"].startswith("/login")
            checked += 1
    assert checked >= 3


def test_login_sets_a_safe_session_and_redirects_to_next(app: Flask) -> None:
    http = app.test_client()
    resp = http.get("/api/latest")
    assert resp.status_code == 401
    page = http.get("/login?next=/alarms")
    resp = http.post("/login", data={"username": "viewer", "password": USERS["viewer"][1], "next": "/alarms",
                                     "csrf_token": form_csrf(page.get_data(as_text=True))})
    assert resp.status_code == 302 and resp.headers["Location"] == "/alarms"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert http.get("/api/latest").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_login_never_redirects_off_site(app: Flask, target: str) -> None:
    http = app.test_client()
    page = http.get("/login")
    resp = http.post("/login", data={"username": "viewer", "password": USERS["viewer"][1], "next": target,
                                     "csrf_token": form_csrf(page.get_data(as_text=True))})
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize(("username", "password"), [("viewer", "wrong-password"), ("nobody", "viewer-pass-1")])
def test_wrong_credentials_are_refused_alike(app: Flask, username: str, password: str) -> None:
    http = app.test_client()
    resp = login(http, username, password)
    assert resp.status_code == 401
    assert "Wrong user name or password." in resp.get_data(as_text=True)
    assert http.get("/api/latest").status_code == 401


def test_login_without_the_form_token_is_refused(app: Flask) -> None:
    http = app.test_client()
    resp = http.post("/login", data={"username": "viewer", "password": USERS["viewer"][1]})
    assert resp.status_code == 400
    assert http.get("/api/latest").status_code == 401


def test_logout_needs_the_csrf_token_and_ends_the_session(app: Flask) -> None:
    http = app.test_client()
    login(http, "viewer")
    assert http.post("/logout").status_code == 403  # a cross-site form cannot log you out
    assert http.get("/api/latest").status_code == 200
    assert http.post("/logout", headers=csrf(http)).status_code == 302
    assert http.get("/api/latest").status_code == 401


def test_api_token_authenticates_without_cookie_or_csrf(app: Flask) -> None:
    make_session = web_state(app).make_session
    token = token_for(make_session, "operator")
    http = app.test_client()
    ok = http.get("/api/latest", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert http.get("/api/latest", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert http.get("/api/latest", headers={"Authorization": "Bearer "}).status_code == 401
    with make_session() as session:
        stored = user_store.get_user(session, "operator")
        assert stored is not None and stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in stored.token_hash  # only the hash is kept


def test_roles_are_checked_on_every_request(app: Flask) -> None:
    app.add_url_rule("/api/_probe", "probe", require_role("operator")(lambda: {"ok": True}), methods=["POST"])
    http = app.test_client()
    login(http, "viewer")
    resp = http.post("/api/_probe", headers=csrf(http))
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "this needs the operator role; viewer is viewer"
    with web_state(app).make_session.begin() as session:
        user = user_store.get_user(session, "viewer")
        assert user is not None
        user.role = "operator"  # promoted while logged in: applies at once
    assert http.post("/api/_probe", headers=csrf(http)).get_json() == {"ok": True}
    assert http.post("/api/_probe").status_code == 403  # cookie auth without the CSRF header
    with web_state(app).make_session.begin() as session:
        session.delete(user_store.get_user(session, "viewer"))
    assert http.post("/api/_probe", headers=csrf(http)).status_code == 401  # deleted: logged out


def test_passwords_are_salted_argon2id_hashes(app: Flask) -> None:
    first, second = hash_password("same-password"), hash_password("same-password")
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, "same-password") and not verify_password(first, "other-password")
    assert not verify_password("not a hash", "same-password")
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")
    assert authenticate(web_state(app).make_session, "admin", USERS["admin"][1]) is not None


def _cli(db: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m webui users …`` as a process: the real entry point."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}
    return subprocess.run([sys.executable, "-m", "webui", "users", *argv], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def _in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                ) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The same command through ``webui.__main__.main`` in this process: a second each saved."""
    from webui.__main__ import main

    def cli(db: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["users", *argv])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)
    return cli


def test_users_command_creates_the_first_admin_and_manages_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "plant.db"
    made = _cli(db, "add", "alice", "--role", "admin", "--password-stdin", stdin="alice-secret-1\n")
    assert made.returncode == 0, made.stderr
    assert "created alice (admin)" in made.stdout
    sessions = make_sessionmaker(create_db_engine(f"sqlite:///{db}"))
    alice = authenticate(sessions, "alice", "alice-secret-1")
    assert alice is not None and alice.role == "admin"

    cli = _in_process(monkeypatch, capsys)  # the rest in this process
    again = cli(db, "add", "alice", "--password-stdin", stdin="x" * 8 + "\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    short = cli(db, "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    generated = cli(db, "add", "bob", "--role", "operator", "--generate")
    password = generated.stdout.strip().rsplit("password: ", 1)[1]
    assert authenticate(sessions, "bob", password) is not None

    token = cli(db, "token", "bob").stdout.strip()
    from webui.auth import user_for_token

    bob = user_for_token(sessions, token)
    assert bob is not None and bob.username == "bob" and bob.via_token
    listing = cli(db, "list").stdout
    assert "alice" in listing and "bob" in listing and "operator" in listing

    assert cli(db, "set-role", "alice", "viewer").returncode == 2  # the last admin stays admin
    assert cli(db, "delete", "alice").returncode == 2
    assert cli(db, "set-role", "bob", "admin").returncode == 0
    assert cli(db, "delete", "alice").returncode == 0
    assert authenticate(sessions, "alice", "alice-secret-1") is None
    missing = cli(db, "passwd", "nobody", "--generate")
    assert missing.returncode == 2 and "no user 'nobody'" in missing.stderr


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_assets_are_fetched_once_and_checked_against_their_pinned_hash(tmp_path: Path) -> None:
    tgz = _tarball({"package/dist/lib.min.js": b"/* lib */", "package/LICENSE": b"MIT"})
    good = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    asset = assets.NpmAsset("lib", "1.2.3", good, (("package/dist/lib.min.js", "lib.min.js"),
                                                   ("package/LICENSE", "lib.LICENSE")))
    urls: list[str] = []

    def fetch(url: str) -> bytes:
        urls.append(url)
        return tgz

    vendor = tmp_path / "vendor"
    assert assets.missing_assets(vendor, (asset,)) == ["lib@1.2.3"]
    assert assets.ensure_assets(vendor, registry="https://mirror.example/npm/", fetch=fetch, assets=(asset,),
                                progress=lambda _: None) == 1
    assert urls == ["https://mirror.example/npm/lib/-/lib-1.2.3.tgz"]
    assert (vendor / "lib.min.js").read_bytes() == b"/* lib */"
    assert assets.missing_assets(vendor, (asset,)) == []
    assert assets.ensure_assets(vendor, fetch=fetch, assets=(asset,), progress=lambda _: None) == 0  # cached

    tampered = assets.NpmAsset("lib", "1.2.4", good, asset.files)
    with pytest.raises(assets.AssetError, match="integrity mismatch"):
        assets.ensure_assets(vendor, fetch=lambda _: tgz + b"x", assets=(tampered,), progress=lambda _: None)
    assert assets.missing_assets(vendor, (tampered,)) == ["lib@1.2.4"]  # nothing half-installed


def test_the_pinned_assets_are_installed_and_served(app: Flask) -> None:
    assert assets.missing_assets() == [], "run `python -m webui assets` (scripts/bootstrap.sh does)"
    http = app.test_client()
    for name in ("chart.umd.min.js", "socket.io.min.js"):
        with http.get(f"/static/vendor/{name}") as resp:  # static files need no log-in
            assert resp.status_code == 200 and len(resp.data) > 10_000
