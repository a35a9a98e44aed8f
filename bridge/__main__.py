"""``python -m bridge``: run the bridge, manage thresholds, inspect rejected messages."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from bridge.service import Bridge
from bridge.settings import BridgeSettings
from plantmodel.errors import PlantModelError
from plantmodel.measures import MEASURES
from plantmodel.readings import format_ts, utcnow
from plantmodel.servicehealth import probe
from plantmodel.sources import AutomateSource, MeterSource, unit_key
from plantmodel.text import printable
from plantmodel.thresholds import (
    DEFAULT_SCOPE,
    SEVERITIES,
    Threshold,
    ThresholdSet,
    change_risks,
    incoherence,
)
from store import audit as trail
from store import models as orm
from store import queries
from store.claim import CHECK_EVERY_S, UserClaim
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
    engine = create_db_engine(settings.database_url, failover_hosts=settings.database_failover_hosts)
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
    claim: UserClaim | None = None
    if settings.claim_from:
        claim = UserClaim(engine, settings.claim_from)
        settings = replace(settings, mqtt=settings.mqtt.with_user(*claim.acquire()))
    try:
        return _run(settings, engine, stop, leave=leave, claim=claim)
    finally:
        if claim is not None:
            claim.release()


def _run(settings: BridgeSettings, engine: Engine, stop: threading.Event, *, leave: bool,
         claim: UserClaim | None) -> int:
    log = logging.getLogger(__name__)
    bridge = Bridge(settings, make_sessionmaker(engine), leaving=leave)
    bridge.start()  # reads thresholds and alarms: only once the database answers
    # Polling ``stop`` rather than ``stop.wait()``: the signal handler sets it from this very thread,
    # which must not hold the event's lock then (and a signal must not wait for the broker).
    deadline = time.monotonic() + 10
    while not bridge.wait_connected(0.2) and not stop.is_set():
        if time.monotonic() > deadline:
            log.warning("not connected to %s:%d yet; still trying", settings.mqtt.host, settings.mqtt.port)
            break
    code = 0
    next_claim_check = time.monotonic() + CHECK_EVERY_S
    while not stop.is_set():
        time.sleep(0.2)
        if claim is not None and time.monotonic() >= next_claim_check:
            next_claim_check = time.monotonic() + CHECK_EVERY_S
            if not claim.held():
                # Another bridge may take the user now: two clients with one id would keep
                # disconnecting each other. Stop (unacked messages stay with the broker); the
                # restart policy starts this one again, with a user it holds.
                log.error("the lock on MQTT user %s is lost; stopping", claim.user)
                code = 3
                break
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
    return code


def cmd_health(settings: BridgeSettings, timeout: float) -> int:
    """GET the running bridge's /healthz (on its metrics port); print it; 0 when healthy."""
    if not settings.metrics_port:
        print("error: BRIDGE_METRICS_PORT is 0: the bridge serves no health endpoint", file=sys.stderr)
        return 2
    host = settings.metrics_host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.metrics_port}/healthz"
    code, body = probe(url, timeout)
    print(body)
    return code


LEAVE_QUIET_S = 5.0  # no message for this long: the session's queue is empty


INHERIT = "inherit"  # a limit left out of ``set``: it comes live from the wider scope
NO_LIMIT = "none"


def _limit(text: str) -> float | str:
    """``--low``/``--high``: a number, ``none`` (no limit) or ``inherit`` (as if left out)."""
    word = text.strip().lower()
    if word in (NO_LIMIT, INHERIT):
        return word
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, 'none' or 'inherit'") from None


def _cli_user() -> str:
    """Who ran the command (the account may have no name in a container), as webui's CLI says it."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def cmd_thresholds(settings: BridgeSettings, args: argparse.Namespace) -> int:
    """The rules of ``PUT``/``DELETE /api/thresholds`` (plantmodel.thresholds decides): a limit left
    out is inherited, ``none`` is no limit, deadband and severity left out are the wider scope's;
    removing a limit or widening one past the normal range needs ``--confirm``. Every change is on
    the audit trail, in the change's transaction."""
    engine = create_db_engine(settings.database_url, failover_hosts=settings.database_failover_hosts)
    connect_database(engine)  # one try: a command in a shell says what is wrong, it does not wait
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        queries.seed_default_thresholds(session, utcnow())
    if args.action == "list":
        with sessions() as session:
            current = ThresholdSet(queries.load_thresholds(session))
        _print_thresholds(current)
        return 0
    scope, measure = _scope(args), args.measure
    actor = _cli_user()
    by = args.by or actor
    if args.action == "delete":
        if scope == DEFAULT_SCOPE:
            raise PlantModelError("the default (*) thresholds can be changed, not deleted")
        with sessions.begin() as session:
            current = ThresholdSet(queries.lock_thresholds_for_edit(session))
            if not any((t.scope, t.measure) == (scope, measure) for t in current):
                print(f"no threshold {scope} {measure}")
                return 1
            after = ThresholdSet(t for t in current if (t.scope, t.measure) != (scope, measure))
            risks = _check_change(current, after, scope, measure, args.confirm)
            queries.delete_threshold(session, scope, measure, utcnow(), by)
            trail.append(session, "threshold.delete", {"scope": scope, "measure": measure, **_confirmed(risks)},
                         at=utcnow(), actor=actor)
        print(f"deleted {scope} {measure}; now {_explained(after, scope, measure)}")
        return 0
    with sessions.begin() as session:
        current = ThresholdSet(queries.lock_thresholds_for_edit(session))
        inherited, _ = current.explain(scope, measure, inherited_only=True)
        default = MEASURES[measure]
        limits: dict[str, Any] = {}
        for side in ("low", "high"):
            given = NO_LIMIT if getattr(args, f"no_{side}") else getattr(args, side)
            # At "*" nothing is wider: left out means no limit, stored as such (as the API does).
            limits[f"inherit_{side}"] = given in (None, INHERIT) and scope != DEFAULT_SCOPE
            limits[side] = given if isinstance(given, float) else None
        new = Threshold(
            measure, scope,
            deadband=args.deadband if args.deadband is not None else (
                inherited.deadband if inherited else default.deadband),
            severity=args.severity or (inherited.severity if inherited else default.severity),
            **limits)
        after = ThresholdSet([*(t for t in current if (t.scope, t.measure) != (scope, measure)), new])
        risks = _check_change(current, after, scope, measure, args.confirm)
        queries.upsert_threshold(session, new, utcnow(), by)
        trail.append(session, "threshold.set", {
            "scope": scope, "measure": measure, "low": new.low, "high": new.high,
            "inherit_low": new.inherit_low, "inherit_high": new.inherit_high, "deadband": new.deadband,
            "severity": new.severity, **_confirmed(risks)}, at=utcnow(), actor=actor)
    print(f"set {scope} {measure}: {_explained(after, scope, measure)} (the bridge applies it within "
          f"{settings.thresholds_poll:g} s)")
    return 0


def _check_change(before: ThresholdSet, after: ThresholdSet, scope: str, measure: str,
                  confirmed: bool) -> list[str]:
    """The API's checks (the model's rules): an incoherent result is refused; a removed or widened
    limit needs --confirm. Returns what was confirmed, for the audit trail."""
    problem = incoherence(after, measure)
    if problem is not None:
        raise PlantModelError(problem)
    risks = change_risks(before, after, scope, measure)
    if risks and not confirmed:
        raise PlantModelError("this change " + "; and ".join(risks) + ". Add --confirm to do it.")
    return [str(r) for r in risks]  # the English sentences, as the audit trail keeps them


def _confirmed(risks: list[str]) -> dict[str, str]:
    return {"confirmed": "; ".join(risks)} if risks else {}


def _shown(ts: ThresholdSet, t: Threshold, side: str) -> str:
    """One limit of a stored row: its own value, "—" (no limit), or "↑" what it inherits and from where."""
    if not getattr(t, f"inherit_{side}"):
        return _num(getattr(t, side))
    found, origin = ts.explain(t.scope, t.measure)
    return f"↑ {_num(getattr(found, side) if found else None)} (from {origin[side] or 'nowhere'})"


def _explained(ts: ThresholdSet, scope: str, measure: str) -> str:
    """What applies at ``scope`` now, each limit with where it comes from when that is elsewhere."""
    found, origin = ts.explain(scope, measure)
    if found is None:
        return "no threshold applies"
    parts = []
    for side in ("low", "high"):
        value = getattr(found, side)
        where = "" if value is None or origin[side] == scope else f" (from {origin[side]})"
        parts.append(f"{side}={_num(value)}{where}")
    return " ".join(parts) + f" deadband={found.deadband:g} severity={found.severity}"


_ORDER = {name: i for i, name in enumerate(MEASURES)}


def _print_thresholds(ts: ThresholdSet) -> None:
    if hasattr(sys.stdout, "reconfigure"):  # "↑" and "—" must not fail on a non-UTF-8 terminal
        sys.stdout.reconfigure(errors="replace")
    rows = sorted(ts, key=lambda t: (t.scope != DEFAULT_SCOPE, t.scope, _ORDER.get(t.measure, 99)))
    print(f"{'scope':28} {'measure':16} {'low':>18} {'high':>18} {'deadband':>9} severity")
    for t in rows:
        print(f"{t.scope:28} {t.measure:16} {_shown(ts, t, 'low'):>18} {_shown(ts, t, 'high'):>18} "
              f"{t.deadband:>9g} {t.severity}")
    print("— = no limit; ↑ = inherited from the wider scope (follows its changes)")


def cmd_rejected(settings: BridgeSettings, limit: int) -> int:
    engine = create_db_engine(settings.database_url, failover_hosts=settings.database_failover_hosts)
    connect_database(engine)
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(orm.RejectedMessage).order_by(orm.RejectedMessage.id.desc()).limit(limit))
        for r in rows:
            # Device-controlled text: escaped, so a payload cannot drive the operator's terminal.
            print(f"{format_ts(r.received_at)}  {printable(r.topic)}\n    reason: {printable(r.reason)}\n"
                  f"    payload ({r.payload_bytes} B): {printable(r.payload[:200])}")
    return 0


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:g}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="MQTT -> MariaDB/SQLite bridge. Configuration from the environment: DATABASE_URL, "
        "DATABASE_FAILOVER_HOSTS (host:port,... tried after its host: Galera nodes), "
        "MQTT_HOST, MQTT_PORT, MQTT_USERNAME (bridge), MQTT_PASSWORD or MQTT_CREDENTIALS_FILE, "
        "PLANT_TOPIC_ROOT, BRIDGE_BATCH_SIZE, BRIDGE_BATCH_WAIT, BRIDGE_THRESHOLDS_POLL, "
        "BRIDGE_MAX_FUTURE_SKEW, BRIDGE_RPC_RETRY, BRIDGE_GAP_TIMEOUT, BRIDGE_STATUS_REFRESH, "
        "BRIDGE_SHARE_GROUP (bridges; empty = no shared subscription), BRIDGE_PARTITION (k/n: this bridge "
        "takes partition k of n of the units and meters of PLANT_UNITS / PLANT_METERS), "
        "BRIDGE_METRICS_HOST (127.0.0.1), "
        "BRIDGE_METRICS_PORT (9108; 0 = none; /healthz there too), BRIDGE_HEALTH_REPORT (15 s), "
        "BRIDGE_MAX_INGEST_LAG (60 s), BRIDGE_CLAIM_USER (0; 1 = take a free bridge user of the credentials "
        "file: identical scaled containers, MariaDB only) (see README). "
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
            for side, word in (("low", "lower"), ("high", "upper")):
                g = p.add_mutually_exclusive_group()
                g.add_argument(f"--{side}", type=_limit, metavar="V|none|inherit",
                               help=f"the {word} limit; 'none' = no {word} limit; left out (or 'inherit') = "
                                    "the wider scope's, live (at the default scope * nothing is wider: no limit)")
                g.add_argument(f"--no-{side}", action="store_true", help=f"no {word} limit (= --{side} none)")
            p.add_argument("--deadband", type=float,
                           help="how far back inside the range a value must come to clear "
                                "(left out: the wider scope's, else the measure's)")
            p.add_argument("--severity", choices=list(SEVERITIES),
                           help="left out: the wider scope's, else the measure's")
        p.add_argument("--confirm", action="store_true",
                       help="needed when the change removes a limit that applies or widens one past the "
                            "measure's normal range")
        p.add_argument("--by", help="name stored as the change's author in the thresholds' history (default: "
                       "cli:<login>); the audit trail always records cli:<login>")
    p_health = sub.add_parser(
        "health", help="ask the running bridge whether it is healthy (exit 0) or not (exit 1)",
        description="GET the running bridge's /healthz on BRIDGE_METRICS_HOST:BRIDGE_METRICS_PORT and print it: "
        "broker connected, database reachable, ingest lag within BRIDGE_MAX_INGEST_LAG (60 s), with the lag, "
        "the last commit's age and the queue depth. Exit 0 healthy, 1 unhealthy or not answering "
        "(a compose health check).")
    p_health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (5)")
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
        if args.command == "health":
            return cmd_health(settings, args.timeout)
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
