"""``--every SECONDS`` of the maintenance commands (``backup``, ``retention``): run a job now and
then every period until SIGTERM / Ctrl-C; a failed turn is logged and the job tried again at the next."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from plantmodel.errors import PlantModelError
from store.db import DatabaseUnavailable, _sleep_unless


def run_every(seconds: float, job: Callable[[threading.Event], object], *, what: str,
              log: logging.Logger) -> int:
    """Call ``job(stop)`` now and then every ``seconds`` (a fixed schedule: a long turn does not
    shift the next ones) until a signal sets ``stop``; returns the exit code (0)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    next_run = time.monotonic()
    while not stop.is_set():
        try:
            job(stop)
        except (PlantModelError, DatabaseUnavailable) as exc:  # says what is wrong in one line
            log.error("%s failed: %s", what, exc)
        except (OSError, SQLAlchemyError) as exc:  # the database is down, say: try again next turn
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)
        next_run += seconds
        _sleep_unless(stop, max(0.0, next_run - time.monotonic()))
    log.info("stopped")
    return 0
