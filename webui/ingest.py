"""Legacy HTTP ingest: the original collectors' routes, for senders that cannot speak MQTT.

``POST /collector/info`` (seed 1: a production unit's reading, JSON body or form fields) and
``/webhook/`` (seed 2: a Shelly webhook, ``POST`` JSON / form or ``GET`` query string). Both feed
the same pipeline as MQTT devices: the fields are mapped by :mod:`plantmodel.legacy` and published
on the broker (``<root>/units/<u>/automates/<a>/readings``, ``<root>/meters/<id>/power``) at QoS 1,
where ``mosquitto_sub`` shows them and the bridge validates, stores and alarms on them. The sender
gets its answer only after the broker's PUBACK: 200 = accepted by the broker; 503 = not (retry).

Machine endpoints: no session, no CSRF, no log-in. Each sender has a token (``device_tokens``,
SHA-256 only; an admin creates it: ``/admin/senders``, ``POST /api/device-tokens`` or
``python -m webui token create``) bound to one device: ``units/<u>`` for ``/collector/info``,
``meters/<id>`` for ``/webhook/``. Sent as ``Authorization: Bearer <token>`` (or ``Token <token>``),
``X-Device-Token: <token>`` or ``?token=<token>`` (for senders where only the URL can be set: the
URL then carries the secret, and proxies may log it). Unknown or revoked token: 401; a token for
another device: 403; a missing, repeated or bad field: 400 naming it; nothing is published then.
Requests are rate-limited (per token, per address, and failed authentications per address) and
bodies are capped (:data:`MAX_BODY_BYTES`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from flask_limiter.util import get_remote_address
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from plantmodel import legacy
from plantmodel.readings import format_ts, to_ms, utcnow
from store import models as orm
from webui.api import ApiError, error_response, invalid_input
from webui.auth import api_style, public, token_hash
from webui.live import MqttUnavailable
from webui.state import web_state

log = logging.getLogger(__name__)

bp = Blueprint("ingest", __name__)

MAX_BODY_BYTES = 16 * 1024  # a seed 1 body is ~300 bytes; room for firmware that sends more fields
PUBLISH_TIMEOUT_S = 5.0  # wait this long for the broker's PUBACK, else 503 (the sender retries)
RETRY_AFTER_S = 5
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most this often per token
MAX_TOKEN_CHARS = 256
# Flask-Limiter limits, overridable in app.config (tests). A unit reports its 10 automates once a
# minute; a Shelly webhook fires on change: 120 a minute per token leaves room for both.
DEFAULT_LIMITS = {
    "INGEST_LIMIT_TOKEN": "120 per minute",
    "INGEST_LIMIT_ADDRESS": "600 per minute",  # several senders behind one NAT
    "INGEST_LIMIT_FAILED": "30 per minute",  # 401s per address: token guessing
}
TOKEN_HINT = ("send the device token as 'Authorization: Bearer <token>', 'X-Device-Token: <token>' or "
              "?token=<token>")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True, slots=True)
class Sender:
    token_id: int
    device: str
    last_used_at: datetime | None


# -- tokens ---------------------------------------------------------------------------------------------

def _sent_tokens() -> list[str]:
    """Every token the request carries (header, X-Device-Token, ?token=), without duplicates."""
    sent: list[str] = []
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        sent.append(value.strip())
    if request.headers.get("X-Device-Token", "").strip():
        sent.append(request.headers["X-Device-Token"].strip())
    sent += [t for t in request.args.getlist("token") if t]
    return list(dict.fromkeys(sent))


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def authenticate() -> Sender:
    """The sender of this request, from its token; 401 unless the token is known and not revoked."""
    if len(request.args.getlist("token")) > 1:
        raise ApiError(400, "parameter 'token' given more than once")
    sent = _sent_tokens()
    if not sent:
        raise _unauthorized(f"log in first: {TOKEN_HINT}")
    if len(sent) > 1:
        raise ApiError(400, "two different device tokens were sent: send one")
    token = sent[0]
    if len(token) > MAX_TOKEN_CHARS:
        raise _unauthorized("unknown or revoked device token")
    with web_state().make_session() as session:
        row = session.scalar(select(orm.DeviceToken).where(orm.DeviceToken.token_hash == token_hash(token)))
        sender = None if row is None or row.revoked_at is not None \
            else Sender(row.id, row.device, row.last_used_at)
        revoked = None if row is None or row.revoked_at is None else row.id
    if sender is None:
        # Never the token itself in the log: its id when known, and where it came from.
        if revoked is not None:
            log.warning("revoked device token %d used from %s on %s", revoked, request.remote_addr, request.path)
        else:
            log.warning("unknown device token from %s on %s", request.remote_addr, request.path)
        raise _unauthorized("unknown or revoked device token")
    return sender


def _touch(sender: Sender, now: datetime) -> None:
    """Record when the token was last used (at most once a minute: one small write per sender)."""
    if sender.last_used_at is not None and now - sender.last_used_at < LAST_USED_RESOLUTION:
        return
    with web_state().make_session.begin() as session:
        row = session.get(orm.DeviceToken, sender.token_id)
        if row is not None:
            row.last_used_at = now


def _forbidden(message: str) -> ApiError:
    return ApiError(403, message)


# -- fields ---------------------------------------------------------------------------------------------

def _single(items: Any, where: str) -> dict[str, object]:
    """A MultiDict as a plain dict; a field given twice is an error (which one would be meant?)."""
    out: dict[str, object] = {}
    for key in items:
        values = items.getlist(key)
        if len(values) > 1:
            raise ApiError(400, f"field {key!r} given more than once in the {where}")
        out[key] = values[0]
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ApiError(400, f"field {key!r} given more than once in the JSON body")
        out[key] = value
    return out


def body_fields() -> dict[str, object]:
    """The fields of form fields (form content types) or of a JSON object body (any other content
    type, or none: old firmware is not always careful with its headers)."""
    try:
        if request.mimetype in FORM_TYPES:
            return _single(request.form, "form")
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise ApiError(413, f"the body is larger than {request.max_content_length} bytes") from None
    if not raw.strip():
        raise ApiError(400, "the body must be a JSON object or form fields (it is empty)")
    try:
        # NaN and Infinity are decoded so that the field holding one is named when it is refused.
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=float)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise ApiError(400, f"the body is not a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def query_fields() -> dict[str, object]:
    """The query string's fields but the token."""
    fields = _single(request.args, "query string")
    fields.pop("token", None)
    return fields


# -- publishing -----------------------------------------------------------------------------------------

def publish(topic: str, payload: str) -> Response | None:
    """Publish at QoS 1 and wait for the broker's PUBACK; an error answer (503) if it does not come."""
    try:
        info = web_state().feed.publish(topic, payload, qos=1)
        info.wait_for_publish(current_app.config.get("INGEST_PUBLISH_TIMEOUT", PUBLISH_TIMEOUT_S))
        if not info.is_published():
            raise MqttUnavailable("the broker did not acknowledge in time")
    except (MqttUnavailable, RuntimeError, ValueError) as exc:
        log.warning("legacy %s not published on %s: %s", request.path, topic, exc)
        resp = error_response(503, f"not accepted, try again: {exc}")
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp
    return None


def _now() -> datetime:
    return to_ms(utcnow())


# -- routes ---------------------------------------------------------------------------------------------

@bp.post("/collector/info")
@public  # no session: the device token authenticates (see authenticate)
@api_style
def collector_info() -> Response:
    sender = authenticate()
    unit = legacy.token_unit(sender.device)
    if unit is None:
        raise _forbidden(f"this token is for {sender.device}: it may send to /webhook/ only")
    fields = body_fields()
    now = _now()
    with invalid_input():
        claimed = legacy.collector_unit(fields)
    if claimed != unit:
        raise _forbidden(f"this token is for unit {unit}, not unityId {claimed}")
    with invalid_input():
        automate = legacy.collector_automate(fields)
        ts = legacy.collector_time(fields, now)
    stored_type, previous_milk = _automate_context(unit, automate, ts)
    with invalid_input():
        reading = legacy.collector_reading(fields, unit, now=now, automate_type=stored_type,
                                           previous_milk_kg=previous_milk)
    topic = web_state().feed.topics.legacy_reading(unit, automate)
    refused = publish(topic, reading.to_json())
    if refused is not None:
        return refused
    _touch(sender, now)
    log.debug("legacy reading of unit %d automate %d published on %s (token %d)", unit, automate, topic,
              sender.token_id)
    return jsonify(accepted=True, topic=topic, reading=reading.to_dict())


def _automate_context(unit: int, automate: int, ts: datetime) -> tuple[str | None, float | None]:
    """The automate's stored type and the milk weight of its newest stored reading before ``ts``."""
    r = orm.Reading
    with web_state().make_session() as session:
        row = session.get(orm.Automate, (unit, automate))
        milk = session.scalar(select(r.__table__.c.milk_kg)
                              .where(r.unit_id == unit, r.automate_no == automate, r.ts < ts)
                              .order_by(r.ts.desc()).limit(1))
    return (None if row is None else row.type), milk


@bp.route("/webhook/", methods=["GET", "POST"])
@public
@api_style
def webhook() -> Response:
    sender = authenticate()
    meter = legacy.token_meter(sender.device)
    if meter is None:
        raise _forbidden(f"this token is for {sender.device}: it may send to /collector/info only")
    fields = query_fields() if request.method == "GET" else body_fields()
    now = _now()
    with invalid_input():
        sample = legacy.webhook_sample(fields, meter, now)
    topic = web_state().feed.topics.meter_power(meter)
    refused = publish(topic, sample.to_json())
    if refused is not None:
        return refused
    _touch(sender, now)
    log.debug("legacy power sample of %s published on %s (token %d)", meter, topic, sender.token_id)
    # The original collector's message shape (its Kafka message), plus where it went.
    return jsonify(accepted=True, topic=topic, meter=meter, power=sample.apower, voltage=sample.voltage,
                   current=sample.current, energy=sample.energy_wh, timestamp=format_ts(sample.ts))


@bp.before_request
def _cap_body() -> None:
    # Per request (Flask 3.1): only these machine routes; a bigger body is a 413 before it is read.
    request.max_content_length = current_app.config.get("INGEST_MAX_BODY", MAX_BODY_BYTES)
    request.max_form_parts = 100


# -- rate limits ----------------------------------------------------------------------------------------

def _token_key() -> str:
    sent = _sent_tokens()
    # The hash, never the token, in the limiter's storage; no token: the address.
    return "token:" + token_hash(sent[0])[:32] if sent else "address:" + get_remote_address()


def _limit(name: str) -> Callable[[], str]:
    return lambda: current_app.config.get(name, DEFAULT_LIMITS[name])


def _breach(limit: RequestLimit) -> Response:
    log.warning("legacy ingest rate limit hit from %s on %s: %s", request.remote_addr, request.path, limit.limit)
    resp = error_response(429, f"too many requests ({limit.limit}): slow down")
    resp.headers["Retry-After"] = str(max(1, int(limit.reset_at - time.time())))
    return resp


_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]*")


class RedactTokens(logging.Filter):
    """Werkzeug's access log writes each request line with its query string: a ``?token=`` there
    is a secret. Replaced by ``***`` before the line is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_URL.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_URL.sub(r"\1***", record.msg)
        return True


def install(app: Flask, limiter: Limiter) -> None:
    """Register the routes, rate-limited by the app's limiter (:func:`webui.ratelimit.install`)."""
    access_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactTokens) for f in access_log.filters):
        access_log.addFilter(RedactTokens())
    app.register_blueprint(bp)
    for endpoint in ("ingest.collector_info", "ingest.webhook"):
        view: Any = app.view_functions[endpoint]
        # Shared limits: one budget per token and per address across both routes.
        view = limiter.shared_limit(_limit("INGEST_LIMIT_TOKEN"), "ingest-token", key_func=_token_key,
                                    on_breach=_breach)(view)
        view = limiter.shared_limit(_limit("INGEST_LIMIT_ADDRESS"), "ingest-address", on_breach=_breach)(view)
        view = limiter.shared_limit(_limit("INGEST_LIMIT_FAILED"), "ingest-failed", on_breach=_breach,
                                    deduct_when=lambda resp: resp.status_code == 401)(view)
        app.view_functions[endpoint] = view


@bp.errorhandler(RateLimitExceeded)
def _too_many(exc: RateLimitExceeded) -> Response:
    # The answer _breach built (JSON, Retry-After), not the app's generic error for /api-style routes.
    return exc.response if isinstance(exc.response, Response) else error_response(429, exc.description or "")
