"""What a notification says (mail subject and body, webhook JSON) and how it is sent (SMTP, HTTP POST).

The mail is in the plant's language (``PLANT_LANGUAGE``, :attr:`NotifierSettings.language`): its texts
from that language's catalog, numbers and times written its way (``41,5``, ``21 nov. 2026 09:59:55 CET``).
The webhook's JSON stays machine-readable in every language: codes, ISO 8601 UTC times, numbers.

Mail: :mod:`smtplib` and :mod:`email.message` from the standard library (plain SMTP, STARTTLS or
SMTPS, optional log-in). Webhook: :mod:`urllib.request` (no new dependency for one JSON POST); any
answer other than 2xx is a failure, retried. What the libraries raise is translated into a
:class:`DeliveryError` with a readable reason (the service also takes any other exception as a failed
attempt).
"""

from __future__ import annotations

import http.client
import json
import re
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
from plantmodel.i18n import N_, format_number, format_time, translations
from plantmodel.measures import MEASURES
from plantmodel.readings import format_ts
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


# Runs of whitespace but the no-break spaces (U+00A0, U+2007, U+202F) that keep a number together.
_BREAKS = re.compile(r"[^\S\u00a0\u2007\u202f]+")
SEVERITY_LABELS = {"critical": N_("critical"), "warning": N_("warning"), "info": N_("info")}
STATE_LABELS = {"active": N_("active"), "cleared": N_("cleared")}
# Every label of the body's left column: they are padded to the longest, in the mail's language.
BODY_LABELS = (N_("Measure:"), N_("Value:"), N_("Limit:"), N_("Severity:"), N_("State:"), N_("Raised:"),
               N_("Cleared:"), N_("Acknowledged:"), N_("Detail:"), N_("Dashboard:"))


def _number(value: float | None, decimals: int, language: str) -> str:
    """At least the measure's decimals, more if the value has them (as ``%g`` would show it: six
    significant digits), in the mail's language: nothing a limit or value holds is rounded away."""
    if value is None:
        return "—"
    short = f"{value:g}"
    given = len(short.split(".")[1]) if "." in short and "e" not in short else 0
    return format_number(value, min(max(decimals, given), 6), language)


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
          now: datetime, notification_id: int, route_name: str, language: str) -> Content:
    """The mail (subject and body in ``language``) and the webhook's JSON (codes: the same in every language)."""
    catalog = translations(language)

    def _(message: str, **params: object) -> str:  # the extractor's keyword: the strings below are in the catalog
        text = catalog.gettext(message)
        return text % params if params else text

    fields = alarm_fields(row)
    measure = MEASURES.get(row.measure)
    what = catalog.gettext(measure.label) if measure else row.measure
    decimals = measure.decimals if measure else 0
    unit = f" {catalog.gettext(measure.unit)}" if measure and measure.unit else ""  # "periods": a word

    def amount(value: float | None) -> str:
        return f"{_number(value, decimals, language)}{unit}"

    source = _source_label(fields, row.source, _)
    if fields.get("name"):
        source = f"{source} ({fields['name']})"
    limit = amount(row.limit_value)
    if row.bound == "high":
        crossed = _("%(measure)s %(value)s, above the high limit %(limit)s", measure=what, value=amount(row.value),
                    limit=limit)
    else:
        crossed = _("%(measure)s %(value)s, below the low limit %(limit)s", measure=what, value=amount(row.value),
                    limit=limit)
    if event == "clear":
        headline = _("Alarm cleared")
        detail = _("%(measure)s back to %(value)s (limit %(limit)s)", measure=what, value=amount(row.last_value),
                   limit=limit)
    elif event == "escalate":
        headline = _("Unacknowledged for %(minutes)s min", minutes=format_number(escalate_after_min, 0, language))
        detail = crossed
    else:
        headline = _("Alarm raised")
        detail = crossed
    severity = catalog.gettext(SEVERITY_LABELS[row.severity]) if row.severity in SEVERITY_LABELS else row.severity
    state = catalog.gettext(STATE_LABELS[row.state]) if row.state in STATE_LABELS else row.state
    # One line: a label or measure with a line break in it must not make the Subject header invalid.
    # (The no-break spaces of French numbers, "4 612,5", stay.)
    subject = _BREAKS.sub(" ", _("[%(severity)s] %(headline)s: %(source)s — %(detail)s (%(state)s)",
                                 severity=severity.upper(), headline=headline, source=source, detail=detail,
                                 state=state)).strip()

    def when(ts: datetime) -> str:
        return format_time(ts, zone, language, seconds=True)

    width = max(len(catalog.gettext(label)) for label in BODY_LABELS) + 1

    def field_line(label: str, value: str) -> str:
        return f"{catalog.gettext(label):<{width}}{value}"

    bound = _("%(limit)s (high)", limit=limit) if row.bound == "high" else _("%(limit)s (low)", limit=limit)
    lines = [
        _("%(headline)s: %(source)s", headline=headline, source=source),
        "",
        field_line(N_("Measure:"), what),
        field_line(N_("Value:"), _("%(value)s (raised), latest %(latest)s", value=amount(row.value),
                                   latest=amount(row.last_value))),
        field_line(N_("Limit:"), bound),
        field_line(N_("Severity:"), severity),
        field_line(N_("State:"), state),
        field_line(N_("Raised:"), when(row.raised_at)),
    ]
    if row.cleared_at is not None:
        lines.append(field_line(N_("Cleared:"), when(row.cleared_at)))
    if row.acknowledged_at is not None:
        lines.append(field_line(N_("Acknowledged:"), _("%(when)s by %(user)s", when=when(row.acknowledged_at),
                                                        user=row.acknowledged_by)))
    else:
        lines.append(field_line(N_("Acknowledged:"), _("not yet")))
    if row.detail:
        lines.append(field_line(N_("Detail:"), row.detail))  # the system's own words (the bridge's English)
    if dashboard_url:
        lines += ["", field_line(N_("Dashboard:"), f"{dashboard_url}/alarms")]
    lines += ["", "-- " + _("sent by the plant's notifier (route %(route)s, notification %(id)s)",
                            route=repr(route_name), id=notification_id)]
    payload = {"event": event, "alarm": fields, "sent_at": format_ts(now), "route": route_name,
               "notification_id": notification_id}
    if dashboard_url:
        payload["dashboard_url"] = f"{dashboard_url}/alarms"
    return Content(subject, "\n".join(lines) + "\n", payload)


def _source_label(fields: dict[str, Any], source: str, _: Any) -> str:
    """``unit 3 automate 7`` / ``meter shellypro1pm-…`` in the mail's language (the API's ``label``
    is the English one); a source of another kind as it is written."""
    parts = source.split("/")
    if len(parts) == 4 and parts[0] == "units" and parts[2] == "automates":
        return str(_("unit %(unit)s automate %(automate)s", unit=fields.get("unit", parts[1]),
                     automate=fields.get("automate", parts[3])))
    if len(parts) >= 2 and parts[0] == "meters":
        return str(_("meter %(meter)s", meter=fields.get("meter", "/".join(parts[1:]))))
    return str(fields.get("label") or source)


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
