"""The web UI's configuration, read from the environment in one place."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from plantmodel.envconf import env_float, env_int, env_str
from plantmodel.errors import ValidationError
from plantmodel.i18n import DEFAULT_LANGUAGE, language_from_env
from plantmodel.mqtt import MqttSettings
from plantmodel.placeholders import refuse_placeholder
from plantmodel.timezone import server_zone_name, zone_from_env
from plantmodel.topics import Topics
from store.claim import claim_candidates
from store.db import DEFAULT_SQLITE_PATH, database_url_from_env

DEFAULT_PDF_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian's fonts-dejavu-core


@dataclass(frozen=True, slots=True)
class WebSettings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    mqtt: MqttSettings = field(default_factory=lambda: MqttSettings(username="webui"))
    topic_root: str = "plant"
    host: str = "127.0.0.1"
    port: int = 8080
    # Signs the session cookies. Random per start by default (everyone logs in again after a
    # restart); set SECRET_KEY so logins survive restarts and several web UIs share them.
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Expected seconds between two reports: a source with nothing for 3 periods shows as stale.
    report_period: float = 60.0
    meter_period: float = 60.0  # a Shelly sends on change, and its energy counter every minute
    # Live pushes are coalesced per room and sent at most this often (seconds); alarms go at once.
    push_interval: float = 0.5
    https: bool = False  # served over HTTPS (a TLS proxy): Secure session cookie and HSTS
    # Proxies in front (nginx: 1) whose X-Forwarded-For/-Proto/-Host are believed: the client's real
    # address (log-in limits, audit) and scheme (Socket.IO's same-origin check). 0: none, headers ignored.
    trusted_proxies: int = 0
    # WEBUI_CLAIM_USER=1: (user, password) of each web UI user of the credentials file; the process
    # claims a free one (store/claim.py; several web UIs behind nginx, compose's --scale webui=N).
    claim_from: tuple[tuple[str, str], ...] = ()
    # Failed log-ins allowed per user name and per address before a lock-out (limits syntax).
    login_limit_user: str = "5 per 15 minutes"
    login_limit_address: str = "20 per 15 minutes"
    # Remote switching: how long a switch request waits for the meter's answer (seconds).
    switch_timeout: float = 5.0
    # The plant's IANA time zone: pages, reports and the spreadsheet CSV show times in it.
    plant_tz: str = field(default_factory=server_zone_name)
    # Pages for a user without a preference whose browser asks for none of ours; reports made
    # without a request. fr or en (plantmodel.i18n.LANGUAGES).
    plant_language: str = DEFAULT_LANGUAGE
    # The shift report PDF's fonts (any Unicode they cover prints as written); bold "" = beside it.
    pdf_font: str = DEFAULT_PDF_FONT
    pdf_font_bold: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebSettings:
        """``DATABASE_URL``, ``MQTT_*`` (user ``webui`` by default), ``PLANT_TOPIC_ROOT``,
        ``WEBUI_HOST``, ``WEBUI_PORT``, ``SECRET_KEY``, ``WEBUI_REPORT_PERIOD``, ``WEBUI_METER_PERIOD``,
        ``WEBUI_PUSH_INTERVAL``, ``WEBUI_TRUSTED_PROXIES`` (0), ``WEBUI_CLAIM_USER`` (0; 1 = take a free web
        UI user of ``MQTT_CREDENTIALS_FILE``, MariaDB only),
        ``WEBUI_SWITCH_TIMEOUT`` (5 s: a remote switch without the
        meter's answer by then is reported as timed out), ``PLANT_TZ`` (default: the server's zone),
        ``PLANT_LANGUAGE`` (``fr`` by default, or ``en``),
        ``WEBUI_PDF_FONT`` and ``WEBUI_PDF_FONT_BOLD``."""
        root = env_str(env, "PLANT_TOPIC_ROOT", "plant")
        Topics(root)  # fail at start-up, not on the first message, when the root is invalid
        secret = env_str(env, "SECRET_KEY", "")
        https = env_str(env, "WEBUI_HTTPS", "0").lower()
        if https not in ("0", "1", "true", "false", "yes", "no"):
            raise ValidationError(f"WEBUI_HTTPS={https!r}: use 1 or 0")
        return cls(
            database_url=database_url_from_env(env),
            mqtt=MqttSettings.from_env(env, default_user="webui"),
            topic_root=root,
            host=env_str(env, "WEBUI_HOST", "127.0.0.1"),
            port=env_int(env, "WEBUI_PORT", 8080, minimum=1),
            secret_key=secret or secrets.token_hex(32),
            report_period=env_float(env, "WEBUI_REPORT_PERIOD", 60.0, minimum=0.01),
            meter_period=env_float(env, "WEBUI_METER_PERIOD", 60.0, minimum=0.01),
            push_interval=env_float(env, "WEBUI_PUSH_INTERVAL", 0.5, minimum=0.0),
            https=https in ("1", "true", "yes"),
            trusted_proxies=env_int(env, "WEBUI_TRUSTED_PROXIES", 0, minimum=0),
            claim_from=claim_candidates(env, "WEBUI_CLAIM_USER", "webui"),
            login_limit_user=check_limit(env_str(env, "WEBUI_LOGIN_LIMIT_USER", "5 per 15 minutes")),
            login_limit_address=check_limit(env_str(env, "WEBUI_LOGIN_LIMIT_ADDRESS", "20 per 15 minutes")),
            switch_timeout=check_switch_timeout(env_float(env, "WEBUI_SWITCH_TIMEOUT", 5.0, minimum=0.1)),
            plant_tz=zone_from_env(env),
            plant_language=language_from_env(env),
            pdf_font=env_str(env, "WEBUI_PDF_FONT", DEFAULT_PDF_FONT),
            pdf_font_bold=env_str(env, "WEBUI_PDF_FONT_BOLD", ""),
        )


SWITCH_TIMEOUT_MAX = 60.0  # a request thread (and the operator) waits this long at most


def check_switch_timeout(seconds: float) -> float:
    if not seconds <= SWITCH_TIMEOUT_MAX:
        raise ValidationError(f"WEBUI_SWITCH_TIMEOUT={seconds:g} must be <= {SWITCH_TIMEOUT_MAX:g} s")
    return seconds


def check_limit(text: str) -> str:
    """A rate limit such as ``5 per 15 minutes`` (checked at start, not at the first log-in)."""
    from limits import parse_many  # Flask-Limiter's parser

    try:
        parse_many(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a rate limit like '5 per 15 minutes'") from None
    return text


SECRET_KEY_MIN = 32


def check_secret_key(secret: str) -> str:
    """The key that signs session cookies: whoever knows it can forge any log-in, so a missing,
    placeholder or short one is refused (``python -m stack`` keeps a generated one)."""
    hint = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
    if not secret:
        raise ValidationError(f"SECRET_KEY is not set ({hint})")
    refuse_placeholder("SECRET_KEY", secret, hint)
    if len(secret) < SECRET_KEY_MIN or len(set(secret)) < 8:
        raise ValidationError(f"SECRET_KEY is too short or too simple: at least {SECRET_KEY_MIN} random "
                              f"characters ({hint})")
    return secret
