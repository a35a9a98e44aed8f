"""One exception root for the model, so callers can catch everything it raises in one place."""


class PlantModelError(Exception):
    """Root of every error raised by :mod:`plantmodel`."""


class ValidationError(PlantModelError, ValueError):
    """A payload or value that does not satisfy the public contract.

    ``reason`` is a short, human-readable sentence; the bridge stores it with the rejected message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TopicError(ValidationError):
    """A topic that is not part of the documented topic tree."""
