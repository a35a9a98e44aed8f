"""A service's own health: whether what it depends on answers, in one small value object.

Each service builds one :class:`ServiceHealth` from its checks (the bridge: broker connected,
database reachable, ingest lag; the web UI: broker, database; the notifier: database, last poll)
and reports it where its operators and orchestrator look: a ``/healthz`` endpoint or a
``health`` command (compose health checks), and for the bridges a retained MQTT message the web
UI's services page reads. One vocabulary for all: a check is ``ok`` True, False (known to be
failing), or None (not known yet, e.g. just started), with a short reason.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object
from plantmodel.readings import format_ts, parse_ts

log = logging.getLogger(__name__)

SERVICES = ("bridge", "webui", "notifier")


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency: ``ok`` True / False / None (unknown), and why when it is not True."""

    ok: bool | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """What one service instance says of itself at ``ts``.

    ``checks``: dependency name -> :class:`Check`. ``values``: figures worth watching (seconds of
    ingest lag, age of the last commit, queue depth); None when there is nothing to measure yet.
    Healthy when no check is known to fail.
    """

    service: str
    instance: str
    ts: datetime
    checks: Mapping[str, Check]
    values: Mapping[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValidationError(f"field 'service' must be one of {SERVICES}, got {self.service!r}")
        if not self.instance or len(self.instance) > 64:
            raise ValidationError("field 'instance' must be 1 to 64 characters")

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks.values())

    @property
    def problems(self) -> list[str]:
        """``"name: detail"`` of each failing check."""
        return [f"{name}: {c.detail}" if c.detail else name for name, c in self.checks.items() if c.ok is False]

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "instance": self.instance, "ts": format_ts(self.ts), "ok": self.ok,
                "checks": {k: c.to_dict() for k, c in self.checks.items()}, "values": dict(self.values)}

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls, payload: bytes | str) -> ServiceHealth:
        data = loads_object(payload, "health")
        try:
            checks = {str(k): Check(_tristate(v.get("ok")), str(v.get("detail", ""))[:500])
                      for k, v in dict(data["checks"]).items()}
            values = {str(k): _number(v) for k, v in dict(data.get("values") or {}).items()}
            return cls(str(data["service"]), str(data["instance"]), parse_ts(str(data["ts"])), checks, values)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValidationError(f"not a service health report: {exc}") from None


def _tristate(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"check 'ok' must be true, false or null, got {value!r}")


def _number(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"a value must be a finite number or null, got {value!r}")
    return float(value)


def health_app(report: Callable[[], ServiceHealth],
               fallback: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]] | None = None,
               ) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI app answering ``GET /healthz`` with ``report()`` as JSON: 200 when healthy, 503 when
    not (what compose and load balancers read); any other path goes to ``fallback`` (the metrics)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") != "/healthz" and fallback is not None:
            return fallback(environ, start_response)
        try:
            health = report()
            body, status = health.to_json().encode(), "200 OK" if health.ok else "503 Service Unavailable"
        except Exception:  # the endpoint must answer even when our own check has a bug
            log.exception("health report failed")
            body = json.dumps({"ok": False, "error": "health report failed"}).encode()
            status = "500 Internal Server Error"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [body]

    return app


def probe(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """``python -m <service> health``: GET a ``/healthz``; (exit code, text to print). 0 healthy,
    1 unhealthy or unreachable (what a compose health check wants)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 0, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return 1, exc.read().decode("utf-8", "replace") or f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return 1, f"unhealthy: {url} unreachable: {getattr(exc, 'reason', exc)}"
