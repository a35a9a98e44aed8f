"""Fault file format, fault injection state, and the ``python -m devices`` command line."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.faults import SILENT, Fault, FaultFile, FaultInjector, load_faults, save_faults
from devices.units import UnitSimulator
from plantmodel.errors import ValidationError

METER = "shellypro1pm-aabbccddeeff"
REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def test_fault_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "faults.json"
    faults = [Fault("units/3/automates/7", "tank_temp_c", (4.1, 4.0)),
              Fault(f"meters/{METER}", "apower", (3800,))]
    save_faults(path, faults)
    assert load_faults(path) == faults
    data = json.loads(path.read_text())
    assert data == {"faults": [
        {"target": "units/3/automates/7", "measure": "tank_temp_c", "values": [4.1, 4.0]},
        {"target": f"meters/{METER}", "measure": "apower", "values": [3800]}]}
    assert [p.name for p in path.parent.iterdir()] == ["faults.json"]  # no temp file left behind


def test_missing_fault_file_means_no_faults(tmp_path: Path) -> None:
    assert load_faults(tmp_path / "nope.json") == []


@pytest.mark.parametrize(("target", "measure", "values", "reason"), [
    ("units/3/automates/7", "bogus", (1,), "unknown measure"),
    ("units/3/automates/7", "apower", (1,), "unknown measure"),  # a meter measure on an automate
    (f"meters/{METER}", "tank_temp_c", (1,), "unknown measure"),
    ("units/3", "ph", (7,), "invalid source"),
    ("meters/a b", "apower", (1,), "invalid meter id"),
    ("units/3/automates/7", "ph", (), "at least one value"),
    ("units/3/automates/7", "ph", ("7",), "must be a number"),
    ("units/3/automates/7", "ph", (True,), "must be a number"),
    ("units/3/automates/7", "ph", (float("nan"),), "finite"),
    ("units/3/automates/7", "ph", (15,), "not plausible"),
    (f"meters/{METER}", "pf", (2,), "not plausible"),
])
def test_fault_validation(target: str, measure: str, values: tuple, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Fault(target, measure, values)


@pytest.mark.parametrize(("text", "reason"), [
    ("not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"faults": {}}', "must be a list"),
    ('{"faults": [1]}', "must be an object"),
    ('{"faults": [{"target": "units/1/automates/1", "measure": "ph", "values": 7}]}', "list of numbers"),
    ('{"faults": [{"target": "units/1/automates/1", "measure": "ph", "values": [7]},'
     ' {"target": "units/1/automates/1", "measure": "ph", "values": [7.1]}]}', "same target"),
])
def test_fault_file_errors(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "faults.json"
    path.write_text(text)
    with pytest.raises(ValidationError, match=reason):
        load_faults(path)


def test_injector_cycles_per_target() -> None:
    inj = FaultInjector([Fault("units/1/automates/1", "ph", (6.0, 6.1, 6.2)),
                         Fault("units/1/automates/2", "ph", (8.0,))])
    assert [inj.forced("units/1/automates/1") for _ in range(4)] == \
        [{"ph": 6.0}, {"ph": 6.1}, {"ph": 6.2}, {"ph": 6.0}]
    assert inj.forced("units/1/automates/2") == {"ph": 8.0}
    assert inj.forced("units/1/automates/3") == {}


def test_injector_reload_keeps_cycle_of_unchanged_faults() -> None:
    same = Fault("units/1/automates/1", "ph", (6.0, 6.1))
    changed = Fault("units/1/automates/2", "ph", (6.0, 6.1))
    inj = FaultInjector([same, changed])
    inj.forced("units/1/automates/1")
    inj.forced("units/1/automates/2")
    inj.set_faults([same, Fault("units/1/automates/2", "ph", (5.0, 5.1))])
    assert inj.forced("units/1/automates/1") == {"ph": 6.1}
    assert inj.forced("units/1/automates/2") == {"ph": 5.0}


def test_fault_file_poll_reloads_only_on_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "faults.json"
    inj = FaultInjector()
    watcher = FaultFile(path, inj)
    assert watcher.poll() is False and len(inj) == 0  # no file: nothing to do
    fault = Fault("units/1/automates/1", "ph", (6.0,))
    save_faults(path, [fault])
    assert watcher.poll() is True and inj.faults() == [fault]
    assert watcher.poll() is False
    path.write_text("{broken")
    assert watcher.poll() is False and inj.faults() == [fault]  # a broken file keeps the faults
    assert "ignoring fault file" in caplog.text
    path.unlink()
    assert watcher.poll() is True and len(inj) == 0  # file removed: no faults


# -- command line ---------------------------------------------------------------------------------

def cli(*args: str, fault_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVICES_", "PLANT_", "MQTT_"))}
    if fault_file is not None:
        env["DEVICES_FAULT_FILE"] = str(fault_file)
    return subprocess.run([sys.executable, "-m", "devices", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=30)


@pytest.mark.parametrize("args", [(), ("run",), ("fault",), ("fault", "set"), ("fault", "clear"),
                                  ("fault", "list")])
def test_cli_help(args: tuple[str, ...]) -> None:
    result = cli(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m devices")


def test_cli_fault_set_list_clear(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    assert cli("fault", "set", "--unit", "3", "--automate", "7", "--measure", "tank_temp_c",
               "--values", "4.1, 4.0", fault_file=path).returncode == 0
    assert cli("fault", "set", "--meter", METER, "--measure", "apower", "--values", "3800",
               fault_file=path).returncode == 0
    assert load_faults(path) == [Fault("units/3/automates/7", "tank_temp_c", (4.1, 4.0)),
                                 Fault(f"meters/{METER}", "apower", (3800,))]
    # Setting the same target and measure again replaces the fault.
    cli("fault", "set", "--unit", "3", "--automate", "7", "--measure", "tank_temp_c", "--values", "4.5",
        fault_file=path)
    listed = cli("fault", "list", fault_file=path).stdout
    assert "units/3/automates/7  tank_temp_c  4.5" in listed and f"meters/{METER}  apower  3800" in listed
    assert cli("fault", "clear", "--meter", METER, fault_file=path).returncode == 0
    assert [f.target for f in load_faults(path)] == ["units/3/automates/7"]
    cli("fault", "clear", fault_file=path)
    assert load_faults(path) == []
    assert "no active faults" in cli("fault", "list", fault_file=path).stdout


def test_cli_fault_clear_by_measure(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    save_faults(path, [Fault("units/1/automates/1", "ph", (6.0,)), Fault("units/1/automates/1", "k_mg_l", (60,))])
    assert cli("fault", "clear", "--unit", "1", "--automate", "1", "--measure", "ph",
               fault_file=path).returncode == 0
    assert [f.measure for f in load_faults(path)] == ["k_mg_l"]


@pytest.mark.parametrize(("args", "message"), [
    (("--unit", "1", "--automate", "1", "--measure", "bogus", "--values", "1"), "unknown measure"),
    (("--unit", "1", "--automate", "1", "--measure", "ph", "--values", "6.9,abc"), "not a number"),
    (("--unit", "1", "--automate", "1", "--measure", "ph", "--values", "99"), "not plausible"),
    (("--unit", "1", "--measure", "ph", "--values", "7"), "go together"),
    (("--measure", "ph", "--values", "7"), "a target is needed"),
    (("--meter", METER, "--unit", "1", "--automate", "1", "--measure", "apower", "--values", "7"),
     "not both"),
    (("--meter", METER, "--measure", "ph", "--values", "7"), "unknown measure"),
])
def test_cli_fault_errors_exit_2_without_traceback(tmp_path: Path, args: tuple[str, ...],
                                                   message: str) -> None:
    path = tmp_path / "faults.json"
    result = cli("fault", "set", *args, fault_file=path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not path.exists()


def test_cli_broken_fault_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text("{nope")
    result = cli("fault", "list", fault_file=path)
    assert result.returncode == 2 and "not valid JSON" in result.stderr and "Traceback" not in result.stderr


def test_cli_run_rejects_bad_options() -> None:
    result = cli("run", "--units", "0")
    assert result.returncode == 2 and "units must be" in result.stderr
    result = cli("run", "--units-only", "--meters-only")
    assert result.returncode == 2 and "not allowed with" in result.stderr


# -- silent faults: an automate (or a whole unit) sends nothing ----------------------------------

def _seqs(readings: list) -> dict[int, int]:
    return {r.automate: r.seq for r in readings}


def test_silent_fault_file_round_trip_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text('{"faults": [{"target": "units/3", "measure": "silent"},'
                    ' {"target": "units/1/automates/2", "measure": "silent", "values": []}]}')
    faults = load_faults(path)
    assert faults == [Fault("units/3", SILENT, ()), Fault("units/1/automates/2", SILENT, ())]
    save_faults(path, faults)
    assert json.loads(path.read_text())["faults"][0] == {"target": "units/3", "measure": "silent"}
    for target, values, reason in ((f"meters/{METER}", (), "silent fault targets"),
                                   ("units/03", (), "silent fault targets"),
                                   ("units/0", (), "silent fault targets"),
                                   ("units/1/automates/2", (1,), "takes no values")):
        with pytest.raises(ValidationError, match=reason):
            Fault(target, SILENT, values)
    with pytest.raises(ValidationError, match="invalid source"):  # a whole unit: silent only
        Fault("units/3", "ph", (7,))


def test_silent_automate_sends_nothing_and_uses_no_sequence_number() -> None:
    injector = FaultInjector()
    # One automate per unit: the automate owns its random stream, so "it did not move on" shows.
    silenced, clean = UnitSimulator(2, 1, random.Random(5), injector), UnitSimulator(2, 1, random.Random(5))
    assert silenced.tick(T0) == [replace(r, boot=silenced.boot) for r in clean.tick(T0)]
    injector.set_faults([Fault("units/2/automates/1", SILENT, ())])
    assert [silenced.tick(T0) for _ in range(3)] == [[], [], []]
    assert injector.forced("units/2/automates/1") == {}  # a silent fault forces no value
    injector.set_faults([])
    after = silenced.tick(T0)
    assert after[0].seq == 1  # the next number: the bridge sees a pause, no gap to declare lost
    assert after == [replace(r, boot=silenced.boot) for r in clean.tick(T0)]


def test_silent_unit_and_automate_leave_the_others_alone() -> None:
    injector = FaultInjector([Fault("units/2/automates/3", SILENT, ())])
    unit1, unit2 = UnitSimulator(1, 4, random.Random(1), injector), UnitSimulator(2, 4, random.Random(2), injector)
    for _ in range(2):
        assert _seqs(unit2.tick(T0)).keys() == {1, 2, 4}
        assert _seqs(unit1.tick(T0)).keys() == {1, 2, 3, 4}
    injector.set_faults([Fault("units/2", SILENT, ())])
    assert unit2.tick(T0) == [] and len(unit1.tick(T0)) == 4
    injector.set_faults([])
    assert _seqs(unit2.tick(T0)) == {1: 2, 2: 2, 3: 0, 4: 2}
    assert _seqs(unit1.tick(T0)) == {1: 3, 2: 3, 3: 3, 4: 3}


def test_cli_silent_set_list_clear(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    done = cli("fault", "set", "--unit", "3", "--automate", "7", "--silent", fault_file=path)
    assert done.returncode == 0 and "sends nothing" in done.stdout, done.stderr
    assert cli("fault", "set", "--unit", "4", "--silent", fault_file=path).returncode == 0
    cli("fault", "set", "--unit", "4", "--automate", "1", "--measure", "ph", "--values", "6.5", fault_file=path)
    assert load_faults(path) == [Fault("units/3/automates/7", SILENT, ()), Fault("units/4", SILENT, ()),
                                 Fault("units/4/automates/1", "ph", (6.5,))]
    listed = cli("fault", "list", fault_file=path).stdout
    assert "units/3/automates/7  silent" in listed and "units/4  silent" in listed
    # --unit alone clears the unit's own fault and its automates'; --silent only silent ones.
    assert cli("fault", "clear", "--unit", "4", "--silent", fault_file=path).returncode == 0
    assert [f.target for f in load_faults(path)] == ["units/3/automates/7", "units/4/automates/1"]
    assert cli("fault", "clear", "--unit", "4", fault_file=path).returncode == 0
    assert load_faults(path) == [Fault("units/3/automates/7", SILENT, ())]


@pytest.mark.parametrize(("args", "message"), [
    (("--meter", METER, "--silent"), "silent fault targets"),
    (("--unit", "1", "--silent", "--values", "1"), "takes no --values"),
    (("--unit", "1", "--automate", "1", "--measure", "ph"), "needs --values"),
    (("--unit", "1", "--measure", "ph", "--silent"), "not allowed with"),
])
def test_cli_silent_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    path = tmp_path / "faults.json"
    result = cli("fault", "set", *args, fault_file=path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not path.exists()
