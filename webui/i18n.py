"""The language of each request, and what templates and scripts need to speak it.

A page is in the user's chosen language (``users.language``, set in the header's menu or by an admin),
else the best of the browser's ``Accept-Language`` we speak, else the plant's (``PLANT_LANGUAGE``).
The log-in page has no user: it follows the browser. Flask-Babel holds the choice per request;
:mod:`plantmodel.i18n` holds the catalogs and the formatting shared with the notifier and the reports.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, has_request_context, request
from flask_babel import Babel, get_locale, gettext

from plantmodel.i18n import (
    LANGUAGE_NAMES,
    TRANSLATIONS_DIR,
    format_number,
    format_plain,
    js_catalog,
    plural_indices,
)
from webui.auth import AuthUser, current_user
from webui.state import web_state


def select_language() -> str:
    """Flask-Babel's locale selector: the logged-in user's language (read from the database)."""
    return language_for(current_user() if has_request_context() else None)


def language_for(user: AuthUser | None) -> str:
    """``user``'s chosen language, else the browser's, else the plant's: the one order every
    answer follows (a Socket.IO answer passes the user read at connect time, an error answer
    ``None`` when the database that holds the choice is down)."""
    if user is not None and user.language in LANGUAGE_NAMES:
        return user.language
    return browser_language() or web_state().settings.plant_language


def browser_language() -> str | None:
    """The first language the browser asks for (by its quality order) that we speak, if any:
    ``fr-FR,en-US;q=0.7`` is French (a regional tag counts for its language; Werkzeug's best_match
    would prefer a lower-ranked exact ``en``); ``*`` is no choice."""
    if not has_request_context():
        return None
    for tag, _quality in request.accept_languages:  # sorted by quality, then order
        code = tag.replace("_", "-").split("-")[0].lower()
        if code in LANGUAGE_NAMES:
            return code
    return None


def language() -> str:
    """This request's language code (``fr``, ``en``)."""
    return str(get_locale() or web_state().settings.plant_language).split("_")[0]


def page_i18n() -> dict[str, Any]:
    """The pages' scripts' share of ``page_config``: the language, its catalog and the BCP 47 tag
    ``Intl`` formats numbers and dates with (British English: a 24-hour clock)."""
    lang = language()
    return {"language": lang, "intl": "en-GB" if lang == "en" else lang, "messages": js_catalog(lang),
            "plural": plural_indices(lang)}


def install(app: Flask) -> None:
    Babel(app, locale_selector=select_language, default_translation_directories=str(TRANSLATIONS_DIR))

    @app.context_processor
    def _languages() -> dict[str, Any]:
        return {"language": language, "language_names": LANGUAGE_NAMES, "format_number": _format_number,
                "role_names": role_names()}


def role_names() -> dict[str, str]:
    """The roles as people read them (the API and the database keep the English codes)."""
    return {"viewer": gettext("viewer"), "operator": gettext("operator"), "admin": gettext("admin")}


def number_text(value: float) -> str:
    """A number inside a sentence of this request (a limit in an error, a confirmation)."""
    return format_plain(value, language())


def _format_number(value: float | None, decimals: int = 2) -> str:
    return format_number(value, decimals, language())
