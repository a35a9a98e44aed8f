"""Placeholder secrets: the example values of ``.env.example`` and their kin. A service refuses
them at start, so that a copied example never goes into production (a forged admin cookie took
one try with the example SECRET_KEY)."""

from __future__ import annotations

from plantmodel.errors import ValidationError

PLACEHOLDERS = ("change-me", "changeme", "change_me", "secret", "placeholder", "xxx")


def is_placeholder(value: str) -> bool:
    return any(p in value.lower() for p in PLACEHOLDERS)


def refuse_placeholder(name: str, value: str, hint: str = "") -> str:
    """``value`` unless it is a placeholder; the error names the variable, never the value."""
    if is_placeholder(value):
        raise ValidationError(f"{name} is a placeholder{f' ({hint})' if hint else ''}: set a real secret")
    return value
