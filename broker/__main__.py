"""``python -m broker``: generate credentials, render the config, run Mosquitto locally."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from broker.config import DEFAULT_CONF, LocalBroker, render
from broker.credentials import CredentialFiles, generate
from broker.settings import BrokerSettings
from plantmodel.errors import PlantModelError
from plantmodel.topics import Topics


def _credentials(settings: BrokerSettings) -> CredentialFiles:
    files = CredentialFiles(settings.secrets_dir)
    users, added = generate(settings.layout, Topics(settings.topic_root), files, settings.services)
    print(f"{len(users)} MQTT users in {files.credentials} ({len(added)} new); "
          f"password file {files.passwd}, ACL {files.acl}")
    print(f"bridge users: {', '.join(settings.services.bridge_users())}; "
          f"debug users: {', '.join(settings.services.debug_users())}")
    return files


def _render(settings: BrokerSettings, files: CredentialFiles, template: Path) -> Path:
    data_dir = settings.broker_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    local = LocalBroker(settings.port, settings.bind, files.passwd.resolve(), files.acl.resolve(),
                        data_dir.resolve())
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
        "MQTT_USERNAME) and BROKER_DEBUG_USERS (1) read-everything users (debug, debug-2, ...) for "
        "engineers' mosquitto_sub.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("credentials", help="generate (or extend) credentials, password file and ACL",
                   description="Write credentials.json, passwd and acl into SECRETS_DIR. Existing "
                   "passwords are kept; users for new units/meters/bridges/debug users are added.")
    p_render = sub.add_parser("render", help="write the local broker config rendered from mosquitto.conf")
    p_run = sub.add_parser("run", help="generate credentials if needed, render the config, exec mosquitto")
    for p in (p_render, p_run):
        p.add_argument("--port", type=int, help="listener port (default MQTT_PORT or 1883)")
        p.add_argument("--bind", help="listener address (default BROKER_BIND or 127.0.0.1)")
        p.add_argument("--config", type=Path, default=DEFAULT_CONF, help="template (our mosquitto.conf)")
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
        _credentials(settings)
        return 0
    settings = replace(settings, port=args.port or settings.port, bind=args.bind or settings.bind)
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
    print(f"starting {binary} -c {conf} (listening on {settings.bind}:{settings.port})", flush=True)
    os.execv(binary, [binary, "-c", str(conf)])  # replace this process: signals reach mosquitto

if __name__ == "__main__":
    sys.exit(main())
