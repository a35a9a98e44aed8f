"""What a notification says (mail subject and body, webhook JSON) and how it is sent (SMTP, HTTP POST).

Mail: :mod:`smtplib` and :mod:`email.message` from the standard library (plain SMTP, STARTTLS or
SMTPS, optional log-in). Webhook: :mod:`urllib.request` (no new dependency for one JSON POST); any
answer other than 2xx is a failure, retried. What the libraries raise is translated into a
:class:`DeliveryError` with a readable reason (the service also takes any other exception as a failed
attempt).
"""

from __future__ import annotations

import http.client
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from notifier.settings import SmtpSettings
from plantmodel.measures import MEASURES
from plantmodel.readings import format_ts
from plantmodel.timezone import local_text
from store import models as orm
from store import queries

USER_AGENT = "abb-telemetry-notifier/1"
ERROR_MAX = 512  # notifications.last_error, notification_attempts.error


class DeliveryError(Exception):
    """One failed attempt; ``str()`` is what is stored and logged."""


@dataclass(frozen=True, slots=True)
class Content:
    subject: str
    body: str
    payload: dict[str, Any]  # the webhook's JSON


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def alarm_fields(row: orm.Alarm) -> dict[str, Any]:
    """The API's view of the alarm (``queries.alarm_dict``), or the raw columns for an alarm the
    model does not know (a newer bridge's kind of alarm must still be told)."""
    try:
        return queries.alarm_dict(row)
    except (KeyError, ValueError):
        return {"id": row.id, "source": row.source, "label": row.source, "measure": row.measure,
                "value": row.value, "limit": row.limit_value, "bound": row.bound, "severity": row.severity,
                "state": row.state, "raised_at": format_ts(row.raised_at),
                "cleared_at": None if row.cleared_at is None else format_ts(row.cleared_at),
                "acknowledged_at": None if row.acknowledged_at is None else format_ts(row.acknowledged_at),
                "acknowledged_by": row.acknowledged_by}


def build(event: str, row: orm.Alarm, *, escalate_after_min: int | None, zone: tzinfo, dashboard_url: str,
          now: datetime, notification_id: int, route_name: str) -> Content:
    fields = alarm_fields(row)
    measure = MEASURES.get(row.measure)
    what = measure.label if measure else row.measure
    unit = f" {measure.unit}" if measure and measure.unit else ""
    source = fields.get("label") or row.source
    if fields.get("name"):
        source = f"{source} ({fields['name']})"
    side = "above the high limit" if row.bound == "high" else "below the low limit"
    limit = f"{_number(row.limit_value)}{unit}"
    if event == "clear":
        headline = "Alarm cleared"
        detail = f"{what} back to {_number(row.last_value)}{unit} (limit {limit})"
    elif event == "escalate":
        headline = f"Unacknowledged for {escalate_after_min} min"
        detail = f"{what} {_number(row.value)}{unit}, {side} {limit}"
    else:
        headline = "Alarm raised"
        detail = f"{what} {_number(row.value)}{unit}, {side} {limit}"
    # One line: a label or measure with a line break in it must not make the Subject header invalid.
    subject = " ".join(f"[{row.severity.upper()}] {headline}: {source} — {detail} ({row.state})".split())
    lines = [
        f"{headline}: {source}",
        "",
        f"Measure:      {what}",
        f"Value:        {_number(row.value)}{unit} (raised), latest {_number(row.last_value)}{unit}",
        f"Limit:        {limit} ({row.bound})",
        f"Severity:     {row.severity}",
        f"State:        {row.state}",
        f"Raised:       {local_text(row.raised_at, zone)}",
    ]
    if row.cleared_at is not None:
        lines.append(f"Cleared:      {local_text(row.cleared_at, zone)}")
    if row.acknowledged_at is not None:
        lines.append(f"Acknowledged: {local_text(row.acknowledged_at, zone)} by {row.acknowledged_by}")
    else:
        lines.append("Acknowledged: not yet")
    if row.detail:
        lines.append(f"Detail:       {row.detail}")
    if dashboard_url:
        lines += ["", f"Dashboard:    {dashboard_url}/alarms"]
    lines += ["", f"-- sent by the plant's notifier (route {route_name!r}, notification {notification_id})"]
    payload = {"event": event, "alarm": fields, "sent_at": format_ts(now), "route": route_name,
               "notification_id": notification_id}
    if dashboard_url:
        payload["dashboard_url"] = f"{dashboard_url}/alarms"
    return Content(subject, "\n".join(lines) + "\n", payload)


def send_email(smtp: SmtpSettings, to: list[str], content: Content) -> str | None:
    """Send; returns a note when some recipients were refused (the others have it: not retried)."""
    if not smtp.host:
        raise DeliveryError("no SMTP server configured (NOTIFY_SMTP_HOST)")
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = smtp.sender, ", ".join(to), content.subject
        msg["Date"], msg["Message-ID"] = formatdate(localtime=False), make_msgid(domain="plant-notifier")
        msg.set_content(content.body)
        if smtp.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if smtp.user:
                client.login(smtp.user, smtp.password)
            refused = client.send_message(msg, to_addrs=to)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP {smtp.host}:{smtp.port}: {type(exc).__name__}: {exc}"[:ERROR_MAX]) from None
    except UnicodeError as exc:  # not its text: it would quote a character of the password
        raise DeliveryError(f"SMTP {smtp.host}:{smtp.port}: {type(exc).__name__}: a non-ASCII user name, password "
                            "or address (smtplib sends the log-in as ASCII)") from None
    except (ValueError, TypeError, LookupError) as exc:  # a header email.message refuses, a strange reply
        raise DeliveryError(f"SMTP {smtp.host}:{smtp.port}: {type(exc).__name__}: {exc}"[:ERROR_MAX]) from None
    # Some recipients refused, the others have it: a retry would send it to them twice.
    return f"SMTP refused {', '.join(sorted(refused))}"[:ERROR_MAX] if refused else None


def post_webhook(url: str, content: Content, timeout: float) -> None:
    data = json.dumps(content.payload, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered HTTP {exc.code} {exc.reason}"[:ERROR_MAX]) from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
        raise DeliveryError(f"webhook: {type(exc).__name__}: {getattr(exc, 'reason', exc)}"[:ERROR_MAX]) from None
    except http.client.HTTPException as exc:  # BadStatusLine &c.: something that is not an HTTP server answered
        raise DeliveryError(f"webhook: {type(exc).__name__}: {exc} (not an HTTP answer)"[:ERROR_MAX]) from None
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook answered HTTP {status}")
