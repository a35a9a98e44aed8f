"""Operations revisions share. Revisions stay frozen: they call these with explicit names, never
with the current list of measures (which moves on)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The columns a measure has in each rollup table (see store.models._rollup_table).
ROLLUP_LEVELS = ("minute", "hour")


def rollup_columns(measure: str) -> list[sa.Column[object]]:
    return [sa.Column(f"{measure}_n", sa.Integer(), nullable=False),
            sa.Column(f"{measure}_min", sa.Double(), nullable=True),
            sa.Column(f"{measure}_max", sa.Double(), nullable=True),
            sa.Column(f"{measure}_sum", sa.Double(), nullable=True)]


def add_measure(kind: str, measure: str) -> None:
    """A new measure's columns: ``kind`` ``automate`` (table readings) or ``meter`` (power_readings),
    and its count/min/max/sum in both rollup tables. The raw column is nullable (the rows stored
    before it have no value); the counts start at 0 for the rollup rows that exist.

    Only the columns still missing are added: MariaDB's DDL is not transactional, so an upgrade
    killed half-way leaves some of them, with the revision unchanged, and is simply run again."""
    inspector = sa.inspect(op.get_bind())

    def missing(table: str) -> set[str]:
        return {c.name for c in [sa.Column(measure, sa.Double()), *rollup_columns(measure)]} - {
            c["name"] for c in inspector.get_columns(table)}

    raw = {"automate": "readings", "meter": "power_readings"}[kind]
    if measure in missing(raw):
        op.add_column(raw, sa.Column(measure, sa.Double(), nullable=True))
    for level in ROLLUP_LEVELS:
        table = f"{raw}_{level}"
        absent = missing(table)
        if absent:
            with op.batch_alter_table(table) as batch:
                for col in rollup_columns(measure):
                    if col.name in absent:
                        if col.name.endswith("_n"):
                            col.server_default = sa.DefaultClause("0")  # existing rows: none counted
                        batch.add_column(col)
        # (again on a rerun: the default may be what the killed run left)
        with op.batch_alter_table(table) as batch:
            batch.alter_column(f"{measure}_n", existing_type=sa.Integer(), existing_nullable=False,
                               server_default=None)  # the ORM has no default: the writer sets it


def epoch_seconds(dialect: str, column: str) -> str:
    """SQL for a naive-UTC DATETIME column as epoch seconds (whole), without any session time zone."""
    if dialect in ("mysql", "mariadb"):
        return f"TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {column})"
    return f"CAST(strftime('%s', {column}) AS INTEGER)"
