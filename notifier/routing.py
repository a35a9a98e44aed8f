"""Who is told about which alarm transition, and when to try again (pure logic, no I/O).

A route (``notification_routes``) takes alarms of at least ``min_severity`` whose source lies within
its ``scope``. A plain route gets the events it lists (``raise``, ``clear``); an escalation route
(``escalate_after_min`` set) gets only ``escalate``: the alarm is still unacknowledged that many
minutes after it was raised.

History is never notified: an event is due for a route only if it happened after the route was
last saved (``updated_at``: a new or re-enabled route does not replay the past) and within the
horizon (a notifier that was down for a day does not send a day of stale mail when it comes back).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from plantmodel.errors import ValidationError
from plantmodel.i18n import N_
from plantmodel.thresholds import DEFAULT_SCOPE, SEVERITIES, check_scope

CHANNELS = ("email", "webhook")
PLAIN_EVENTS = ("raise", "clear")
ESCALATE = "escalate"
EVENTS = (*PLAIN_EVENTS, ESCALATE)
ESCALATE_MAX_MIN = 7 * 24 * 60  # a week: longer is a typo, and would keep every alarm in the poll

# Deliberately simple: one @, no spaces or commas, a dot in the domain. The SMTP server is the judge
# of the rest; this only catches what a typo in a form produces.
_EMAIL = re.compile(r"[^@\s,;<>\"']{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z0-9-]{1,63}")
TARGET_MAX = 1024  # notification_routes.target
NAME_MAX = 64


def severity_rank(severity: str) -> int:
    """info 0 < warning 1 < critical 2; an unknown severity (a newer bridge's) ranks as critical,
    so that it is told rather than silently dropped."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


def in_scope(scope: str, source: str) -> bool:
    """``units/3`` holds ``units/3/automates/7`` (and ``units/3`` itself), not ``units/30``."""
    return scope == DEFAULT_SCOPE or source == scope or source.startswith(scope + "/")


# -- validation (shared by the API and the first set-up from the environment) -----------------------
# The reasons are English (``reason``, logs, the environment's errors) and marked N_(): the API answers
# them in the admin's language (``ValidationError.translated``).

def check_email_list(target: str) -> str:
    """Comma-separated addresses, normalised to ``a@x.fr,b@y.fr``."""
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    if not addresses:
        raise ValidationError(N_("give at least one e-mail address"))
    for a in addresses:
        if not _EMAIL.fullmatch(a):
            raise ValidationError(N_("%(address)s is not an e-mail address"), address=repr(a))
    out = ",".join(addresses)
    if len(out) > TARGET_MAX:
        raise ValidationError(N_("the addresses are longer than %(max)s characters"), max=TARGET_MAX)
    return out


def check_url(target: str) -> str:
    target = target.strip()
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(N_("%(url)s is not an http(s) URL"), url=repr(target))
    if any(c.isspace() for c in target) or len(target) > TARGET_MAX:
        raise ValidationError(N_("the URL has spaces or is longer than %(max)s characters"), max=TARGET_MAX)
    return target


def masked_url(url: str) -> str:
    """A webhook URL as it may be logged or audited: ``https://hooks.slack.com/… sha256:1a2b3c4d5e6f``.

    Slack, Teams and most webhook services put the secret in the path (or the query, or a log-in in
    the URL): only the scheme, host and port are shown, plus a short SHA-256 of the whole URL, so that
    a change of URL still shows as a change. The admins see the full URL in the routes API."""
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a malformed port or host: show nothing of it
        host, port = None, None
    if not host or parts.scheme not in ("http", "https"):
        return f"(URL) sha256:{digest}"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}/… sha256:{digest}"


def masked_target(channel: str, target: str) -> str:
    """A route's target for logs and the audit trail: a webhook URL masked, e-mail addresses as they are."""
    return target if channel == "email" else masked_url(target)


def check_target(channel: str, target: str) -> str:
    if channel not in CHANNELS:
        raise ValidationError(N_("channel %(channel)s must be one of %(allowed)s"), channel=repr(channel),
                              allowed=", ".join(CHANNELS))
    return check_email_list(target) if channel == "email" else check_url(target)


def check_severity(severity: str) -> str:
    if severity not in SEVERITIES:
        raise ValidationError(N_("severity %(severity)s must be one of %(allowed)s"), severity=repr(severity),
                              allowed=", ".join(SEVERITIES))
    return severity


def check_route_scope(scope: str) -> str:
    return check_scope(scope)


def check_events(events: Iterable[str], escalate_after_min: int | None) -> str:
    """The stored form (``raise,clear``; ``escalate`` for an escalation route)."""
    given = list(events)
    if escalate_after_min is not None:
        if not 1 <= escalate_after_min <= ESCALATE_MAX_MIN:
            raise ValidationError(N_("escalate_after_min must be within 1..%(max)s"), max=ESCALATE_MAX_MIN)
        if given and given != [ESCALATE]:
            raise ValidationError(N_("an escalation route (escalate_after_min set) gets only 'escalate' events"))
        return ESCALATE
    unknown = [e for e in given if e not in PLAIN_EVENTS]
    if unknown:
        raise ValidationError(N_("event %(event)s must be one of %(allowed)s (escalate: set escalate_after_min)"),
                              event=repr(unknown[0]), allowed=", ".join(PLAIN_EVENTS))
    if not given:
        raise ValidationError(N_("give at least one event (raise, clear)"))
    return ",".join(e for e in PLAIN_EVENTS if e in given)  # fixed order, no repeats


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise ValidationError(N_("name must be 1..%(max)s printable characters"), max=NAME_MAX)
    return name


# -- routing ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Route:
    id: int
    channel: str
    target: str
    min_severity: str
    scope: str
    events: tuple[str, ...]
    escalate_after: timedelta | None  # None: not an escalation route
    since: datetime  # the route's updated_at: nothing before it is notified

    def takes(self, severity: str, source: str) -> bool:
        return severity_rank(severity) >= severity_rank(self.min_severity) and in_scope(self.scope, source)


@dataclass(frozen=True, slots=True)
class AlarmFacts:
    """What routing needs of an alarm row."""

    id: int
    source: str
    severity: str
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None


def due_events(alarm: AlarmFacts, routes: Sequence[Route], now: datetime,
               horizon: timedelta) -> list[tuple[int, str, datetime]]:
    """``(route id, event, when it happened)`` for every notification this alarm calls for now.
    Idempotent: the caller inserts them into the outbox, whose unique key keeps one of each."""
    oldest = now - horizon
    out: list[tuple[int, str, datetime]] = []
    for route in routes:
        if not route.takes(alarm.severity, alarm.source):
            continue
        happened: list[tuple[str, datetime]] = []
        if route.escalate_after is not None:
            deadline = alarm.raised_at + route.escalate_after
            if alarm.acknowledged_at is None and deadline <= now:
                happened.append((ESCALATE, deadline))
        else:
            if "raise" in route.events:
                happened.append(("raise", alarm.raised_at))
            if "clear" in route.events and alarm.cleared_at is not None:
                happened.append(("clear", alarm.cleared_at))
        out.extend((route.id, event, at) for event, at in happened if at >= route.since and at >= oldest)
    return out


def backoff(attempts: int, base: float, maximum: float) -> float:
    """Seconds before try number ``attempts + 1``: base, 2·base, 4·base … capped at ``maximum``."""
    return float(min(maximum, base * 2 ** max(0, attempts - 1)))
