"""Credentials for every MQTT client of the plant, the Mosquitto password file and the ACL.

Secrets go to a git-ignored folder (default ``var/secrets``). Running the generator again keeps
existing passwords and adds users for new units or meters, so a running plant is not locked out.

The broker uses the user name as the client id (``use_username_as_clientid`` in mosquitto.conf),
so a user has at most one connection: every service *instance* needs a user of its own. Services
that may run several times (bridges, engineers' ``mosquitto_sub``) get numbered users with the same
ACL: ``bridge``, ``bridge-2``, ``bridge-3``... (see :class:`ServiceUsers`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from broker.files import Owner, private_dir, write_private
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import load_credentials
from plantmodel.topics import GEN1_COMMAND, Topics

BRIDGE_USER = "bridge"
WEBUI_USER = "webui"
DEBUG_USER = "debug"
MAX_INSTANCES = 999  # per numbered service; a sanity bound on a typo, not a broker limit
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes


def numbered_users(base: str, count: int) -> list[str]:
    """``base``, ``base-2``, ..., ``base-<count>``: the first keeps the plain name, so the default
    single instance needs no configuration."""
    return [base, *(f"{base}-{i}" for i in range(2, count + 1))]


@dataclass(frozen=True, slots=True)
class ServiceUsers:
    """How many users of each service role to generate (``BROKER_BRIDGES``, ``BROKER_WEBUIS``,
    ``BROKER_DEBUG_USERS``)."""

    bridges: int = 1
    debug: int = 1
    webuis: int = 1  # web UI processes behind nginx: each its own MQTT connection

    def __post_init__(self) -> None:
        for name, count in (("bridges", self.bridges), ("debug users", self.debug), ("web UIs", self.webuis)):
            if not 1 <= count <= MAX_INSTANCES:
                raise ValidationError(f"{name} must be 1..{MAX_INSTANCES}, got {count}")

    def bridge_users(self) -> list[str]:
        return numbered_users(BRIDGE_USER, self.bridges)

    def debug_users(self) -> list[str]:
        return numbered_users(DEBUG_USER, self.debug)

    def webui_users(self) -> list[str]:
        return numbered_users(WEBUI_USER, self.webuis)

    def all(self) -> list[str]:
        return [*self.bridge_users(), *self.webui_users(), *self.debug_users()]


@dataclass(frozen=True, slots=True)
class CredentialFiles:
    directory: Path

    @property
    def credentials(self) -> Path:
        return self.directory / "credentials.json"

    @property
    def passwd(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl(self) -> Path:
        return self.directory / "acl"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Mosquitto 2.0's ``$7$`` format (PBKDF2-SHA512), as ``mosquitto_passwd`` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def users_for(layout: PlantLayout, services: ServiceUsers | None = None) -> list[str]:
    services = services or ServiceUsers()
    users = [*services.all(), *(PlantLayout.unit_user(u) for u in range(1, layout.units + 1)), *layout.meters]
    # A meter id may be any Shelly prefix: one named like another user would share its password
    # entry and client id (and so kick it off the broker).
    clashes = sorted({u for u in users if users.count(u) > 1})
    if clashes:
        raise ValidationError(f"MQTT user names used twice: {', '.join(clashes)} (rename the meter prefix)")
    return users


# proxy: nginx in front of the web UI, which serves the same TLS certificate (no MQTT user).
ROLES = ("broker", "bridge", "webui", "devices", "debug", "proxy")
EXPORTED = ("passwd", "acl", "credentials.json", "ca.crt", "server.crt", "server.key")  # every file export writes
EXPORT_MARK = ".broker-export"  # written by export: a folder it may clean up


def role_users(role: str, layout: PlantLayout, services: ServiceUsers | None = None) -> list[str]:
    """The MQTT users one kind of container runs as: what it may know the passwords of."""
    services = services or ServiceUsers()
    match role:
        case "bridge":
            return services.bridge_users()
        case "webui":
            return services.webui_users()
        case "devices":
            return [*(PlantLayout.unit_user(u) for u in range(1, layout.units + 1)), *layout.meters]
        case "debug":
            return services.debug_users()
        case "proxy":
            return []
    raise ValidationError(f"unknown role {role!r}; one of {', '.join(ROLES)}")


def export(role: str, files: CredentialFiles, layout: PlantLayout, services: ServiceUsers | None,
           dest: Path, *, tls_dir: Path | None = None, owner: Owner | None = None) -> list[Path]:
    """Copy into ``dest`` only what one container needs, so that no service holds another's
    password: the broker gets the password hashes and the ACL (and the TLS certificate and key),
    a service its own users' passwords (and the CA certificate to verify the broker). ``owner``
    (uid, gid) hands the files to the container's user (needs root). Returns the files written."""
    texts: dict[str, bytes] = {}
    if role == "broker":
        texts["passwd"] = files.passwd.read_bytes()
        texts["acl"] = files.acl.read_bytes()
        tls_names: tuple[str, ...] = ("ca.crt", "server.crt", "server.key")
    elif role == "proxy":  # TLS for the dashboard; no password of anyone
        tls_names = ("ca.crt", "server.crt", "server.key")
    else:
        known = load_credentials(files.credentials)
        wanted = role_users(role, layout, services)
        missing = [u for u in wanted if u not in known]
        if missing:
            raise ValidationError(f"no password for {', '.join(missing)} in {files.credentials}: run "
                                  "`python -m broker credentials` with the same layout first")
        texts["credentials.json"] = (json.dumps({"users": {u: known[u] for u in wanted}}, indent=2) + "\n").encode()
        tls_names = ("ca.crt",)
    if tls_dir is not None:
        for name in tls_names:
            if (tls_dir / name).is_file():
                texts[name] = (tls_dir / name).read_bytes()
    _check_export_dest(dest, files, tls_dir)  # before anything is created, chmod-ed or chown-ed
    private_dir(dest, owner)
    _check_export_dest(dest, files, tls_dir)
    written = []
    for name, data in texts.items():
        path = dest / name
        write_private(path, data, 0o644 if name.endswith(".crt") else 0o600, owner)
        written.append(path)
    write_private(dest / EXPORT_MARK, f"{role}\n".encode(), 0o600, owner)
    # What an earlier export left and this role no longer holds (say, TLS files since removed).
    for name in set(EXPORTED) - set(texts):
        (dest / name).unlink(missing_ok=True)  # a link planted under that name goes, not its target
    return written


def _check_export_dest(dest: Path, files: CredentialFiles, tls_dir: Path | None) -> None:
    """Refuse a folder that holds secrets export did not write: the master credentials or the
    certificates (export cleans up after itself there, and would destroy them). Compared as
    files (device and inode), whatever path leads there."""
    for ours in (files.directory, *((tls_dir,) if tls_dir else ())):
        same = (os.path.samefile(dest, ours) if dest.exists() and ours.exists()
                else os.path.realpath(dest) == os.path.realpath(ours))  # `y/..` where y is still to make
        if same:
            raise ValidationError(f"{dest} is where the credentials or certificates themselves live: export "
                                  "into a folder of its own")
    if not (dest / EXPORT_MARK).exists() and any((dest / name).exists() for name in EXPORTED):
        raise ValidationError(f"{dest} holds secrets `python -m broker export` did not write (no {EXPORT_MARK}): "
                              "export into an empty folder or one it wrote")


def acl_text(layout: PlantLayout, topics: Topics, services: ServiceUsers | None = None) -> str:
    services = services or ServiceUsers()
    root = topics.root
    lines = ["# Generated by `python -m broker credentials`; regenerate rather than edit."]
    for bridge in services.bridge_users():
        lines += [
            "",
            "# bridge: reads everything; publishes alarms, its own status and health, confirmations to"
            " the units and Shelly RPC requests.",
            f"user {bridge}",
            "topic read #",
            f"topic write {root}/alarms/#",
            f"topic write {topics.bridge_status()}",
            f"topic write {topics.bridge_health(bridge)}",
            f"topic write {root}/confirm/#",
            "topic write +/rpc",
        ]
    for webui in services.webui_users():
        lines += [
            "",
            "# webui: reads the live topics and the bridges' status and health (its health badge, the",
            "# services page); publishes what legacy HTTP senders post (/collector/info, /webhook/) and",
            "# the operators' remote switching of the meters, nothing else.",
            f"user {webui}",
            *(f"topic read {t}" for t in topics.live_subscriptions()),
            f"topic read {topics.bridge_status()}",
            f"topic read {topics.bridge_health()}",
            f"topic readwrite {topics.webui_alarm_changes()}",
            *(f"topic write {t}" for t in topics.legacy_publications()),
            *(line for meter in layout.meters for line in (
                f"topic write {Topics.shelly(meter, 'rpc')}", f"topic write {Topics.gen1(meter, 'relay/0/command')}")),
        ]
    for debug in services.debug_users():
        lines += ["", "# debug: read-only access to everything, for mosquitto_sub.", f"user {debug}", "topic read #"]
    for unit in range(1, layout.units + 1):
        lines += ["", f"# production unit {unit}: its own subtree; it reads the bridge's confirmations to it.",
                  f"user {PlantLayout.unit_user(unit)}", f"topic write {topics.unit_prefix(unit)}",
                  f"topic read {topics.confirmation(unit)}"]
    for meter in layout.meters:
        lines += ["", "# Shelly meter: its own prefix only (Gen2: <id>/, Gen1: shellies/<id>/); it reads its RPC",
                  "# requests (Gen2), its relay commands and the Gen1 broadcast (announce).",
                  f"user {meter}", f"topic write {meter}/#", f"topic write {Topics.gen1(meter, '#')}",
                  f"topic read {Topics.shelly(meter, 'rpc')}", f"topic read {Topics.gen1(meter, 'relay/0/command')}",
                  f"topic read {GEN1_COMMAND}"]
    return "\n".join(lines) + "\n"


def generate(layout: PlantLayout, topics: Topics, files: CredentialFiles,
             services: ServiceUsers | None = None, *, rotate: Collection[str] = ()) -> tuple[dict[str, str], list[str]]:
    """Write credentials.json, passwd and acl; return (all users -> passwords, users added or
    given a new password). Users in ``rotate`` get a new password."""
    private_dir(files.directory)
    existing = load_credentials(files.credentials)  # one clear error for a garbled file
    wanted = users_for(layout, services)
    unknown = sorted(set(rotate) - set(wanted))
    if unknown:
        raise ValidationError(f"cannot rotate unknown MQTT users: {', '.join(unknown)}")
    users: dict[str, str] = {}
    added: list[str] = []
    for user in wanted:
        if user in existing and user not in rotate:
            users[user] = existing[user]
        else:
            users[user] = secrets.token_urlsafe(18)
            added.append(user)
    # Keep users of devices no longer configured out of the broker files, but not forgotten.
    retired = {u: p for u, p in existing.items() if u not in users}
    write_private(files.credentials, (json.dumps({"users": users, "retired": retired}, indent=2) + "\n").encode())
    write_private(files.passwd, "".join(f"{u}:{hash_password(p)}\n" for u, p in users.items()).encode())
    write_private(files.acl, acl_text(layout, topics, services).encode())
    return users, added
