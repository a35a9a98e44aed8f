"""Notification mails in the plant's language (``PLANT_LANGUAGE``, French by default): the same alarm
told in French and in English, numbers and times written each language's way; the webhook's JSON is
the same in both (codes, ISO times, numbers). Needs the compiled French catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier import messages
from notifier.__main__ import build_parser
from notifier.settings import NotifierSettings
from plantmodel.errors import ValidationError
from store import models as orm

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # 10:00 in Paris
PARIS = ZoneInfo("Europe/Paris")
NNBSP = "\u202f"  # French thousands separator


def alarm(**kw: object) -> orm.Alarm:
    values: dict[str, object] = dict(
        id=41, source="units/3/automates/7", unit_id=3, automate_no=7, measure="salmonella_ppm", bound="high",
        severity="critical", state="active", value=41.5, limit_value=37.0, last_value=41.5,
        raised_at=T0 - timedelta(seconds=5))
    return orm.Alarm(**{**values, **kw})


def build(row: orm.Alarm, language: str, event: str = "raise") -> messages.Content:
    return messages.build(event, row, escalate_after_min=30, zone=PARIS, dashboard_url="https://plant.example",
                          now=T0, notification_id=12, route_name="quality", language=language)


def test_the_same_alarm_in_french_and_in_english() -> None:
    row = alarm()
    fr, en = build(row, "fr"), build(row, "en")
    assert fr.subject == ("[CRITIQUE] Alarme déclenchée : unité 3 automate 7 — Salmonelle 41,5 ppm, "
                          "au-dessus de la limite haute 37 ppm (active)")
    assert en.subject == ("[CRITICAL] Alarm raised: unit 3 automate 7 — Salmonella 41.5 ppm, "
                          "above the high limit 37 ppm (active)")
    assert fr.body.startswith("Alarme déclenchée : unité 3 automate 7\n")
    for line in ("Mesure :          Salmonelle",
                 "Valeur :          41,5 ppm (au déclenchement), dernière valeur 41,5 ppm",
                 "Limite :          37 ppm (haute)", "Gravité :         critique", "État :            active",
                 "Déclenchée :      21 nov. 2026 09:59:55 CET", "Acquittée :       pas encore",
                 "Tableau de bord : https://plant.example/alarms",
                 "-- envoyé par le service de notification de l'usine (route 'quality', notification 12)"):
        assert line in fr.body.splitlines(), line
    for line in ("Measure:      Salmonella", "Value:        41.5 ppm (raised), latest 41.5 ppm",
                 "Limit:        37 ppm (high)", "Severity:     critical", "Raised:       21 Nov 2026 09:59:55 CET",
                 "Acknowledged: not yet", "Dashboard:    https://plant.example/alarms",
                 "-- sent by the plant's notifier (route 'quality', notification 12)"):
        assert line in en.body.splitlines(), line
    # The webhook's JSON is for machines: the same codes, ISO times and numbers in every language.
    assert fr.payload == en.payload
    assert fr.payload["alarm"]["severity"] == "critical" and fr.payload["alarm"]["value"] == 41.5
    assert fr.payload["sent_at"] == "2026-11-21T09:00:00.000Z"


def test_clear_and_escalation_with_large_numbers() -> None:
    row = alarm(measure="milk_kg", value=4612.5, limit_value=4607.0, last_value=4400.0, state="cleared",
                cleared_at=T0 + timedelta(minutes=3), acknowledged_at=T0 + timedelta(minutes=4),
                acknowledged_by="operator")
    fr = build(row, "fr", "clear")
    assert fr.subject == (f"[CRITIQUE] Alarme terminée : unité 3 automate 7 — Poids du lait en cuve : retour à "
                          f"4{NNBSP}400 kg (limite 4{NNBSP}607 kg) (terminée)")
    assert "Terminée :        21 nov. 2026 10:03:00 CET" in fr.body.splitlines()
    assert "Acquittée :       21 nov. 2026 10:04:00 CET par operator" in fr.body.splitlines()
    en = build(row, "en", "clear")
    assert en.subject == ("[CRITICAL] Alarm cleared: unit 3 automate 7 — Milk in tank back to 4,400 kg "
                          "(limit 4,607 kg) (cleared)")
    assert build(row, "fr", "escalate").subject.startswith("[CRITIQUE] Non acquittée depuis 30 min : ")
    assert build(row, "en", "escalate").subject.startswith("[CRITICAL] Unacknowledged for 30 min: ")


def test_a_meter_and_a_low_limit() -> None:
    row = alarm(source="meters/shellypro1pm-a8032ab1c2d3", unit_id=None, automate_no=None, measure="voltage",
                bound="low", severity="warning", value=187.25, limit_value=195.0, last_value=187.25)
    assert build(row, "fr").subject == ("[AVERTISSEMENT] Alarme déclenchée : compteur shellypro1pm-a8032ab1c2d3 — "
                                        "Tension 187,25 V, en dessous de la limite basse 195,0 V (active)")
    assert build(row, "en").subject == ("[WARNING] Alarm raised: meter shellypro1pm-a8032ab1c2d3 — "
                                        "Voltage 187.25 V, below the low limit 195.0 V (active)")


def test_the_language_comes_from_plant_language() -> None:
    assert NotifierSettings.from_env({}).language == "fr"  # Au Bon Beurre reads French
    assert NotifierSettings().language == "fr"
    assert NotifierSettings.from_env({"PLANT_LANGUAGE": "en"}).language == "en"
    assert NotifierSettings.from_env({"PLANT_LANGUAGE": " FR "}).language == "fr"
    with pytest.raises(ValidationError):
        NotifierSettings.from_env({"PLANT_LANGUAGE": "de"})
    assert "PLANT_LANGUAGE" in build_parser().format_help()
