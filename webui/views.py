"""The dashboard page and the health check."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, render_template
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from webui.auth import public
from webui.snapshot import load_snapshot
from webui.state import web_state

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index() -> str:
    # The page starts from the embedded snapshot, then follows the live events.
    return render_template("index.html", snapshot=load_snapshot(web_state().make_session))


@bp.get("/healthz")
@public
def healthz() -> tuple[Response, int]:
    state = web_state()
    db = database_ok(state.make_session)
    body = jsonify(status="ok" if db else "unavailable", db=db, mqtt=state.feed.connected)
    return body, 200 if db else 503


def database_ok(make_session: sessionmaker[Session]) -> bool:
    try:
        with make_session() as session:
            session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        log.warning("health check: database unavailable: %s", exc)
        return False
