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

    def translated(self, gettext: Callable[[str], str]) -> str:
        """The reason through ``gettext`` (the English when its template was never marked)."""
        return gettext(self.template) % self.params if self.params else gettext(self.template)


class TopicError(ValidationError):
    """A topic that is not part of the documented topic tree."""
