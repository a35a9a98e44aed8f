"""``python -m broker``: generate credentials, render the config, run Mosquitto locally."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from broker import tls
from broker.config import DEFAULT_CONF, LocalBroker, TlsListener, render
from broker.credentials import ROLES, CredentialFiles, export, generate
from broker.files import Owner
from broker.settings import BrokerSettings
from broker.tls import check_names
from plantmodel.errors import PlantModelError, ValidationError
from plantmodel.topics import Topics


def _credentials(settings: BrokerSettings, rotate: list[str] | None = None) -> CredentialFiles:
    files = CredentialFiles(settings.secrets_dir)
    users, added = generate(settings.layout, Topics(settings.topic_root), files, settings.services,
                            rotate=rotate or ())
    fresh = [u for u in added if u not in (rotate or ())]
    print(f"{len(users)} MQTT users in {files.credentials} ({len(fresh)} new); "
          f"password file {files.passwd}, ACL {files.acl}")
    if rotate:
        print(f"new password for {', '.join(rotate)}: reload the broker (SIGHUP, or restart it), then give "
              "each its new password (`python -m broker export`, a device's configuration)")
    print(f"bridge users: {', '.join(settings.services.bridge_users())}; "
          f"debug users: {', '.join(settings.services.debug_users())}")
    return files


def _certs(settings: BrokerSettings, names: tuple[str, ...], *, force: bool = False) -> None:
    files = settings.tls_files
    result = tls.generate(files, names, force=force)
    if result.ca_created:
        print(f"new development CA: {files.ca_cert} (clients trust it: MQTT_CA_FILE, mosquitto_sub --cafile); "
              f"its key {files.ca_key} stays here")
    if result.server_issued:
        print(f"server certificate for {', '.join(names)}: {files.server_cert} ({result.reason})")
    else:
        print(f"server certificate {files.server_cert} {result.reason}")


PROVISIONED = ("broker", "bridge", "webui", "devices", "proxy")  # the containers of docker-compose.yml


def _owner(text: str) -> Owner:
    """``UID:GID`` (an argparse type: a malformed one is a usage error)."""
    uid, _, gid = text.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: give numeric UID:GID, e.g. 10001:10001")
    return int(uid), int(gid)


def _ensure_certs(settings: BrokerSettings) -> tls.TlsFiles:
    """The broker's certificates: a site's own (kept as they are), else development ones."""
    files = settings.tls_files
    missing = files.missing()
    if len(missing) == 3 and not files.ca_key.exists():
        print("no certificates yet: making development ones (bring your own for production)")
        _certs(settings, settings.tls_names)
    elif missing:
        raise ValidationError(f"TLS is on but {', '.join(map(str, missing))} is missing: put the site's "
                              "certificates there, or run `python -m broker certs`")
    else:
        print(f"TLS certificates in {files.directory}")
    return files


def _tls_listener(settings: BrokerSettings) -> TlsListener | None:
    if not settings.tls:
        return None
    files = _ensure_certs(settings)
    return TlsListener(settings.tls_port, files.ca_cert.resolve(), files.server_cert.resolve(),
                       files.server_key.resolve())


def _render(settings: BrokerSettings, files: CredentialFiles, template: Path) -> Path:
    data_dir = settings.broker_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    local = LocalBroker(settings.port, settings.bind, files.passwd.resolve(), files.acl.resolve(),
                        data_dir.resolve(), _tls_listener(settings))
    out = settings.broker_dir / "mosquitto.conf"
    out.write_text(render(template.read_text(), local))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m broker",
        description="Mosquitto for the plant: credentials, password file, ACL and a local broker. "
        "Layout and paths come from PLANT_UNITS, PLANT_AUTOMATES, PLANT_METERS / PLANT_METER_COUNT, "
        "PLANT_TOPIC_ROOT, SECRETS_DIR (var/secrets), BROKER_DIR (var/broker), MQTT_PORT (1883). "
        "The broker uses each user name as the client id, so a user has one connection at a time: "
        "BROKER_BRIDGES (1) bridge users (bridge, bridge-2, ...; run each bridge with its own "
        "MQTT_USERNAME), BROKER_WEBUIS (1) web UI users (webui, webui-2, ...: one per web UI process "
        "behind nginx) and BROKER_DEBUG_USERS (1) read-everything users (debug, debug-2, ...) for "
        "engineers' mosquitto_sub. TLS: BROKER_TLS (0; 1 = a TLS listener on BROKER_TLS_PORT, 8883, "
        "and the plain one on loopback only), BROKER_TLS_DIR (SECRETS_DIR/tls: ca.crt, server.crt, "
        "server.key), BROKER_TLS_NAMES (localhost,127.0.0.1,::1: the host names clients use).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_creds = sub.add_parser("credentials", help="generate (or extend) credentials, password file and ACL",
                             description="Write credentials.json, passwd and acl into SECRETS_DIR. Existing "
                             "passwords are kept; users for new units/meters/bridges/debug users are added.")
    p_creds.add_argument("--rotate", action="append", metavar="USER",
                         help="give this user a new password (repeatable), e.g. after a device is stolen")
    p_certs = sub.add_parser("certs", help="make a development CA and server certificate for TLS",
                             description="Write ca.crt, ca.key, server.crt and server.key into BROKER_TLS_DIR "
                             "(SECRETS_DIR/tls). An existing CA is kept (clients trust it); the server "
                             "certificate is reissued when missing, for other host names, or within 30 days "
                             "of expiry. Production sites bring certificates from their own CA instead.")
    p_certs.add_argument("--name", action="append", dest="names", metavar="HOST",
                         help="host name or IP address clients connect to (repeatable; default "
                         "BROKER_TLS_NAMES or localhost, 127.0.0.1, ::1)")
    p_certs.add_argument("--force", action="store_true", help="reissue the server certificate anyway")
    p_export = sub.add_parser(
        "export", help="copy one container's secrets (and nothing else) into a folder",
        description="broker: passwd, acl and the TLS certificate and key; proxy (nginx): the TLS certificate "
        "and key; bridge, webui, devices, debug: "
        "a credentials.json with only that service's users, and the CA certificate. Files 0600 (certificates "
        "0644) in a 0700 folder. Run `credentials` (and `certs`) first.")
    p_export.add_argument("role", choices=ROLES)
    p_export.add_argument("dest", type=Path, help="folder to write (a volume only that container mounts)")
    p_export.add_argument("--owner", type=_owner, metavar="UID:GID",
                          help="hand the files to the container's user (needs root)")
    p_prov = sub.add_parser(
        "provision", help="credentials, certificates and each container's secrets folder, in one go",
        description="What docker compose's one-shot `credentials` service runs: `credentials`, then `certs` "
        "when BROKER_TLS_DIR holds no certificate (a site's own are kept), then `export` of each role into "
        "OUT/<role> (broker, bridge, webui, devices, proxy: nginx's TLS certificate and key).")
    p_prov.add_argument("--out", type=Path, required=True, help="folder holding one folder per container")
    p_prov.add_argument("--owner", type=_owner, metavar="UID:GID",
                        help="owner of the service folders (the image's user, 10001:10001)")
    p_prov.add_argument("--broker-owner", type=_owner, metavar="UID:GID",
                        help="owner of the broker's folder (Mosquitto's image: 1883:1883)")
    p_prov.add_argument("--proxy-owner", type=_owner, metavar="UID:GID",
                        help="owner of nginx's folder (nginx-unprivileged's image: 101:101)")
    p_render = sub.add_parser("render", help="write the local broker config rendered from mosquitto.conf")
    p_run = sub.add_parser("run", help="generate credentials if needed, render the config, exec mosquitto")
    for p in (p_render, p_run):
        p.add_argument("--port", type=int, help="listener port (default MQTT_PORT or 1883)")
        p.add_argument("--bind", help="listener address (default BROKER_BIND or 127.0.0.1)")
        p.add_argument("--config", type=Path, default=DEFAULT_CONF, help="template (our mosquitto.conf)")
        p.add_argument("--tls", action="store_true", help="add the TLS listener (as BROKER_TLS=1)")
        p.add_argument("--tls-port", type=int, help="TLS listener port (default BROKER_TLS_PORT or 8883)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        return _main(args)
    except PlantModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace) -> int:
    settings = BrokerSettings.from_env(os.environ)
    if args.command == "credentials":
        _credentials(settings, args.rotate)
        return 0
    if args.command == "provision":
        files = _credentials(settings)
        _ensure_certs(settings)
        for role in PROVISIONED:
            written = export(role, files, settings.layout, settings.services, args.out / role,
                             tls_dir=settings.tls_dir,
                             owner={"broker": args.broker_owner, "proxy": args.proxy_owner}.get(role, args.owner))
            print(f"{role}: {', '.join(p.name for p in written)} in {args.out / role}")
        return 0
    if args.command == "export":
        written = export(args.role, CredentialFiles(settings.secrets_dir), settings.layout, settings.services,
                         args.dest, tls_dir=settings.tls_dir, owner=args.owner)
        print(f"{args.role}: {', '.join(p.name for p in written)} in {args.dest}")
        return 0
    if args.command == "certs":
        _certs(settings, check_names(args.names) if args.names else settings.tls_names, force=args.force)
        return 0
    settings = replace(settings, port=args.port or settings.port, bind=args.bind or settings.bind,
                       tls=args.tls or settings.tls, tls_port=args.tls_port or settings.tls_port)
    files = _credentials(settings)
    conf = _render(settings, files, args.config)
    if args.command == "render":
        print(conf)
        return 0
    binary = shutil.which(settings.mosquitto_bin) or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        print("mosquitto is not installed. Install it with:\n"
              "  sudo apt-get install -y mosquitto mosquitto-clients", file=sys.stderr)
        return 1
    where = (f"TLS on {settings.bind}:{settings.tls_port}, plain MQTT on 127.0.0.1:{settings.port}" if settings.tls
             else f"listening on {settings.bind}:{settings.port}")
    print(f"starting {binary} -c {conf} ({where})", flush=True)
    os.execv(binary, [binary, "-c", str(conf)])  # replace this process: signals reach mosquitto

if __name__ == "__main__":
    sys.exit(main())
