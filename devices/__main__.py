"""``python -m devices``: run the simulators, or manage injected faults.

    python -m devices run [--demo] [--period S] [--units-only | --meters-only] [--units N] [--automates N]
                          [--gen1 ID[,ID...]] [--status-ntf]
    python -m devices fault set --unit U --automate A --measure M --values 4.5[,4.0,...]
    python -m devices fault set --meter ID --measure apower --values 3800
    python -m devices fault clear [--unit U --automate A | --meter ID] [--measure M]
    python -m devices fault list
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from devices.faults import SILENT, Fault, load_faults, save_faults
from devices.settings import (
    DEMO_ENERGY_INTERVAL_S,
    DEMO_PERIOD_S,
    GEN1_UPDATE_FRACTION,
    DevicesSettings,
    parse_meter_ids,
)
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.sources import AutomateSource, MeterSource, parse_source, unit_key


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devices",
        description="Simulated production units and Shelly power meters (Pro 1PM Gen2, or 1PM Gen1) "
                    "publishing over MQTT. Settings come from the environment (MQTT_HOST, PLANT_UNITS, "
                    "PLANT_METERS, DEVICES_PERIOD, DEVICES_BUFFER, DEVICES_RESEND_AFTER, "
                    "DEVICES_GEN1_METERS, DEVICES_STATUS_NTF, ...).")
    sub = parser.add_subparsers(dest="command", metavar="{run,fault}")
    defaults = DevicesSettings()

    run = sub.add_parser(
        "run", help="run the simulators (the default)",
        description="Run every unit and meter of the layout until SIGINT/SIGTERM.",
        epilog="Each unit keeps every reading until the bridge confirms it is committed (on "
               "<root>/confirm/units/<u>), not just until the broker acknowledges it, so even a "
               "broker crash loses nothing. It resends its unconfirmed readings on every reconnect "
               "and, when the bridge reports a gap for DEVICES_RESEND_AFTER seconds "
               f"({defaults.resend_after:g}), the missing range. At most DEVICES_BUFFER "
               f"({defaults.buffer_size}) unconfirmed readings per unit: when full the oldest is "
               "dropped and counted in the log. A stop waits a few seconds for the last confirmations. "
               "Meters are Shelly Pro 1PM (Gen2: <id>/online, <id>/events/rpc, RPC on <id>/rpc) unless "
               "listed in DEVICES_GEN1_METERS / --gen1: those speak the Gen1 Shelly 1PM API under "
               "shellies/<id>/ (relay/0, relay/0/power in W, relay/0/energy in watt-minutes, temperature, "
               "overtemperature, announce; commands on shellies/<id>/relay/0/command and shellies/command), "
               f"their values every {GEN1_UPDATE_FRACTION:g} x DEVICES_ENERGY_INTERVAL "
               f"({defaults.gen1_update_period:g} s, {DEMO_ENERGY_INTERVAL_S * GEN1_UPDATE_FRACTION:g} s "
               "with --demo).")
    run.add_argument("--demo", action="store_true",
                     help=f"fast demo: a report every {DEMO_PERIOD_S:g} s, meter energy "
                          f"minute of {DEMO_ENERGY_INTERVAL_S:g} s (Gen1 meters' values every "
                          f"{DEMO_ENERGY_INTERVAL_S * GEN1_UPDATE_FRACTION:g} s)")
    run.add_argument("--period", type=float, metavar="S", help="seconds between two unit reports")
    only = run.add_mutually_exclusive_group()
    only.add_argument("--units-only", action="store_true", help="run the production units only")
    only.add_argument("--meters-only", action="store_true", help="run the meters only")
    run.add_argument("--units", type=int, metavar="N", help="number of units (overrides PLANT_UNITS)")
    run.add_argument("--automates", type=int, metavar="N",
                     help="automates per unit (overrides PLANT_AUTOMATES)")
    run.add_argument("--gen1", metavar="ID[,ID...]",
                     help="comma separated meter ids of the layout to simulate as Gen1 Shelly 1PM "
                          "(topics shellies/<id>/...); the other meters stay Gen2. Overrides "
                          "DEVICES_GEN1_METERS (default: none); an id not in the layout is an error, "
                          "--gen1 '' makes every meter Gen2")
    run.add_argument("--status-ntf", action="store_true",
                     help="Gen2 meters also publish their full switch status on <id>/status/switch:0 "
                          "after every change, as a real device with its status_ntf option on (off by "
                          "default, like the device; same as DEVICES_STATUS_NTF=1). NotifyStatus on "
                          "<id>/events/rpc is sent either way")

    fault = sub.add_parser("fault", help="inject, clear or list faults (DEVICES_FAULT_FILE)",
                           description="Faults force the published value of one measure, or silence "
                                       "an automate or a unit; the running simulator picks changes up "
                                       "at its next tick.")
    fsub = fault.add_subparsers(dest="fault_command", metavar="{set,clear,list}", required=True)

    fset = fsub.add_parser("set", help="force a measure to a value or a cycle of values, or silence "
                                       "an automate or a unit",
                           description="Force a measure of one automate or meter; several values "
                                       "are published in turn, cycling (4.1,4.0 jitters at a limit). "
                                       f"--{SILENT} instead: the automate (--unit U --automate A) or every "
                                       "automate of the unit (--unit U alone) sends nothing until the "
                                       "fault is cleared, without using sequence numbers (nothing is "
                                       "counted as lost; the bridge's no-data alarm should notice).")
    _add_target(fset)
    what = fset.add_mutually_exclusive_group(required=True)
    what.add_argument("--measure", help="measure name, e.g. tank_temp_c or apower")
    what.add_argument(f"--{SILENT}", action="store_true", help="send nothing (no --values)")
    fset.add_argument("--values", metavar="V[,V...]",
                      help="comma separated values, published in turn (with --measure)")

    fclear = fsub.add_parser("clear", help="remove faults (all of them without a filter)",
                             description="Remove the faults matching the filters; no filter = all. "
                                         "--unit alone also matches that unit's automates.")
    _add_target(fclear)
    cwhat = fclear.add_mutually_exclusive_group()
    cwhat.add_argument("--measure", help="only this measure")
    cwhat.add_argument(f"--{SILENT}", action="store_true", help="only silent faults")

    fsub.add_parser("list", help="show the active faults", description="Show the active faults.")
    return parser


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unit", type=int, metavar="U", help="production unit number")
    parser.add_argument("--automate", type=int, metavar="A", help="automate number (with --unit)")
    parser.add_argument("--meter", metavar="ID", help="Shelly meter id (instead of --unit/--automate)")


def _target(args: argparse.Namespace, *, required: bool, unit_alone: bool = False) -> str | None:
    """``unit_alone``: --unit without --automate names the whole unit (``units/<u>``)."""
    if args.meter is not None:
        if args.unit is not None or args.automate is not None:
            raise ValidationError("give either --meter or --unit/--automate, not both")
        return MeterSource(args.meter).key
    if args.unit is None and args.automate is None:
        if required:
            raise ValidationError("a target is needed: --unit U --automate A, or --meter ID")
        return None
    if unit_alone and args.automate is None:
        AutomateSource(args.unit, 1)  # range check
        return unit_key(args.unit)
    if args.unit is None or args.automate is None:
        raise ValidationError("--unit and --automate go together")
    return AutomateSource(args.unit, args.automate).key


def _describe(fault: Fault) -> str:
    return ",".join(f"{v:g}" for v in fault.values)


def _parse_values(text: str) -> tuple[float, ...]:
    values: list[float] = []
    for part in text.split(","):
        part = part.strip()
        try:
            values.append(int(part))
        except ValueError:
            try:
                values.append(float(part))
            except ValueError:
                raise ValidationError(f"{part!r} is not a number") from None
    return tuple(values)


def _fault_command(args: argparse.Namespace, settings: DevicesSettings) -> int:
    path = settings.fault_file
    faults = load_faults(path)
    if args.fault_command == "list":
        if not faults:
            print(f"no active faults ({path})")
        for f in faults:
            print(f"{f.target}  {SILENT}" if f.silent else f"{f.target}  {f.measure}  {_describe(f)}")
        return 0
    if args.fault_command == "set":
        target = _target(args, required=True, unit_alone=args.silent)
        assert target is not None
        if args.silent:
            if args.values is not None:
                raise ValidationError(f"--{SILENT} takes no --values")
            fault = Fault(target, SILENT, ())
        else:
            if args.values is None:
                raise ValidationError("--measure needs --values")
            fault = Fault(target, args.measure, _parse_values(args.values))
        faults = [f for f in faults if f.key != fault.key] + [fault]
        save_faults(path, faults)
        print(f"fault set: {fault.target} silent (sends nothing until cleared)" if fault.silent
              else f"fault set: {fault.target} {fault.measure} = {_describe(fault)}")
        _warn_outside_layout(fault.target, settings.layout)
        return 0
    target = _target(args, required=False, unit_alone=True)
    measure = SILENT if args.silent else args.measure
    kept = [f for f in faults
            if not ((target is None or f.target == target
                     or (target.count("/") == 1 and f.target.startswith(target + "/")))
                    and (measure is None or f.measure == measure))]
    save_faults(path, kept)
    print(f"{len(faults) - len(kept)} fault(s) cleared, {len(kept)} left")
    return 0


def _warn_outside_layout(target: str, layout: PlantLayout) -> None:
    # Not an error: the layout of the running simulator may differ from this shell's environment.
    whole_unit = target.count("/") == 1 and target.startswith("units/")
    # A whole unit (silent fault): only its number can be outside the layout.
    source = parse_source(f"{target}/automates/1" if whole_unit else target)
    if isinstance(source, MeterSource) and source.meter not in layout.meters:
        print(f"note: meter {source.meter} is not in the configured layout", file=sys.stderr)
    if isinstance(source, AutomateSource) and (source.unit > layout.units or source.automate > layout.automates):
        print(f"note: {target} is outside the configured layout "
              f"({layout.units} units x {layout.automates} automates)", file=sys.stderr)


def _run_command(args: argparse.Namespace, settings: DevicesSettings) -> int:
    from devices.runner import DeviceRunner  # paho is only needed to run

    changes: dict[str, object] = {}
    if args.demo:
        changes.update(period=DEMO_PERIOD_S, energy_interval=DEMO_ENERGY_INTERVAL_S)
    if args.period is not None:
        changes["period"] = args.period
    if args.units is not None or args.automates is not None:
        layout = settings.layout
        changes["layout"] = PlantLayout(units=args.units if args.units is not None else layout.units,
                                        automates=args.automates if args.automates is not None
                                        else layout.automates, meters=layout.meters)
    changes.update(run_units=not args.meters_only, run_meters=not args.units_only)
    if args.gen1 is not None:
        changes["gen1_meters"] = parse_meter_ids(args.gen1, "--gen1")
    if args.status_ntf:
        changes["status_ntf"] = True
    settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = DeviceRunner(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("%s received, stopping", signal.Signals(signum).name)
        runner.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return runner.run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `python -m devices` runs the simulators
        args = parser.parse_args(["run"])
    env = dict(os.environ)
    if args.command == "run" and args.gen1 is not None:
        env.pop("DEVICES_GEN1_METERS", None)  # overridden: its value must not stop the run
    try:
        settings = DevicesSettings.from_env(env)
        if args.command == "fault":
            return _fault_command(args, settings)
        return _run_command(args, settings)
    except ValidationError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
