"""HTTP hardening: CSP without inline script, no framing, nosniff, Referrer-Policy; over HTTPS a
Secure session cookie and HSTS."""

from __future__ import annotations

from pathlib import Path

from tests.webapp import login, make_web_app


def test_every_answer_carries_the_security_headers(tmp_path: Path) -> None:
    app = make_web_app(tmp_path)
    client = app.test_client()
    answers = [client.get("/login"), client.get("/api/units"), client.get("/nowhere")]
    login(client, "viewer")
    answers += [client.get("/"), client.get("/units/1/automates/1"), client.get("/api/units")]
    for resp in answers:
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in resp.headers  # plain HTTP: HSTS would mean nothing


def test_pages_have_no_inline_script_or_style_the_policy_would_block(tmp_path: Path) -> None:
    client = make_web_app(tmp_path).test_client()
    login(client, "admin")
    for path in ("/", "/units/1/automates/1", "/alarms", "/thresholds", "/users", "/login"):
        html = client.get(path).get_data(as_text=True)
        for tag in html.split("<script")[1:]:
            head = tag.split(">", 1)[0]
            assert "src=" in head or 'type="application/json"' in head, f"{path}: inline script {head!r}"
        assert " style=" not in html and "<style" not in html and " onclick=" not in html, path


def test_over_https_the_session_cookie_is_secure_and_hsts_is_sent(tmp_path: Path) -> None:
    client = make_web_app(tmp_path, https=True).test_client()
    resp = login(client, "viewer")
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
