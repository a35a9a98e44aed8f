"""Baseline: the schema of the last release before migrations (21 tables).

Revision ID: 0001
Revises:
Create Date: 2026-12-02

On an empty database it creates the tables. On a database created before migrations existed (by
``schema.sql`` or the services' ``create_all``, of this release or an older one) it adopts it:
tables, columns and indexes that are missing are added (an older release lacked some nullable
columns and indexes), nothing that exists is touched. Either way the database ends at this revision.
Frozen: never edit it; change the schema in a new revision.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The types as this revision defines them (not imported from store.models, which moves on).
DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_existing: dict[str, set[str]] = {}  # table -> its columns, on a database from before migrations
_indexes: dict[str, set[str]] = {}


def _table(name: str, *items: Any, **kw: Any) -> None:
    if name not in _existing:
        op.create_table(name, *items, **kw)
        return
    for item in items:
        if isinstance(item, sa.Column) and item.name not in _existing[name]:
            if not item.nullable:
                raise RuntimeError(f"cannot adopt table {name}: its column {item.name} is missing and not nullable")
            op.add_column(name, item)


def _index(name: str, table: str, columns: list[str], unique: bool = False) -> None:
    if table not in _existing or name not in _indexes[table]:
        op.create_index(name, table, columns, unique=unique)


def upgrade() -> None:
    _existing.clear()
    _indexes.clear()
    if not context.is_offline_mode():
        inspector = sa.inspect(op.get_bind())
        for table in inspector.get_table_names():
            _existing[table] = {c["name"] for c in inspector.get_columns(table)}
            _indexes[table] = {i["name"] for i in inspector.get_indexes(table) if i["name"]}
            _indexes[table] |= {u["name"] for u in inspector.get_unique_constraints(table) if u["name"]}
    _table('alarms',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=96), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('automate_no', sa.Integer(), nullable=True),
    sa.Column('meter_id', sa.String(length=64), nullable=True),
    sa.Column('measure', sa.String(length=32), nullable=False),
    sa.Column('bound', sa.String(length=4), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('limit_value', sa.Double(), nullable=False),
    sa.Column('last_value', sa.Double(), nullable=False),
    sa.Column('raised_at', DT, nullable=False),
    sa.Column('cleared_at', DT, nullable=True),
    sa.Column('acknowledged_at', DT, nullable=True),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('ack_note', sa.Text(), nullable=True),
    sa.Column('ack_disposition', sa.String(length=8), nullable=True),
    sa.Column('detail', sa.String(length=512), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'measure', 'raised_at', name='uq_alarms_source_measure_raised'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_alarms_acknowledged_at', 'alarms', ['acknowledged_at'], unique=False)
    _index('ix_alarms_raised_at', 'alarms', ['raised_at'], unique=False)
    _index('ix_alarms_state_source', 'alarms', ['state', 'source'], unique=False)
    _table('audit_log',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('at', DT, nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prev_hash', name='uq_audit_log_prev_hash'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    _table('automate_sequences',
    sa.Column('unit_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('automate_no', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('confirmed', sa.BigInteger(), nullable=False),
    sa.Column('newest', sa.BigInteger(), nullable=False),
    sa.Column('newest_ts', DT, nullable=True),
    sa.Column('max_ts', DT, nullable=True),
    sa.Column('ahead', sa.Text(), nullable=False),
    sa.Column('gap_since', DT, nullable=True),
    sa.Column('boot', sa.String(length=32), nullable=True),
    sa.Column('prev_boot', sa.String(length=32), nullable=True),
    sa.Column('updated_at', DT, nullable=False),
    sa.PrimaryKeyConstraint('unit_id', 'automate_no'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('device_status',
    sa.Column('device', sa.String(length=96), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('ts', DT, nullable=False),
    sa.Column('received_at', DT, nullable=False),
    sa.PrimaryKeyConstraint('device'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('device_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device', sa.String(length=96), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('created_at', DT, nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('revoked_at', DT, nullable=True),
    sa.Column('revoked_by', sa.String(length=64), nullable=True),
    sa.Column('last_used_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash', name='uq_device_tokens_token_hash'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_device_tokens_device', 'device_tokens', ['device'], unique=False)
    _table('devices',
    sa.Column('device', sa.String(length=96), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=64), nullable=True),
    sa.Column('generation', sa.Integer(), nullable=True),
    sa.Column('firmware', sa.String(length=96), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('first_seen', DT, nullable=True),
    sa.Column('last_seen', DT, nullable=True),
    sa.Column('removed_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('device'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('meter_states',
    sa.Column('meter_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('updated_at', DT, nullable=False),
    sa.Column('energy_offset_wh', sa.Double(), nullable=True),
    sa.Column('last_ts', DT, nullable=True),
    sa.PrimaryKeyConstraint('meter_id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('meters',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('first_seen', DT, nullable=False),
    sa.Column('last_seen', DT, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('notification_attempts',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('notification_id', sa.BigInteger(), nullable=False),
    sa.Column('at', DT, nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error', sa.String(length=512), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_notification_attempts_notification', 'notification_attempts', ['notification_id'], unique=False)
    _table('notification_routes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=1024), nullable=False),
    sa.Column('min_severity', sa.String(length=16), nullable=False),
    sa.Column('scope', sa.String(length=96), nullable=False),
    sa.Column('events', sa.String(length=32), nullable=False),
    sa.Column('escalate_after_min', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', DT, nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('notifications',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('alarm_id', sa.BigInteger(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=8), nullable=False),
    sa.Column('created_at', DT, nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', DT, nullable=True),
    sa.Column('sent_at', DT, nullable=True),
    sa.Column('last_error', sa.String(length=512), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alarm_id', 'route_id', 'event', name='uq_notifications_alarm_route_event'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_notifications_status_next', 'notifications', ['status', 'next_attempt_at'], unique=False)
    _table('rejected_messages',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('received_at', DT, nullable=False),
    sa.Column('topic', sa.String(length=512), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('payload_bytes', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=False),
    sa.Column('source', sa.String(length=96), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_rejected_messages_received_at', 'rejected_messages', ['received_at'], unique=False)
    _index('ix_rejected_messages_source', 'rejected_messages', ['source', 'received_at'], unique=False)
    _table('source_versions',
    sa.Column('source', sa.String(length=96), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('switch_actions',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('meter_id', sa.String(length=64), nullable=False),
    sa.Column('requested_at', DT, nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.Column('from_state', sa.String(length=8), nullable=True),
    sa.Column('to_state', sa.String(length=8), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('answered_at', DT, nullable=True),
    sa.Column('detail', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_switch_actions_meter', 'switch_actions', ['meter_id', 'requested_at'], unique=False)
    _table('threshold_changes',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('changed_at', DT, nullable=False),
    sa.Column('changed_by', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=96), nullable=False),
    sa.Column('measure', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_threshold_changes_changed_at', 'threshold_changes', ['changed_at'], unique=False)
    _table('thresholds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=96), nullable=False),
    sa.Column('measure', sa.String(length=32), nullable=False),
    sa.Column('low', sa.Double(), nullable=True),
    sa.Column('high', sa.Double(), nullable=True),
    sa.Column('deadband', sa.Double(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('updated_at', DT, nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('inherit_low', sa.Boolean(), nullable=True),
    sa.Column('inherit_high', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope', 'measure', name='uq_thresholds_scope_measure'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('units',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('created_at', DT, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', DT, nullable=False),
    sa.Column('updated_at', DT, nullable=False),
    sa.Column('last_login_at', DT, nullable=True),
    sa.Column('session_version', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash', name='uq_users_token_hash'),
    sa.UniqueConstraint('username', name='uq_users_username'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('automates',
    sa.Column('unit_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('automate_no', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('type', sa.String(length=10), nullable=False),
    sa.Column('created_at', DT, nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name='fk_automates_unit'),
    sa.PrimaryKeyConstraint('unit_id', 'automate_no'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _table('power_readings',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('meter_id', sa.String(length=64), nullable=False),
    sa.Column('ts', DT, nullable=False),
    sa.Column('received_at', DT, nullable=False),
    sa.Column('stored_at', DT, nullable=True),
    sa.Column('output', sa.Boolean(), nullable=True),
    sa.Column('apower', sa.Double(), nullable=True),
    sa.Column('voltage', sa.Double(), nullable=True),
    sa.Column('current', sa.Double(), nullable=True),
    sa.Column('freq', sa.Double(), nullable=True),
    sa.Column('pf', sa.Double(), nullable=True),
    sa.Column('energy_wh', sa.Double(), nullable=True),
    sa.Column('ret_energy_wh', sa.Double(), nullable=True),
    sa.Column('temperature_c', sa.Double(), nullable=True),
    sa.Column('errors', sa.String(length=255), nullable=True),
    sa.Column('energy_offset_wh', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name='fk_power_readings_meter'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('meter_id', 'ts', name='uq_power_readings_meter_ts'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_power_readings_received_at', 'power_readings', ['received_at'], unique=False)
    _index('ix_power_readings_ts', 'power_readings', ['ts'], unique=False)
    _table('readings',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('automate_no', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('ts', DT, nullable=False),
    sa.Column('received_at', DT, nullable=False),
    sa.Column('stored_at', DT, nullable=True),
    sa.Column('tank_temp_c', sa.Double(), nullable=False),
    sa.Column('ext_temp_c', sa.Double(), nullable=False),
    sa.Column('milk_kg', sa.Double(), nullable=False),
    sa.Column('product_kg', sa.Double(), nullable=False),
    sa.Column('ph', sa.Double(), nullable=False),
    sa.Column('k_mg_l', sa.Double(), nullable=False),
    sa.Column('nacl_g_l', sa.Double(), nullable=False),
    sa.Column('salmonella_ppm', sa.Double(), nullable=False),
    sa.Column('ecoli_ppm', sa.Double(), nullable=False),
    sa.Column('listeria_ppm', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id', 'automate_no'], ['automates.unit_id', 'automates.automate_no'],
                            name='fk_readings_automate'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('unit_id', 'automate_no', 'ts', name='uq_readings_automate_ts'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    _index('ix_readings_received_at', 'readings', ['received_at'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not downgraded: restore a backup instead")
