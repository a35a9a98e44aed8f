"""Measures, their normal ranges (DOMAIN.md §1) and the limits beyond which a value is absurd.

A value outside its *normal* range is a process problem and raises an alarm; a value outside its
*plausible* range cannot be a real measurement and the message carrying it is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from plantmodel.i18n import N_


@dataclass(frozen=True, slots=True)
class Measure:
    """One measure's definition. An automate measure's definition is all there is of it: the
    reading's field, the database columns and the dashboard's labels are derived from it
    (``tests/unit/test_measure_definition.py`` checks that they agree)."""

    name: str
    label: str  # English, marked N_(): translated where it is shown (plantmodel/translations)
    unit: str
    low: float | None  # normal range; None = no default threshold on that side
    high: float | None
    step: float  # resolution the probe reports in (and the simulator moves in)
    plausible_min: float
    plausible_max: float
    severity: str = "warning"
    deadband: float = 0.0  # how far back inside the range a value must come to clear an alarm
    short: str = ""  # the overview cell's label (the full label is its tooltip); "" = the label
    key: bool = False  # one of the few values a phone shows of each overview cell (plus any in alarm)
    # Added after readings were stored: the rows stored before have no value (its column is nullable).
    added_later: bool = False

    def __post_init__(self) -> None:
        if not self.short:
            object.__setattr__(self, "short", self.label)  # frozen: set once, here

    @property
    def decimals(self) -> int:
        return 0 if self.step >= 1 else len(f"{self.step:.6f}".rstrip("0").split(".")[1])


def _m(name: str, label: str, unit: str, low: float | None, high: float | None, step: float,
       pmin: float, pmax: float, severity: str = "warning", deadband: float | None = None, *,
       short: str = "", key: bool = False, added_later: bool = False) -> Measure:
    # Default deadband: two steps, so a probe jittering by one step at the limit cannot flap.
    return Measure(name, label, unit, low, high, step, pmin, pmax, severity,
                   2 * step if deadband is None else deadband, short, key, added_later)


# An automate's measures, in the order readings, columns, tiles and charts list them. Adding one:
# its definition here, plus one database migration adding its columns (see README, "Adding a measure").
AUTOMATE_MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        _m("tank_temp_c", N_("Tank temperature"), "°C", 2.5, 4.0, 0.1, -40, 150, short=N_("Tank"), key=True),
        _m("ext_temp_c", N_("Outside temperature"), "°C", 8.0, 14.0, 0.1, -60, 80, short=N_("Outside")),
        _m("milk_kg", N_("Milk in tank"), "kg", 3512, 4607, 1, 0, 50_000, short=N_("Milk")),
        _m("product_kg", N_("Finished product"), "kg", None, None, 1, 0, 50_000, short=N_("Product")),
        _m("ph", N_("pH"), "pH", 6.8, 7.2, 0.1, 0, 14, key=True),
        _m("k_mg_l", N_("Potassium K+"), "mg/L", 35, 47, 1, 0, 100_000, short=N_("K+")),
        _m("nacl_g_l", N_("NaCl"), "g/L", 1.0, 1.7, 0.1, 0, 400, key=True),
        _m("salmonella_ppm", N_("Salmonella"), "ppm", 17, 37, 1, 0, 1_000_000, "critical", short=N_("Salm.")),
        _m("ecoli_ppm", N_("E. coli"), "ppm", 35, 49, 1, 0, 1_000_000, "critical"),
        _m("listeria_ppm", N_("Listeria"), "ppm", 28, 54, 1, 0, 1_000_000, "critical"),
    )
}

# Shelly Pro 1PM switch measures, named after the columns they are stored in.
METER_MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        # 3500 W: the ALERT_THRESHOLD of the original Shelly collector.
        _m("apower", N_("Active power"), "W", None, 3500, 0.1, -100_000, 100_000, "warning", 175),
        _m("voltage", N_("Voltage"), "V", None, None, 0.1, 0, 1_000),
        _m("current", N_("Current"), "A", None, None, 0.001, 0, 1_000),
        _m("freq", N_("Frequency"), "Hz", None, None, 0.01, 0, 1_000),
        _m("pf", N_("Power factor"), "", None, None, 0.01, -1, 1),
        _m("energy_wh", N_("Energy"), "Wh", None, None, 0.001, 0, 1e13),
        _m("ret_energy_wh", N_("Returned energy"), "Wh", None, None, 0.001, 0, 1e13),
        _m("temperature_c", N_("Device temperature"), "°C", None, None, 0.1, -60, 200),
    )
}

# A meter's error flags (Gen2 ``errors``, Gen1 ``overtemperature`` / ``relay/0`` = ``overpower``): 1 while
# the device reports it, else 0. Not columns (``power_readings.errors`` keeps the device's own list):
# they exist to raise alarms through the same thresholds as the measures. ``device_error`` is any
# error the device reports that is not one of the named ones (newer firmware adds some).
METER_ERRORS: dict[str, Measure] = {
    m.name: m
    for m in (
        _m("overtemp", N_("Device over-temperature"), "", None, 0.5, 1, 0, 1, "critical", 0),
        _m("overpower", N_("Over-power (output cut)"), "", None, 0.5, 1, 0, 1, "critical", 0),
        _m("overvoltage", N_("Over-voltage"), "", None, 0.5, 1, 0, 1, "critical", 0),
        _m("device_error", N_("Other device error"), "", None, 0.5, 1, 0, 1, "warning", 0),
    )
}

# A source's health, raised by the bridge's timer rather than by a value a device sent (a silent
# probe sends nothing to evaluate). Not columns, not chart measures: alarm-only, like METER_ERRORS,
# so that their thresholds are set per scope like any other. ``no_data``: periods, to 0.01 (the
# automate's report period, the meter period) without a valid message; ``probe_fault``: messages
# rejected in a row since the last valid one. 2.5: two and a half silent periods; the third rejection.
# Critical: an automate carries the bacteria probes, and one that is silent or unreadable is a
# critical control point without monitoring (lower it per scope, e.g. for meters, if that is too loud).
SOURCE_HEALTH: dict[str, Measure] = {
    m.name: m
    for m in (
        _m("no_data", N_("No data"), N_("periods"), None, 2.5, 0.01, 0, 1e12, "critical", 0),
        _m("probe_fault", N_("Probe fault (messages rejected)"), N_("messages"), None, 2.5, 1, 0, 1e12, "critical", 0),
    )
}
AUTOMATE_ALARM_MEASURES: dict[str, Measure] = {**AUTOMATE_MEASURES, **SOURCE_HEALTH}  # what an automate alarms on
METER_ALARM_MEASURES: dict[str, Measure] = {**METER_MEASURES, **METER_ERRORS, **SOURCE_HEALTH}  # what a meter alarms on

MEASURES: dict[str, Measure] = {**AUTOMATE_ALARM_MEASURES, **METER_ALARM_MEASURES}

AUTOMATE_TYPE_MIN = 0x0000BA20
AUTOMATE_TYPE_MAX = 0x0000BA2F


def format_automate_type(code: int) -> str:
    """``0xBA27`` -> ``"0x0000BA27"`` (the form readings carry)."""
    return f"0x{code:08X}"
