"""History that stays fast: each meter's newest sample, and minute/hour rollups of every measure.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Creates ``power_readings_latest`` and the four rollup tables, then fills them from the rows already
stored (one GROUP BY per table; on a large history this is the long part of the upgrade).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

from store.migrations.helpers import ROLLUP_LEVELS, epoch_seconds, rollup_columns

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
TABLE_KW: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci", "mysql_engine": "InnoDB"}

# The measures as of this revision (frozen; a later measure comes with its own revision).
AUTOMATE = ("tank_temp_c", "ext_temp_c", "milk_kg", "product_kg", "ph", "k_mg_l", "nacl_g_l", "salmonella_ppm",
            "ecoli_ppm", "listeria_ppm")
METER = ("apower", "voltage", "current", "freq", "pf", "energy_wh", "ret_energy_wh", "temperature_c")
WIDTH = {"minute": 60, "hour": 3600}


NEW_TABLES = ("power_readings_latest", *(f"{raw}_{level}" for raw in ("readings", "power_readings")
                                         for level in ROLLUP_LEVELS))


def upgrade() -> None:
    if not context.is_offline_mode():
        # MariaDB's DDL is not transactional: a run killed half-way leaves some of these tables (and
        # the revision still 0001). They hold only what this revision derives from the stored rows:
        # start them again.
        existing = set(sa.inspect(op.get_bind()).get_table_names())
        for table in NEW_TABLES:
            if table in existing:
                op.drop_table(table)
    op.create_table("power_readings_latest",
                    sa.Column("meter_id", sa.String(length=64), nullable=False),
                    sa.Column("ts", DT, nullable=False),
                    sa.PrimaryKeyConstraint("meter_id"), **TABLE_KW)
    for level in ROLLUP_LEVELS:
        op.create_table(f"readings_{level}",
                        sa.Column("unit_id", sa.Integer(), autoincrement=False, nullable=False),
                        sa.Column("automate_no", sa.Integer(), autoincrement=False, nullable=False),
                        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
                        *[c for m in AUTOMATE for c in rollup_columns(m)],
                        sa.PrimaryKeyConstraint("unit_id", "automate_no", "bucket"), **TABLE_KW)
        op.create_table(f"power_readings_{level}",
                        sa.Column("meter_id", sa.String(length=64), nullable=False),
                        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
                        *[c for m in METER for c in rollup_columns(m)],
                        sa.PrimaryKeyConstraint("meter_id", "bucket"), **TABLE_KW)
    if context.is_offline_mode():
        return  # schema.sql: a new database has nothing to fill them from
    dialect = op.get_bind().dialect.name
    op.execute("INSERT INTO power_readings_latest (meter_id, ts) SELECT meter_id, MAX(ts) FROM power_readings "
               "GROUP BY meter_id")
    for raw, keys, measures in (("readings", "unit_id, automate_no", AUTOMATE),
                                ("power_readings", "meter_id", METER)):
        seconds = epoch_seconds(dialect, "ts")
        bucket = f"({seconds}) - ({seconds}) % 60"
        cols = ", ".join(f"{m}_n, {m}_min, {m}_max, {m}_sum" for m in measures)
        aggs = ", ".join(f"COUNT({m}), MIN({m}), MAX({m}), SUM({m})" for m in measures)
        op.execute(f"INSERT INTO {raw}_minute ({keys}, bucket, {cols}) SELECT {keys}, {bucket}, {aggs} "
                   f"FROM {raw} GROUP BY {keys}, {bucket}")
        aggs = ", ".join(f"SUM({m}_n), MIN({m}_min), MAX({m}_max), SUM({m}_sum)" for m in measures)
        op.execute(f"INSERT INTO {raw}_hour ({keys}, bucket, {cols}) SELECT {keys}, bucket - bucket % 3600, {aggs} "
                   f"FROM {raw}_minute GROUP BY {keys}, bucket - bucket % 3600")


def downgrade() -> None:
    for level in ROLLUP_LEVELS:
        op.drop_table(f"power_readings_{level}")
        op.drop_table(f"readings_{level}")
    op.drop_table("power_readings_latest")
