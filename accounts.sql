-- Au Bon Beurre telemetry: the five database accounts and their rights (least privilege).
--
--   plant_admin       the administrator: everything on the database, DDL included (schema upgrades)
--   plant_delegate    the delegated administrator: reads everything; manages users, thresholds (with
--                     their audit trail) and devices; no DDL
--   plant_collector   the bridge: writes telemetry, alarms, device state and rejected messages; reads
--                     the thresholds; cannot see users or the threshold audit, change thresholds,
--                     delete or edit readings, or run DDL
--   plant_datavision  the web UI: reads the plant; writes only acknowledgements, thresholds (and
--                     their audit) and users; cannot insert or edit readings, delete alarms, run DDL
--   plant_retention   the retention job (python -m store retention): reads and deletes old rows of
--                     the readings, their rollups and rejected_messages; reads the schema revision;
--                     inserts or updates nothing, sees nothing else, no DDL
--
-- It also seeds the default alarm thresholds (at the end): the collector may not write them.
--
-- Run it as root (or a DBA who may CREATE USER and GRANT), AFTER schema.sql (a GRANT on a table
-- needs the table), on the database it is for: that database is the session's default one, so the
-- database name is whatever the client selects. Passwords are never in this file: set them as user
-- variables in the same session first, e.g. with accounts.sh (which reads them from the environment
-- and is also the MariaDB docker image's init script) or with `python -m store accounts`.
-- By hand:
--   mariadb -u root -p plant          (then, at the prompt:)
--   SET @admin_password = '…', @delegate_password = '…', @collector_password = '…', @datavision_password = '…',
--       @retention_password = '…';
--   SOURCE accounts.sql
--
-- Re-running it is safe and is how grants and passwords are updated: each account gets the password
-- given now and exactly the grants below (whatever it held before, on any database, is revoked
-- first: an account serves one database).
--
-- Why some UPDATE grants are wide: `INSERT … ON DUPLICATE KEY UPDATE` (the bridge's idempotent
-- writes, store/queries.py) needs UPDATE on every column it inserts, not only on those it updates.
-- readings, power_readings and rejected_messages are written with plain INSERTs: there the collector
-- has no UPDATE (stored data stays as it was stored).

-- Refuse to run without a database or with a missing / placeholder password (one clear error).
SET @plant_accounts_problem = CASE
    WHEN DATABASE() IS NULL THEN
        'no database selected: run accounts.sql on the plant database (mariadb … plant < accounts.sql)'
    WHEN COALESCE(@admin_password, '') = '' THEN '@admin_password is not set'
    WHEN COALESCE(@delegate_password, '') = '' THEN '@delegate_password is not set'
    WHEN COALESCE(@collector_password, '') = '' THEN '@collector_password is not set'
    WHEN COALESCE(@datavision_password, '') = '' THEN '@datavision_password is not set'
    WHEN COALESCE(@retention_password, '') = '' THEN '@retention_password is not set'
    WHEN CONCAT_WS(' ', @admin_password, @delegate_password, @collector_password, @datavision_password,
                   @retention_password)
         REGEXP 'change-me|changeme|change_me|secret|placeholder|xxx' THEN
        'a password is a placeholder (change-me…): set real secrets'
    ELSE NULL
END;
SET @plant_accounts_stmt = IF(@plant_accounts_problem IS NULL, 'DO 0',
    CONCAT('SIGNAL SQLSTATE ''45000'' SET MESSAGE_TEXT = ', QUOTE(CONCAT('accounts.sql: ', @plant_accounts_problem))));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;

-- QUOTE() escapes with backslashes: make sure this session reads them as escapes.
SET @plant_accounts_mode = @@SESSION.sql_mode;
SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '');

-- Create each account (if missing) and set its password (always: re-running rotates passwords).
SET @plant_accounts_stmt = CONCAT('CREATE USER IF NOT EXISTS plant_admin@''%'' IDENTIFIED BY ', QUOTE(@admin_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;
SET @plant_accounts_stmt = CONCAT('ALTER USER plant_admin@''%'' IDENTIFIED BY ', QUOTE(@admin_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;

SET @plant_accounts_stmt = CONCAT('CREATE USER IF NOT EXISTS plant_delegate@''%'' IDENTIFIED BY ', QUOTE(@delegate_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;
SET @plant_accounts_stmt = CONCAT('ALTER USER plant_delegate@''%'' IDENTIFIED BY ', QUOTE(@delegate_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;

SET @plant_accounts_stmt = CONCAT('CREATE USER IF NOT EXISTS plant_collector@''%'' IDENTIFIED BY ', QUOTE(@collector_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;
SET @plant_accounts_stmt = CONCAT('ALTER USER plant_collector@''%'' IDENTIFIED BY ', QUOTE(@collector_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;

SET @plant_accounts_stmt = CONCAT('CREATE USER IF NOT EXISTS plant_datavision@''%'' IDENTIFIED BY ', QUOTE(@datavision_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;
SET @plant_accounts_stmt = CONCAT('ALTER USER plant_datavision@''%'' IDENTIFIED BY ', QUOTE(@datavision_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;

SET @plant_accounts_stmt = CONCAT('CREATE USER IF NOT EXISTS plant_retention@''%'' IDENTIFIED BY ', QUOTE(@retention_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;
SET @plant_accounts_stmt = CONCAT('ALTER USER plant_retention@''%'' IDENTIFIED BY ', QUOTE(@retention_password));
PREPARE plant_accounts FROM @plant_accounts_stmt;
EXECUTE plant_accounts;

DEALLOCATE PREPARE plant_accounts;
SET @plant_accounts_stmt = NULL;
SET SESSION sql_mode = @plant_accounts_mode;

-- Exactly the grants below, nothing left from an earlier version of this file.
REVOKE ALL PRIVILEGES, GRANT OPTION FROM plant_admin@'%';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM plant_delegate@'%';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM plant_collector@'%';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM plant_datavision@'%';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM plant_retention@'%';

-- `ON *` and bare table names: the session's database.

-- administrator: everything on this database (schema upgrades: `python -m store accounts`).
-- Accounts themselves are root's business (CREATE USER is a server-wide right).
GRANT ALL PRIVILEGES ON * TO plant_admin@'%';

-- delegated administrator: reads everything; users, thresholds, devices; the threshold audit is
-- append-only even for it (INSERT, no UPDATE or DELETE).
GRANT SELECT ON * TO plant_delegate@'%';
GRANT INSERT, UPDATE, DELETE ON users TO plant_delegate@'%';
GRANT INSERT, UPDATE, DELETE ON thresholds TO plant_delegate@'%';
GRANT INSERT ON threshold_changes TO plant_delegate@'%';
GRANT INSERT, UPDATE, DELETE ON units TO plant_delegate@'%';
GRANT INSERT, UPDATE, DELETE ON automates TO plant_delegate@'%';
GRANT INSERT, UPDATE, DELETE ON meters TO plant_delegate@'%';
GRANT INSERT, UPDATE ON devices TO plant_delegate@'%';
GRANT INSERT, UPDATE ON device_tokens TO plant_delegate@'%';
GRANT INSERT ON audit_log TO plant_delegate@'%';
GRANT INSERT, UPDATE, DELETE ON notification_routes TO plant_delegate@'%';

-- collector (the bridge). SELECT where it reads back (conflicts, sequences, SELECT … FOR UPDATE on
-- source_versions); never users, threshold_changes; no DELETE anywhere.
GRANT SELECT, INSERT ON readings TO plant_collector@'%';
GRANT SELECT, INSERT ON rejected_messages TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON units TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON automates TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON meters TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON automate_sequences TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON source_versions TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON meter_states TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON device_status TO plant_collector@'%';
GRANT SELECT, INSERT ON power_readings TO plant_collector@'%';
-- The registry: what a device says of itself, never its name or whether it is disabled (a new row is
-- inserted with INSERT IGNORE, so no UPDATE on disabled is needed).
GRANT SELECT,
      INSERT (device, model, generation, firmware, disabled, first_seen, last_seen),
      UPDATE (model, generation, firmware, first_seen, last_seen, removed_at)
      ON devices TO plant_collector@'%';
-- Not acknowledged_at / acknowledged_by, neither inserted nor updated: a stolen bridge password
-- must not acknowledge an alarm in an operator's name.
GRANT SELECT,
      INSERT (source, unit_id, automate_no, meter_id, measure, bound, severity, state, value, limit_value,
              last_value, raised_at, detail),
      UPDATE (source, unit_id, automate_no, meter_id, measure, bound, severity, state, value, limit_value,
              last_value, raised_at, cleared_at, detail)
      ON alarms TO plant_collector@'%';
GRANT SELECT ON thresholds TO plant_collector@'%';
-- The rollups and each meter's newest sample, kept up to date with every stored row (an upsert:
-- INSERT … ON DUPLICATE KEY UPDATE needs UPDATE). Their retention purge is plant_retention's job.
GRANT SELECT, INSERT, UPDATE ON readings_minute TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON readings_hour TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON power_readings_minute TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON power_readings_hour TO plant_collector@'%';
GRANT SELECT, INSERT, UPDATE ON power_readings_latest TO plant_collector@'%';

-- datavision (the web UI): reads what it shows, and the log-in; writes acknowledgements, thresholds
-- and their audit (append-only), users, the audit trail (append-only: INSERT, no UPDATE or DELETE),
-- notification routes and the notifier's outbox. Not meter_states, source_versions.
GRANT SELECT ON units TO plant_datavision@'%';
GRANT SELECT ON automates TO plant_datavision@'%';
GRANT SELECT ON automate_sequences TO plant_datavision@'%';
GRANT SELECT ON readings TO plant_datavision@'%';
GRANT SELECT ON meters TO plant_datavision@'%';
GRANT SELECT ON power_readings TO plant_datavision@'%';
GRANT SELECT ON readings_minute TO plant_datavision@'%';
GRANT SELECT ON readings_hour TO plant_datavision@'%';
GRANT SELECT ON power_readings_minute TO plant_datavision@'%';
GRANT SELECT ON power_readings_hour TO plant_datavision@'%';
GRANT SELECT ON power_readings_latest TO plant_datavision@'%';
GRANT SELECT ON device_status TO plant_datavision@'%';
GRANT SELECT, UPDATE (acknowledged_at, acknowledged_by, ack_note, ack_disposition) ON alarms TO plant_datavision@'%';
GRANT SELECT, INSERT, DELETE,
      UPDATE (low, high, deadband, severity, updated_at, updated_by, inherit_low, inherit_high)
      ON thresholds TO plant_datavision@'%';
GRANT SELECT ON rejected_messages TO plant_datavision@'%';
GRANT SELECT, INSERT ON audit_log TO plant_datavision@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_routes TO plant_datavision@'%';
GRANT SELECT, INSERT, UPDATE (status, attempts, next_attempt_at, sent_at, last_error)
      ON notifications TO plant_datavision@'%';
GRANT SELECT, INSERT ON notification_attempts TO plant_datavision@'%';
GRANT SELECT, INSERT ON threshold_changes TO plant_datavision@'%';
GRANT SELECT, INSERT (device, name, disabled, updated_at, updated_by),
      UPDATE (name, disabled, removed_at, updated_at, updated_by)
      ON devices TO plant_datavision@'%';
GRANT SELECT, INSERT, UPDATE (revoked_at, revoked_by, last_used_at) ON device_tokens TO plant_datavision@'%';
GRANT SELECT, INSERT, UPDATE (from_state, outcome, answered_at, detail) ON switch_actions TO plant_datavision@'%';
GRANT SELECT, INSERT, DELETE,
      UPDATE (password_hash, role, token_hash, updated_at, last_login_at, session_version, language)
      ON users TO plant_datavision@'%';

-- retention (python -m store retention, store/retention.py): per automate or meter, SELECTs the
-- keys of old rows (and DESCRIBEs each table to skip one that is missing, which needs a right on
-- it), then DELETEs exactly those. No INSERT or UPDATE anywhere: it cannot forge or edit a reading,
-- and it sees no alarm, user, threshold or audit entry.
GRANT SELECT, DELETE ON readings TO plant_retention@'%';
GRANT SELECT, DELETE ON power_readings TO plant_retention@'%';
GRANT SELECT, DELETE ON readings_minute TO plant_retention@'%';
GRANT SELECT, DELETE ON readings_hour TO plant_retention@'%';
GRANT SELECT, DELETE ON power_readings_minute TO plant_retention@'%';
GRANT SELECT, DELETE ON power_readings_hour TO plant_retention@'%';
GRANT SELECT, DELETE ON rejected_messages TO plant_retention@'%';

-- Every service checks the schema's revision at start (and refuses one it was not built for).
GRANT SELECT ON alembic_version TO plant_collector@'%';
GRANT SELECT ON alembic_version TO plant_datavision@'%';
GRANT SELECT ON alembic_version TO plant_retention@'%';

-- Connections per account, so that one stolen password cannot take all of the server's (151 by
-- default) and stop the bridge from writing: SQLAlchemy's pool opens at most 15 per process (5 +
-- 10 overflow), so 60 leaves room for four bridges or four web UI processes. The retention job holds
-- one or two at a time: 5 leaves room for a dry run by hand beside the hourly one.
ALTER USER plant_collector@'%' WITH MAX_USER_CONNECTIONS 60;
ALTER USER plant_datavision@'%' WITH MAX_USER_CONNECTIONS 60;
ALTER USER plant_delegate@'%' WITH MAX_USER_CONNECTIONS 20;
ALTER USER plant_retention@'%' WITH MAX_USER_CONNECTIONS 5;

-- The default alarm thresholds (DOMAIN.md §1 and 3500 W; the same as plantmodel.thresholds.
-- default_thresholds(), which tests/integration/test_db_accounts.py checks): the bridge seeds them
-- itself only where its account may write them, and the collector may not. One already there (an
-- edited default) is kept as it is.
INSERT INTO thresholds (scope, measure, low, high, deadband, severity, updated_at, updated_by) VALUES
    ('*', 'tank_temp_c', 2.5, 4.0, 0.2, 'warning', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'ext_temp_c', 8.0, 14.0, 0.2, 'warning', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'milk_kg', 3512, 4607, 2, 'warning', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'ph', 6.8, 7.2, 0.2, 'warning', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'k_mg_l', 35, 47, 2, 'warning', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'nacl_g_l', 1.0, 1.7, 0.2, 'warning', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'salmonella_ppm', 17, 37, 2, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'ecoli_ppm', 35, 49, 2, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'listeria_ppm', 28, 54, 2, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'no_data', NULL, 2.5, 0, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'probe_fault', NULL, 2.5, 0, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'apower', NULL, 3500, 175, 'warning', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'overtemp', NULL, 0.5, 0, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'overpower', NULL, 0.5, 0, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'overvoltage', NULL, 0.5, 0, 'critical', UTC_TIMESTAMP(3), 'defaults'),
    ('*', 'device_error', NULL, 0.5, 0, 'warning', UTC_TIMESTAMP(3), 'defaults')
ON DUPLICATE KEY UPDATE id = id;
