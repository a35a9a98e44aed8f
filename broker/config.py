"""Render our ``mosquitto.conf`` for a local broker: only the listener, the file paths and the
``user`` change; every other directive (security, queues, persistence) is kept as written."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONF = REPO_ROOT / "mosquitto.conf"

# Directives the renderer replaces; anything else passes through untouched.
REPLACED = ("listener", "password_file", "acl_file", "persistence_location", "user", "pid_file")


@dataclass(frozen=True, slots=True)
class LocalBroker:
    port: int
    bind: str
    passwd: Path
    acl: Path
    data_dir: Path


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
    lines = [
        "# Rendered from mosquitto.conf by `python -m broker`; edit that file instead.",
        # Mosquitto started as root switches to the `mosquitto` user, which could not read files
        # we own: run as whoever started it.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
    ]
    for raw in template.splitlines():
        name = raw.strip().partition(" ")[0]
        if name in REPLACED:
            if name == "password_file":
                lines.append(f"password_file {local.passwd}")
            elif name == "acl_file":
                lines.append(f"acl_file {local.acl}")
            elif name == "persistence_location":
                lines.append(f"persistence_location {local.data_dir}/")
            elif name == "listener":
                lines.append(f"listener {local.port} {local.bind}")
            continue
        lines.append(raw)
    return "\n".join(lines) + "\n"
