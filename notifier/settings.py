"""The notifier's configuration, read from the environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from notifier.routing import check_email_list, check_severity, check_url
from plantmodel.envconf import env_float, env_int, env_str
from plantmodel.errors import ValidationError
from plantmodel.i18n import DEFAULT_LANGUAGE, language_from_env
from plantmodel.placeholders import refuse_placeholder
from plantmodel.thresholds import SEVERITIES
from plantmodel.timezone import server_zone_name, zone_from_env
from store.db import DEFAULT_SQLITE_PATH, database_url_from_env


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = ""  # empty: no e-mail (e-mail notifications fail with that reason, and are retried)
    port: int = 25
    user: str = ""
    password: str = ""
    sender: str = "plant-notifier@localhost"
    security: str = "none"  # none | starttls | ssl
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class FirstRoutes:
    """Routes created from the environment when the routes table is empty at start."""

    email_to: str = ""
    webhook_url: str = ""
    escalate_email_to: str = ""
    escalate_after_min: int = 30
    min_severity: str = "warning"


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    poll: float = 5.0  # s between two looks at the alarms table (and the outbox)
    horizon_min: float = 60.0  # events older than this are never notified (history, long outages)
    # 20 tries: 30 s, 60 s … 32 min, then hourly: about 13 h of waits, so that an SMTP server down
    # overnight delays the critical mails instead of marking them failed (tests/unit: >= 12 h).
    max_attempts: int = 20
    retry_base: float = 30.0  # s before the 2nd try; doubled each time up to retry_max
    retry_max: float = 3600.0
    webhook_timeout: float = 10.0
    # Seconds in one "minute" of escalate_after_min: 60 in production; tests shorten it.
    escalate_unit_s: float = 60.0
    dashboard_url: str = ""  # e.g. https://plant.example.com: links in mails
    plant_tz: str = field(default_factory=server_zone_name)
    # The language of mail subjects and bodies (PLANT_LANGUAGE: fr | en); the webhook's JSON is codes.
    language: str = DEFAULT_LANGUAGE
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    first_routes: FirstRoutes = field(default_factory=FirstRoutes)
    stats_every: float = 300.0  # s between two counter lines in the log (0: none)
    # Where each poll writes the notifier's own health (``python -m notifier health`` reads it; a
    # compose health check). Empty: none.
    health_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifierSettings:
        security = env_str(env, "NOTIFY_SMTP_SECURITY", "none").lower()
        if security not in ("none", "starttls", "ssl"):
            raise ValidationError(f"NOTIFY_SMTP_SECURITY={security!r}: use none, starttls or ssl")
        password = env.get("NOTIFY_SMTP_PASSWORD", "")
        if password:
            refuse_placeholder("NOTIFY_SMTP_PASSWORD", password, "set the SMTP account's real password")
        dashboard = env_str(env, "NOTIFY_DASHBOARD_URL", "").rstrip("/")
        if dashboard:
            _named("NOTIFY_DASHBOARD_URL", check_url, dashboard)
        return cls(
            database_url=database_url_from_env(env),
            poll=env_float(env, "NOTIFY_POLL_S", 5.0, minimum=0.05),
            health_file=env_str(env, "NOTIFY_HEALTH_FILE", ""),
            horizon_min=env_float(env, "NOTIFY_HORIZON_MIN", 60.0, minimum=1.0),
            max_attempts=env_int(env, "NOTIFY_MAX_ATTEMPTS", 20, minimum=1),
            retry_base=env_float(env, "NOTIFY_RETRY_BASE_S", 30.0, minimum=0.01),
            retry_max=env_float(env, "NOTIFY_RETRY_MAX_S", 3600.0, minimum=0.01),
            webhook_timeout=env_float(env, "NOTIFY_WEBHOOK_TIMEOUT_S", 10.0, minimum=0.1),
            escalate_unit_s=env_float(env, "NOTIFY_ESCALATE_UNIT_S", 60.0, minimum=0.01),
            dashboard_url=dashboard,
            plant_tz=zone_from_env(env),
            language=language_from_env(env),
            smtp=SmtpSettings(
                host=env_str(env, "NOTIFY_SMTP_HOST", ""),
                port=env_int(env, "NOTIFY_SMTP_PORT", 465 if security == "ssl" else 25, minimum=1),
                user=env_str(env, "NOTIFY_SMTP_USER", ""),
                password=password,
                sender=_named("NOTIFY_SMTP_FROM", check_email_list,
                              env_str(env, "NOTIFY_SMTP_FROM", "plant-notifier@localhost.localdomain")),
                security=security,
                timeout=env_float(env, "NOTIFY_SMTP_TIMEOUT_S", 10.0, minimum=0.1),
            ),
            first_routes=FirstRoutes(
                email_to=_named("NOTIFY_EMAIL_TO", check_email_list, env_str(env, "NOTIFY_EMAIL_TO", ""), True),
                webhook_url=_named("NOTIFY_WEBHOOK_URL", check_url, env_str(env, "NOTIFY_WEBHOOK_URL", ""), True),
                escalate_email_to=_named("NOTIFY_ESCALATE_EMAIL_TO", check_email_list,
                                         env_str(env, "NOTIFY_ESCALATE_EMAIL_TO", ""), True),
                escalate_after_min=env_int(env, "NOTIFY_ESCALATE_AFTER_MIN", 30, minimum=1),
                min_severity=_named("NOTIFY_MIN_SEVERITY", check_severity,
                                    env_str(env, "NOTIFY_MIN_SEVERITY", "warning")),
            ),
            stats_every=env_float(env, "NOTIFY_STATS_S", 300.0),
        )


def _named(name: str, check: object, value: str, optional: bool = False) -> str:
    """``check(value)`` with the variable's name in its error."""
    if optional and not value:
        return value
    try:
        return check(value)  # type: ignore[operator,no-any-return]
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.reason}") from None


__all__ = ["SEVERITIES", "FirstRoutes", "NotifierSettings", "SmtpSettings"]
