"""HTTP hardening of every answer: a Content Security Policy without inline script, no framing,
no MIME sniffing, no referrer to other sites; over HTTPS a ``Secure`` session cookie and HSTS.

The pages load only their own scripts and styles (``static/``, ``static/vendor/``) and keep their
data in ``<script type="application/json">`` blocks, which a CSP never executes: so no
``'unsafe-inline'`` is needed anywhere. ``frame-ancestors 'none'`` stops the Acknowledge button
from being framed (clickjacking).
"""

from __future__ import annotations

from flask import Flask, Response

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",  # the API and Socket.IO (same origin; 'self' covers ws:/wss: there)
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=31536000"  # one year; no includeSubDomains: the plant's other hosts are not ours


def install(app: Flask, *, https: bool) -> None:
    """``https``: the app is served over HTTPS (directly or behind a TLS proxy): the session
    cookie is sent only over HTTPS and browsers are told to use nothing else."""
    app.config["SESSION_COOKIE_SECURE"] = https

    @app.after_request
    def _headers(resp: Response) -> Response:
        headers = resp.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")  # for browsers without frame-ancestors
        headers.setdefault("Referrer-Policy", "same-origin")
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return resp
