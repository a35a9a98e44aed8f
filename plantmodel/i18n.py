"""The languages people read the product in, and how a value is written for them.

English is the source language: every user-visible string is written in English and marked for
translation (``_()`` in Python and templates, ``N_()`` where it is only defined, ``_()`` and
``ngettext()`` in the pages' scripts). The catalogs are ``plantmodel/translations/<lang>/LC_MESSAGES/``:
``messages.po`` (Python and templates) and ``js.po`` (the pages' scripts), edited as text and
compiled by ``python -m webui translations compile`` (README, "Languages"). Babel does the locale
work (plural rules, number and date patterns from CLDR), the same for the web UI, the reports and
the notifier.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.messages.plurals import get_plural
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from plantmodel.errors import PlantModelError, ValidationError

log = logging.getLogger(__name__)

SOURCE_LANGUAGE = "en"
# Every language the product speaks, with its name written in itself (the language menu).
LANGUAGE_NAMES: dict[str, str] = {"fr": "Français", "en": "English"}
LANGUAGES: tuple[str, ...] = tuple(LANGUAGE_NAMES)
DEFAULT_LANGUAGE = "fr"  # Au Bon Beurre is a Breton company; its staff read French
DOMAINS = ("messages", "js")  # Python and templates; the pages' scripts
TRANSLATIONS_DIR = Path(__file__).parent / "translations"


def N_(message: str) -> str:
    """Marks ``message`` for extraction where it is defined; it is translated where it is shown."""
    return message


def check_language(value: str, what: str = "PLANT_LANGUAGE") -> str:
    """``value`` if it is a language the product speaks, else a :class:`ValidationError`."""
    code = value.strip().lower()
    if code not in LANGUAGE_NAMES:
        raise ValidationError(N_("%(what)s=%(value)s is not one of %(languages)s"), what=what, value=repr(value),
                              languages=", ".join(LANGUAGES))
    return code


def language_from_env(env: Mapping[str, str]) -> str:
    """``PLANT_LANGUAGE`` (checked), else French: the language of pages for a browser that asks for
    none of ours, of notifications and of reports made without a request."""
    value = env.get("PLANT_LANGUAGE", "").strip()
    return check_language(value) if value else DEFAULT_LANGUAGE


def catalog_paths(language: str, domain: str, directory: Path = TRANSLATIONS_DIR) -> tuple[Path, Path]:
    """The ``.po`` a translator edits and the ``.mo`` compiled from it."""
    base = directory / language / "LC_MESSAGES" / domain
    return base.with_suffix(".po"), base.with_suffix(".mo")


def stale_catalogs(directory: Path = TRANSLATIONS_DIR) -> list[str]:
    """The compiled catalogs that are missing or older than their ``.po`` (empty when all is built)."""
    out = []
    for language in LANGUAGES:
        if language == SOURCE_LANGUAGE:
            continue
        for domain in DOMAINS:
            po, mo = catalog_paths(language, domain, directory)
            if not mo.exists() or (po.exists() and mo.stat().st_mtime < po.stat().st_mtime):
                out.append(str(mo))
    return out


class CatalogsNotCompiled(PlantModelError):
    """A service started without its compiled translations (it would show English silently)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"translations not compiled (or older than their .po): {', '.join(missing)}; "
                         "run: python -m webui translations compile")
        self.missing = missing


def require_compiled(directory: Path = TRANSLATIONS_DIR) -> None:
    """Refuse to start without current compiled catalogs: a French plant would read English pages."""
    missing = stale_catalogs(directory)
    if missing:
        raise CatalogsNotCompiled(missing)


@lru_cache(maxsize=16)
def translations(language: str, domain: str = "messages") -> NullTranslations:
    """The compiled catalog of ``language`` (the source language's is the identity)."""
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [language], domain=domain)


def js_catalog(language: str) -> dict[str, str | list[str]]:
    """The pages' scripts' catalog as JSON: {msgid: text}, plural entries {msgid: [forms…]}."""
    catalog: dict[str, str | list[str]] = {}
    found = translations(language, "js")
    raw = getattr(found, "_catalog", {})
    for key, text in raw.items():
        if not key:
            continue  # the header
        if isinstance(key, tuple):
            msgid, index = key
            forms = catalog.setdefault(msgid, [])
            assert isinstance(forms, list)
            forms.extend([""] * (index + 1 - len(forms)))
            forms[index] = text
        elif text:
            catalog[key] = text
    return catalog


# Counts that show every CLDR plural category of the languages we speak (1 000 000 is French "many").
_PLURAL_SAMPLES = (0, 1, 2, 3, 5, 11, 21, 100, 101, 1_000_000, 2_000_000)


def plural_indices(language: str) -> dict[str, int]:
    """{CLDR category ("one", "many", "other"): index of the catalog's plural form}: the pages'
    scripts pick a form with ``Intl.PluralRules``, which names categories, not indices."""
    rule = _locale(language).plural_form
    if language == SOURCE_LANGUAGE:
        return {rule(n): 0 if n == 1 else 1 for n in _PLURAL_SAMPLES}
    expr = gettext.c2py(get_plural(language).plural_expr)
    return {rule(n): expr(n) for n in _PLURAL_SAMPLES}


def format_number(value: float | int | Decimal | None, decimals: int, language: str) -> str:
    """``4 012,5`` in French (narrow no-break space, decimal comma), ``4,012.5`` in English; ``—``
    for a missing value. Exactly ``decimals`` digits after the separator."""
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * decimals if decimals > 0 else "")
    return format_decimal(value, format=pattern, locale=_locale(language), decimal_quantization=True)


def format_plain(value: float, language: str) -> str:
    """A number as written in a sentence: as many decimals as it has (up to 3), grouped: ``2 000,5``."""
    return format_decimal(value, locale=_locale(language))


def format_time(ts: datetime, zone: tzinfo, language: str, *, seconds: bool = False,
                with_zone: bool = True) -> str:
    """``1 déc. 2026 20:25 CET`` / ``1 Dec 2026 20:25 CET``: a date a person reads, 24-hour clock,
    in ``zone`` (named, unless ``with_zone`` is false)."""
    pattern = "d MMM y HH:mm:ss" if seconds else "d MMM y HH:mm"
    text = format_datetime(ts, pattern, tzinfo=zone, locale=_locale(language))
    return f"{text} {ts.astimezone(zone).strftime('%Z')}" if with_zone else text


@lru_cache(maxsize=8)
def _locale(language: str) -> Locale:
    # English is written the British way: a 24-hour clock and day-month-year, as the plant reads it.
    return Locale.parse("en_GB" if language == "en" else language)
