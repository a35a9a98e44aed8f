"""Render our ``mosquitto.conf`` for a local broker: only the listeners, the file paths and the
``user`` change; every other directive (security, queues, persistence) is kept as written.

The template has two listeners: plain MQTT on loopback, then TLS. Without TLS the plain one takes
the address asked for and the TLS one is left out; with TLS the plain one stays on loopback (for
processes on the broker's own host) and only the TLS one listens on that address.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from plantmodel.errors import ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONF = REPO_ROOT / "mosquitto.conf"
LOOPBACK = "127.0.0.1"

# Directives the renderer replaces; anything else passes through untouched.
REPLACED = ("listener", "password_file", "acl_file", "persistence_location", "user", "pid_file",
            "cafile", "certfile", "keyfile")
# Options of the TLS listener: left out with it when TLS is off.
TLS_OPTIONS = ("cafile", "capath", "certfile", "keyfile", "tls_version", "ciphers", "ciphers_tls1.3",
               "require_certificate", "use_identity_as_username", "crlfile", "dhparamfile")


@dataclass(frozen=True, slots=True)
class TlsListener:
    port: int
    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True, slots=True)
class LocalBroker:
    port: int
    bind: str
    passwd: Path
    acl: Path
    data_dir: Path
    tls: TlsListener | None = None


def directives(text: str) -> list[tuple[str, str]]:
    """(name, value) of every directive line, comments and blanks skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            out.append((name, value.strip()))
    return out


def render(template: str, local: LocalBroker) -> str:
    if [n for n, _ in directives(template)].count("listener") > 2:
        raise ValidationError("the template may have two listeners: plain MQTT, then TLS")
    tls = local.tls
    lines = [
        "# Rendered from mosquitto.conf by `python -m broker`; edit that file instead.",
        # Mosquitto started as root switches to the `mosquitto` user, which could not read files
        # we own: run as whoever started it.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
    ]
    listeners = 0
    for raw in template.splitlines():
        name = raw.strip().partition(" ")[0]
        in_tls = listeners == 2
        if in_tls and tls is None and (name in TLS_OPTIONS or name == "listener"):
            continue
        if name == "listener":
            listeners += 1
            if listeners == 1:
                lines.append(f"listener {local.port} {LOOPBACK if tls else local.bind}")
            elif tls is not None:
                lines.append(f"listener {tls.port} {local.bind}")
            continue
        if name in REPLACED:
            value = {
                "password_file": local.passwd,
                "acl_file": local.acl,
                "persistence_location": f"{local.data_dir}/",
                "cafile": tls.ca_cert if tls else None,
                "certfile": tls.server_cert if tls else None,
                "keyfile": tls.server_key if tls else None,
            }.get(name)
            if value is not None:
                lines.append(f"{name} {value}")
            continue
        lines.append(raw)
    return "\n".join(lines) + "\n"
