"""``python -m bridge thresholds set|list|delete`` on SQLite, in process: the rules of
``PUT /api/thresholds`` (a limit left out inherits, ``none`` is no limit, deadband and severity
left out are the wider scope's, removing or widening a limit needs ``--confirm``), the listing
telling an inherited limit from no limit, and every change on the audit trail by ``cli:<login>``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.__main__ import main
from plantmodel.thresholds import ThresholdSet
from store import audit as trail
from store import models as orm
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker

TANK = "tank_temp_c"
AUTOMATE = ("--unit", "2", "--automate", "3")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    engine = create_db_engine(url)
    init_schema(engine)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    yield make_sessionmaker(engine)
    engine.dispose()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["thresholds", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def row(db: sessionmaker[Session], scope: str, measure: str = TANK) -> dict[str, Any] | None:
    with db() as s:
        r = queries.get_threshold(s, scope, measure)
        if r is None:
            return None
        return {"low": r.low, "high": r.high, "inherit_low": bool(r.inherit_low),
                "inherit_high": bool(r.inherit_high), "deadband": r.deadband, "severity": r.severity}


def applies(db: sessionmaker[Session], scope: str, measure: str = TANK) -> tuple[Any, ...]:
    with db() as s:
        found, origin = ThresholdSet(queries.load_thresholds(s)).explain(scope, measure)
    assert found is not None
    return (found.low, origin["low"]), (found.high, origin["high"]), found.deadband, found.severity


def entries(db: sessionmaker[Session]) -> list[tuple[str | None, str, dict[str, Any]]]:
    with db() as s:
        rows = s.scalars(select(orm.AuditEntry).order_by(orm.AuditEntry.id)).all()
        return [(e.actor, e.action, json.loads(e.details)) for e in rows]


def test_a_limit_left_out_inherits_and_follows_the_wider_scope(db: sessionmaker[Session],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # The steps, on the CLI: High only, at an automate. Low stays the inherited 2.5.
    code, out, err = cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "3.8")
    assert code == 0, err
    assert row(db, "units/2/automates/3") == {"low": None, "high": 3.8, "inherit_low": True, "inherit_high": False,
                                              "deadband": 0.2, "severity": "warning"}
    assert "low=2.5 (from *) high=3.8" in out
    # Live: the unit's own low reaches the automate (nothing copied at set time).
    assert cli(capsys, "set", "--unit", "2", "--measure", TANK, "--low", "2.8")[0] == 0
    assert applies(db, "units/2/automates/3") == ((2.8, "units/2"), (3.8, "units/2/automates/3"), 0.2, "warning")
    # "inherit" said out loud is the same as left out.
    assert cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--low", "inherit", "--high", "3.9")[0] == 0
    assert row(db, "units/2/automates/3")["inherit_low"] is True  # type: ignore[index]


def test_deadband_and_severity_left_out_are_the_wider_scopes(db: sessionmaker[Session],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "set", "--unit", "2", "--measure", TANK, "--high", "3.9", "--deadband", "0.4",
               "--severity", "critical")[0] == 0
    assert cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "3.7")[0] == 0
    stored = row(db, "units/2/automates/3")
    assert stored is not None and (stored["deadband"], stored["severity"]) == (0.4, "critical")
    # Nothing wider than the unit but the defaults: the measure's own.
    assert cli(capsys, "set", "--unit", "4", "--measure", TANK, "--high", "3.9")[0] == 0
    stored = row(db, "units/4")
    assert stored is not None and (stored["deadband"], stored["severity"]) == (0.2, "warning")


def test_none_removes_a_limit_only_with_confirm(db: sessionmaker[Session],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--low", "none")
    assert code == 2 and "removes the low limit 2.5 °C (from *)" in err and "--confirm" in err
    assert row(db, "units/2/automates/3") is None and entries(db) == []  # nothing stored, nothing audited
    code, _, err = cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--low", "none", "--confirm")
    assert code == 0, err
    assert row(db, "units/2/automates/3") == {"low": None, "high": None, "inherit_low": False, "inherit_high": True,
                                              "deadband": 0.2, "severity": "warning"}
    assert applies(db, "units/2/automates/3")[:2] == ((None, "units/2/automates/3"), (4.0, "*"))
    (actor, action, details), = entries(db)
    assert (actor, action) == ("cli:root", "threshold.set")
    assert details["confirmed"].startswith("removes the low limit 2.5")
    # --no-low is the same explicit "no limit".
    assert cli(capsys, "set", "--unit", "3", "--measure", TANK, "--no-low", "--confirm")[0] == 0
    assert row(db, "units/3") == {"low": None, "high": None, "inherit_low": False, "inherit_high": True,
                                  "deadband": 0.2, "severity": "warning"}


def test_widening_past_the_normal_range_needs_confirm_narrowing_does_not(
        db: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "5")
    assert code == 2 and "widens the high limit" in err and "past the normal high 4 °C" in err
    assert row(db, "units/2/automates/3") is None
    assert cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "5", "--confirm")[0] == 0
    assert cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "3.5")[0] == 0  # narrower: no question
    # Deleting the override gives back 4.0: narrower again, no question; the default scope stays.
    code, out, _ = cli(capsys, "delete", *AUTOMATE, "--measure", TANK)
    assert code == 0 and "high=4 (from *)" in out
    assert [(a, act, d.get("confirmed", "")[:6]) for a, act, d in entries(db)] == [
        ("cli:root", "threshold.set", "widens"), ("cli:root", "threshold.set", ""),
        ("cli:root", "threshold.delete", "")]


def test_at_the_default_scope_a_limit_left_out_is_no_limit(db: sessionmaker[Session],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "set", "--measure", "ph", "--high", "7.1")
    assert code == 2 and "removes the low limit 6.8 pH (from *)" in err
    assert cli(capsys, "set", "--measure", "ph", "--high", "7.1", "--confirm")[0] == 0
    assert row(db, "*", "ph") == {"low": None, "high": 7.1, "inherit_low": False, "inherit_high": False,
                                  "deadband": 0.2, "severity": "warning"}


def test_an_incoherent_result_is_refused(db: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "3.0")[0] == 0  # low inherited 2.5
    # The unit's low would reach the automate above its own high: every value would alarm there.
    code, _, err = cli(capsys, "set", "--unit", "2", "--measure", TANK, "--low", "3.2")
    assert code == 2 and "units/2/automates/3 with low 3.2 °C (from units/2) above high 3 °C " in err
    assert row(db, "units/2") is None


def test_list_tells_an_inherited_limit_from_no_limit(db: sessionmaker[Session],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "3.8")
    cli(capsys, "set", "--unit", "2", "--measure", TANK, "--no-low", "--confirm")
    cli(capsys, "set", *AUTOMATE, "--measure", "no_data", "--high", "0.15")
    code, out, _ = cli(capsys, "list")
    assert code == 0
    lines = {tuple(line.split()[:2]): line for line in out.splitlines() if line.startswith(("*", "units/"))}
    assert lines[("units/2/automates/3", TANK)].split()[2:5] == ["↑", "—", "(from"]  # inherits "no limit"
    assert "(from units/2)" in lines[("units/2/automates/3", TANK)]
    assert lines[("units/2", TANK)].split()[2:4] == ["—", "↑"]  # its own "no limit", then high from *
    assert "↑ 4 (from *)" in lines[("units/2", TANK)]
    assert "↑ 2.5 (from *)" not in out
    assert lines[("units/2/automates/3", "no_data")].split()[2:7] == ["↑", "—", "(from", "*)", "0.15"]
    assert lines[("*", TANK)].split()[2:4] == ["2.5", "4"]


def test_changes_are_chained_on_the_audit_trail_with_their_history(db: sessionmaker[Session],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "set", *AUTOMATE, "--measure", "no_data", "--high", "0.15", "--by", "alice")[0] == 0
    assert cli(capsys, "delete", *AUTOMATE, "--measure", "no_data")[0] == 0
    assert cli(capsys, "delete", *AUTOMATE, "--measure", "no_data")[0] == 1  # nothing left: no entry
    assert entries(db) == [
        ("cli:root", "threshold.set", {"scope": "units/2/automates/3", "measure": "no_data", "low": None,
                                       "high": 0.15, "inherit_low": True, "inherit_high": False,
                                       "deadband": 0.0, "severity": "critical"}),
        ("cli:root", "threshold.delete", {"scope": "units/2/automates/3", "measure": "no_data"})]
    with db() as s:
        assert trail.verify(s).ok
        changes = s.scalars(select(orm.ThresholdChange).order_by(orm.ThresholdChange.id)).all()
        assert [(c.action, c.changed_by) for c in changes] == [("set", "alice"), ("delete", "cli:root")]


@pytest.mark.parametrize(("args", "message"), [
    (("--high", "abc"), "is not a number, 'none' or 'inherit'"),
    (("--low", "none", "--no-low"), "not allowed with"),
])
def test_bad_options_are_usage_errors(db: sessionmaker[Session], capsys: pytest.CaptureFixture[str],
                                      args: tuple[str, ...], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(capsys, "set", *AUTOMATE, "--measure", TANK, *args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_non_finite_limit_is_refused(db: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "set", *AUTOMATE, "--measure", TANK, "--high", "nan")
    assert code == 2 and "finite" in err
    assert row(db, "units/2/automates/3") is None
