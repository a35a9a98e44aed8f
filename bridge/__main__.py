"""``python -m bridge``: run the bridge, manage thresholds, inspect rejected messages."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bridge.service import Bridge
from bridge.settings import BridgeSettings
from plantmodel.errors import PlantModelError
from plantmodel.measures import MEASURES
from plantmodel.readings import format_ts, utcnow
from plantmodel.sources import AutomateSource, MeterSource, unit_key
from plantmodel.text import printable
from plantmodel.thresholds import DEFAULT_SCOPE, Threshold, ThresholdSet
from store import models as orm
from store import queries
from store.db import (
    DatabaseUnavailable,
    connect_database,
    create_db_engine,
    describe,
    make_sessionmaker,
    wait_for_database,
)


def _scope(args: argparse.Namespace) -> str:
    if args.meter:
        if args.unit or args.automate:
            raise PlantModelError("give either --meter or --unit/--automate, not both")
        return MeterSource(args.meter).key
    if args.automate and not args.unit:
        raise PlantModelError("--automate needs --unit")
    if args.unit and args.automate:
        return AutomateSource(args.unit, args.automate).key
    if args.unit:
        return unit_key(args.unit)
    return DEFAULT_SCOPE


def cmd_run(settings: BridgeSettings, *, leave: bool = False) -> int:
    """``leave``: retire this bridge (see ``python -m bridge leave --help``)."""
    log = logging.getLogger(__name__)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    engine = create_db_engine(settings.database_url)
    log.info("database %s", describe(engine.url))
    # The database may start after us (no start order on a plant server): wait, do not exit.
    if not wait_for_database(engine, stop=stop, log=log):
        log.info("stopped before the database was reachable")
        return 0
    if engine.dialect.name in ("mysql", "mariadb"):
        # READ COMMITTED: every batch locks its sources before it reads them, so it needs no
        # snapshot of its own; and without REPEATABLE READ's gap locks, bridges creating new rows
        # next to each other's (interleaved units) do not wait for each other, or deadlock.
        engine = engine.execution_options(isolation_level="READ COMMITTED")
    bridge = Bridge(settings, make_sessionmaker(engine), leaving=leave)
    bridge.start()  # reads thresholds and alarms: only once the database answers
    # Polling ``stop`` rather than ``stop.wait()``: the signal handler sets it from this very thread,
    # which must not hold the event's lock then (and a signal must not wait for the broker).
    deadline = time.monotonic() + 10
    while not bridge.wait_connected(0.2) and not stop.is_set():
        if time.monotonic() > deadline:
            log.warning("not connected to %s:%d yet; still trying", settings.mqtt.host, settings.mqtt.port)
            break
    while not stop.is_set():
        time.sleep(0.2)
        if leave and bridge.drained(LEAVE_QUIET_S):
            if bridge.stats.internal_errors:
                log.warning("left the group %r, but %d message(s) the bridge failed on are held: they stay in "
                            "this user's session (see the log above)", settings.share_group,
                            bridge.stats.internal_errors)
            else:
                log.info("left the group %r: the session holds nothing more; this user may be retired",
                         settings.share_group)
            break
    bridge.stop()
    log.info("stopped: %s", bridge.stats.line())
    return 0


LEAVE_QUIET_S = 5.0  # no message for this long: the session's queue is empty


def cmd_thresholds(settings: BridgeSettings, args: argparse.Namespace) -> int:
    engine = create_db_engine(settings.database_url)
    connect_database(engine)  # one try: a command in a shell says what is wrong, it does not wait
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        queries.seed_default_thresholds(session, utcnow())
    if args.action == "list":
        with sessions() as session:
            rows = sorted(queries.load_thresholds(session), key=lambda t: (t.scope != "*", t.scope, t.measure))
        print(f"{'scope':28} {'measure':16} {'low':>9} {'high':>9} {'deadband':>9} severity")
        for t in rows:
            print(f"{t.scope:28} {t.measure:16} {_num(t.low):>9} {_num(t.high):>9} {t.deadband:>9g} {t.severity}")
        return 0
    scope = _scope(args)
    if args.action == "delete":
        if scope == DEFAULT_SCOPE:
            raise PlantModelError("the default (*) thresholds can be changed, not deleted")
        with sessions.begin() as session:
            found = queries.delete_threshold(session, scope, args.measure, utcnow(), args.by)
        print(f"deleted {scope} {args.measure}" if found else f"no threshold {scope} {args.measure}")
        return 0 if found else 1
    # set: unspecified fields start from what applies today (the inherited threshold).
    with sessions.begin() as session:
        current = _resolve(ThresholdSet(queries.load_thresholds(session)), scope, args.measure)
        new = Threshold(
            measure=args.measure, scope=scope,
            low=None if args.no_low else (args.low if args.low is not None else current.low),
            high=None if args.no_high else (args.high if args.high is not None else current.high),
            deadband=args.deadband if args.deadband is not None else current.deadband,
            severity=args.severity or current.severity,
        )
        queries.upsert_threshold(session, new, utcnow(), args.by)
    print(f"set {scope} {args.measure}: low={_num(new.low)} high={_num(new.high)} "
          f"deadband={new.deadband:g} severity={new.severity} (the bridge applies it within "
          f"{settings.thresholds_poll:g} s)")
    return 0


def _resolve(ts: ThresholdSet, scope: str, measure: str) -> Threshold:
    found = ts.resolve_scope(scope, measure)
    if found is None:  # a measure without any threshold yet: start from its measure's defaults
        m = MEASURES[measure]
        found = Threshold(measure, DEFAULT_SCOPE, None, None, m.deadband, m.severity)
    return found


def cmd_rejected(settings: BridgeSettings, limit: int) -> int:
    engine = create_db_engine(settings.database_url)
    connect_database(engine)
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(orm.RejectedMessage).order_by(orm.RejectedMessage.id.desc()).limit(limit))
        for r in rows:
            # Device-controlled text: escaped, so a payload cannot drive the operator's terminal.
            print(f"{format_ts(r.received_at)}  {printable(r.topic)}\n    reason: {printable(r.reason)}\n"
                  f"    payload ({r.payload_bytes} B): {printable(r.payload[:200])}")
    return 0


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="MQTT -> MariaDB/SQLite bridge. Configuration from the environment: DATABASE_URL, "
        "MQTT_HOST, MQTT_PORT, MQTT_USERNAME (bridge), MQTT_PASSWORD or MQTT_CREDENTIALS_FILE, "
        "PLANT_TOPIC_ROOT, BRIDGE_BATCH_SIZE, BRIDGE_BATCH_WAIT, BRIDGE_THRESHOLDS_POLL, "
        "BRIDGE_MAX_FUTURE_SKEW, BRIDGE_RPC_RETRY, BRIDGE_GAP_TIMEOUT, BRIDGE_STATUS_REFRESH, "
        "BRIDGE_SHARE_GROUP (bridges; empty = no shared subscription), BRIDGE_PARTITION (k/n: this bridge "
        "takes partition k of n of the units and meters of PLANT_UNITS / PLANT_METERS), "
        "BRIDGE_METRICS_HOST (127.0.0.1), "
        "BRIDGE_METRICS_PORT (9108; 0 = none) (see README). "
        "The MQTT client id is the user name (the broker ties them): several bridges run with users "
        "bridge, bridge-2, ... and split the stream through the shared subscription.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the bridge until Ctrl-C / SIGTERM")
    p_run.add_argument("--batch-size", type=int, help="rows per transaction (BRIDGE_BATCH_SIZE, 500)")
    sub.add_parser("leave", help="retire this bridge (MQTT_USERNAME) from its shared group",
                   description="Retire a bridge for good while the others run: stop it, then run this with its "
                   "MQTT_USERNAME. It unsubscribes from the shared subscription (no new message is dealt to "
                   "it), stores what its persistent session still holds (its turn of the stream while it was "
                   f"down), and exits once nothing has come for {LEAVE_QUIET_S:g} s.")
    p_th = sub.add_parser("thresholds", help="list or change alarm thresholds (applied without restart)")
    th = p_th.add_subparsers(dest="action", required=True)
    th.add_parser("list", help="show every threshold")
    for name, help_ in (("set", "create or change a threshold"),
                        ("delete", "remove an override (the wider scope applies again)")):
        p = th.add_parser(name, help=help_, description=help_ + ". Scope: no option = every "
                          "automate/meter (*); --unit; --unit and --automate; or --meter.")
        p.add_argument("--measure", required=True, choices=sorted(MEASURES), metavar="MEASURE",
                       help="one of: " + ", ".join(MEASURES))
        p.add_argument("--unit", type=int)
        p.add_argument("--automate", type=int)
        p.add_argument("--meter")
        if name == "set":
            p.add_argument("--low", type=float)
            p.add_argument("--high", type=float)
            p.add_argument("--no-low", action="store_true", help="no lower limit")
            p.add_argument("--no-high", action="store_true", help="no upper limit")
            p.add_argument("--deadband", type=float, help="how far back inside the range a value must come to clear")
            p.add_argument("--severity", choices=["info", "warning", "critical"])
        p.add_argument("--by", default=os.environ.get("USER", "cli"), help="who changes it (audit trail)")
    p_rej = sub.add_parser("rejected", help="show the latest rejected messages and why")
    p_rej.add_argument("--limit", type=int, default=20)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = BridgeSettings.from_env(os.environ)
        if args.command == "run":
            if args.batch_size:
                settings = replace(settings, batch_size=args.batch_size)
            return cmd_run(settings)
        if args.command == "leave":
            return cmd_run(settings, leave=True)
        if args.command == "thresholds":
            return cmd_thresholds(settings, args)
        return cmd_rejected(settings, args.limit)
    except PlantModelError as exc:  # configuration or usage
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"database error: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
