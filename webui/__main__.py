"""``python -m webui``: serve the live dashboard."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from types import FrameType

from store.db import create_db_engine, describe, init_schema, make_sessionmaker
from webui import create_app, web_state
from webui.settings import WebSettings

log = logging.getLogger("webui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m webui",
        description="Live dashboard of the plant (Flask + Socket.IO). Configuration comes from the "
                    "environment: DATABASE_URL, MQTT_HOST, MQTT_PORT, MQTT_USERNAME, MQTT_PASSWORD, "
                    "MQTT_CREDENTIALS_FILE, PLANT_TOPIC_ROOT, WEBUI_HOST, WEBUI_PORT, SECRET_KEY.",
    )
    parser.add_argument("--host", help="address to listen on (default: WEBUI_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: WEBUI_PORT or 8080)")
    return parser


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM (docker stop) takes the same clean path as Ctrl-C: Werkzeug returns from
    # serve_forever on KeyboardInterrupt, then the MQTT loop is stopped below.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before reading the environment, so --help always works
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = WebSettings.from_env(os.environ)
    settings = dataclasses.replace(settings, host=args.host or settings.host, port=args.port or settings.port)

    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background start may inherit it ignored
        signal.signal(sig, _interrupt)
    engine = create_db_engine(settings.database_url)
    try:
        log.info("database: %s", describe(settings.database_url))
        init_schema(engine)  # the bridge does it too; harmless, and lets the UI start first
        app = create_app(settings, sessionmaker=make_sessionmaker(engine))
        try:
            print(f"webui: serving http://{settings.host}:{settings.port}/", flush=True)
            app.extensions["socketio"].run(app, settings.host, settings.port, allow_unsafe_werkzeug=True)
        finally:
            web_state(app).feed.stop()
    except KeyboardInterrupt:
        pass  # a signal before the server was up
    finally:
        engine.dispose()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
