"""The notifier's pure logic: which route is told what, when history is skipped, the back-off, and
the settings it reads from the environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.routing import (
    AlarmFacts,
    Route,
    backoff,
    check_events,
    due_events,
    in_scope,
    masked_target,
    masked_url,
    severity_rank,
)
from notifier.settings import NotifierSettings
from plantmodel.errors import ValidationError

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def route(rid: int = 1, *, severity: str = "warning", scope: str = "*", events: tuple[str, ...] = ("raise", "clear"),
          escalate: timedelta | None = None, since: datetime = T0 - HOUR) -> Route:
    return Route(rid, "webhook", "https://h.example", severity, scope, events, escalate, since)


def alarm(*, source: str = "units/3/automates/7", severity: str = "critical", raised: datetime = T0,
          cleared: datetime | None = None, acked: datetime | None = None) -> AlarmFacts:
    return AlarmFacts(1, source, severity, raised, cleared, acked)


def test_scope() -> None:
    assert in_scope("*", "meters/x")
    assert in_scope("units/3", "units/3/automates/7") and in_scope("units/3/automates/7", "units/3/automates/7")
    assert not in_scope("units/3", "units/30/automates/1") and not in_scope("units/2", "units/3/automates/7")
    assert not in_scope("units/3/automates/7", "units/3/automates/70")


def test_severity() -> None:
    assert severity_rank("info") < severity_rank("warning") < severity_rank("critical")
    assert severity_rank("unheard-of") == severity_rank("critical")  # told rather than dropped
    assert due_events(alarm(severity="warning"), [route(severity="critical")], T0, HOUR) == []
    assert due_events(alarm(severity="critical"), [route(severity="warning")], T0, HOUR) == [(1, "raise", T0)]


def test_raise_and_clear_follow_the_routes_events() -> None:
    a = alarm(cleared=T0 + timedelta(minutes=5))
    now = T0 + timedelta(minutes=6)
    assert [e for _, e, _ in due_events(a, [route()], now, HOUR)] == ["raise", "clear"]
    assert [e for _, e, _ in due_events(a, [route(events=("clear",))], now, HOUR)] == ["clear"]


def test_history_is_skipped() -> None:
    # Before the route was saved: not told; its clear, later, is.
    a = alarm(raised=T0 - timedelta(minutes=1), cleared=T0 + timedelta(minutes=1))
    assert due_events(a, [route(since=T0)], T0 + timedelta(minutes=2), HOUR) == [
        (1, "clear", T0 + timedelta(minutes=1))]
    # Past the horizon (a notifier down for a day): not told.
    assert due_events(alarm(), [route()], T0 + 2 * HOUR, HOUR) == []


def test_escalation() -> None:
    esc = route(2, events=("escalate",), escalate=timedelta(minutes=30))
    assert due_events(alarm(), [esc], T0 + timedelta(minutes=29), HOUR) == []
    assert due_events(alarm(), [esc], T0 + timedelta(minutes=30), HOUR) == [(2, "escalate", T0 + timedelta(minutes=30))]
    # Cleared but never acknowledged: still escalated (nobody looked at it).
    assert due_events(alarm(cleared=T0 + timedelta(minutes=1)), [esc], T0 + timedelta(minutes=31), HOUR)
    assert due_events(alarm(acked=T0 + timedelta(minutes=10)), [esc], T0 + timedelta(minutes=31), HOUR) == []


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n, 30, 200) for n in (1, 2, 3, 4, 5)] == [30, 60, 120, 200, 200]


def test_events_validation() -> None:
    assert check_events(["clear", "raise", "clear"], None) == "raise,clear"
    assert check_events([], 15) == "escalate"
    with pytest.raises(ValidationError):
        check_events(["escalate"], None)
    with pytest.raises(ValidationError):
        check_events(["raise"], 15)


def test_settings_from_env() -> None:
    s = NotifierSettings.from_env({"NOTIFY_SMTP_HOST": "mail", "NOTIFY_SMTP_SECURITY": "ssl",
                                   "NOTIFY_EMAIL_TO": "a@example.com", "PLANT_TZ": "Europe/Paris"})
    assert s.smtp.port == 465 and s.first_routes.email_to == "a@example.com" and s.poll == 5.0
    for bad in ({"NOTIFY_SMTP_SECURITY": "tls"}, {"NOTIFY_WEBHOOK_URL": "mailto:x"}, {"NOTIFY_MIN_SEVERITY": "x"},
                {"NOTIFY_POLL_S": "0"}, {"NOTIFY_DASHBOARD_URL": "plant"}):
        with pytest.raises(ValidationError):
            NotifierSettings.from_env(bad)


def test_default_retries_outlast_a_night_long_outage() -> None:
    """An SMTP server down overnight (12 h) must not turn a critical mail into ``failed``: the waits
    between the default number of tries add up to at least 12 h."""
    for s in (NotifierSettings(), NotifierSettings.from_env({})):
        waits = sum(backoff(n, s.retry_base, s.retry_max) for n in range(1, s.max_attempts))
        assert waits >= 12 * 3600, (s.max_attempts, waits / 3600)
        assert s.retry_base == 30 and s.retry_max == 3600  # the first retries stay quick


def test_webhook_urls_are_masked_for_logs_and_audit() -> None:
    slack = "https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX"
    masked = masked_url(slack)
    assert masked.startswith("https://hooks.slack.com/… sha256:") and "secret" not in masked
    assert masked == masked_url(slack)  # stable: the same URL reads the same in every entry
    assert masked_url(slack + "x") != masked  # a changed secret is still visible as a change
    with_login = masked_url("http://bob:pa55word@alerts.example:8443/hook?token=t0ken")
    assert with_login.startswith("http://alerts.example:8443/… sha256:")
    assert not any(s in with_login for s in ("bob", "pa55word", "hook", "t0ken"))
    assert masked_url("http://[fd00::1]:8080/x").startswith("http://[fd00::1]:8080/… sha256:")
    assert "not-a-url" not in masked_url("not-a-url")
    assert masked_target("email", "a@example.com,b@example.com") == "a@example.com,b@example.com"
    assert masked_target("webhook", slack) == masked
