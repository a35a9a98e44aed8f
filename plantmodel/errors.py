"""One exception root for the model, so callers can catch everything it raises in one place."""

from __future__ import annotations

from collections.abc import Callable


class PlantModelError(Exception):
    """Root of every error raised by :mod:`plantmodel`."""


class ValidationError(PlantModelError, ValueError):
    """A payload or value that does not satisfy the public contract.

    ``reason`` is a short, human-readable English sentence; the bridge stores it with the rejected
    message. A reason a person may read on a page is written ``ValidationError(N_("… %(name)s …"),
    name=value)``: :meth:`translated` then gives it in the page's language.
    """

    def __init__(self, reason: str, /, **params: object) -> None:
        text = reason % params if params else reason
        super().__init__(text)
        self.reason = text
        self.template = reason
        self.params = params

    def translated(self, gettext: Callable[[str], str], number: Callable[[float], str] | None = None) -> str:
        """The reason through ``gettext`` (the English when its template was never marked); its
        float params (measured values, limits) through ``number``, e.g. a decimal comma."""
        return translate(self.template, self.params, gettext, number)


def translate(template: str, params: dict[str, object], gettext: Callable[[str], str],
              number: Callable[[float], str] | None = None) -> str:
    """``template % params`` in the language of ``gettext`` (floats through ``number``): what a
    reason or a sentence marked ``N_()`` with its params says on a page."""
    if not params:
        return gettext(template)
    return gettext(template) % localized(params, number)


class Quantity(float):
    """A number a sentence names, with its unit: ``%s`` writes ``2.5 °C`` (English, ``:g``); a
    translated sentence writes it the page's way (see :func:`localized`)."""

    unit: str

    def __new__(cls, value: float, unit: str = "") -> Quantity:
        self = super().__new__(cls, value)
        self.unit = unit
        return self

    def __str__(self) -> str:
        return f"{float(self):g} {self.unit}".strip()


def localized(params: dict[str, object], number: Callable[[float], str] | None) -> dict[str, object]:
    """``params`` with each float (a :class:`Quantity` with its unit) written by ``number``."""
    if number is None:
        return params
    out: dict[str, object] = {}
    for key, value in params.items():
        if isinstance(value, float):
            text = number(float(value))
            unit = getattr(value, "unit", "")
            out[key] = f"{text} {unit}" if unit else text
        else:
            out[key] = value
    return out


class TopicError(ValidationError):
    """A topic that is not part of the documented topic tree."""
