-- Au Bon Beurre telemetry: MariaDB schema (source of truth).
-- store/models.py mirrors it; tests/integration/test_schema.py fails when they drift.
-- Times are UTC, DATETIME(3) (milliseconds). Apply with: mariadb plant < schema.sql

CREATE TABLE IF NOT EXISTS units (
    id          INT          NOT NULL,
    created_at  DATETIME(3)  NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS automates (
    unit_id      INT          NOT NULL,
    automate_no  INT          NOT NULL,
    type         VARCHAR(10)  NOT NULL,
    created_at   DATETIME(3)  NOT NULL,
    PRIMARY KEY (unit_id, automate_no),
    CONSTRAINT fk_automates_unit FOREIGN KEY (unit_id) REFERENCES units (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Which readings of each automate the bridge has settled (plantmodel/sequence.py), written in the
-- same transaction as the readings: what it confirms to the units, and what it resumes from.
CREATE TABLE IF NOT EXISTS automate_sequences (
    unit_id      INT          NOT NULL,
    automate_no  INT          NOT NULL,
    confirmed    BIGINT       NOT NULL,   -- every seq up to it is stored, rejected or declared lost
    newest       BIGINT       NOT NULL,   -- highest seq settled
    newest_ts    DATETIME(3)  NULL,       -- unit time of the newest stored reading (the dashboard's latest)
    max_ts       DATETIME(3)  NULL,       -- newest unit time stored since the unit's last restart
    ahead        TEXT         NOT NULL,   -- JSON [[lo, hi], ...]: seqs settled above a gap
    gap_since    DATETIME(3)  NULL,       -- when the oldest open gap opened or last moved up
    boot         VARCHAR(32)  NULL,       -- the unit's boot id in its readings (a new one: it restarted)
    prev_boot    VARCHAR(32)  NULL,       -- the one before (its late messages are not a restart)
    updated_at   DATETIME(3)  NOT NULL,
    PRIMARY KEY (unit_id, automate_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per source (units/3/automates/7, meters/<id>): several bridges lock the rows of the
-- sources in their batch and bump the version of those they change; a bridge holding an older
-- version reloads that source's state (automate_sequences, meter_states, active alarms) first.
CREATE TABLE IF NOT EXISTS source_versions (
    source   VARCHAR(96)  NOT NULL,
    version  BIGINT       NOT NULL,
    PRIMARY KEY (source)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS meter_states (
    meter_id    VARCHAR(64)  NOT NULL,
    status      TEXT         NOT NULL,   -- JSON: the switch:0 status merged so far
    complete    BOOLEAN      NOT NULL,   -- a full status was part of it
    updated_at  DATETIME(3)  NOT NULL,
    energy_offset_wh DOUBLE  NULL,       -- energy counted before the counter's resets (see power_readings)
    last_ts     DATETIME(3)  NULL,       -- the newest device time merged (older frames are late: no reset check)
    PRIMARY KEY (meter_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS readings (
    id              BIGINT       NOT NULL AUTO_INCREMENT,
    unit_id         INT          NOT NULL,
    automate_no     INT          NOT NULL,
    seq             BIGINT       NOT NULL,
    ts              DATETIME(3)  NOT NULL,   -- the unit's own clock
    received_at     DATETIME(3)  NOT NULL,   -- the bridge's clock
    stored_at       DATETIME(3)  NULL,       -- when the bridge wrote it (publish -> commit = stored_at - ts)
    tank_temp_c     DOUBLE       NOT NULL,
    ext_temp_c      DOUBLE       NOT NULL,
    milk_kg         DOUBLE       NOT NULL,
    product_kg      DOUBLE       NOT NULL,
    ph              DOUBLE       NOT NULL,
    k_mg_l          DOUBLE       NOT NULL,
    nacl_g_l        DOUBLE       NOT NULL,
    salmonella_ppm  DOUBLE       NOT NULL,
    ecoli_ppm       DOUBLE       NOT NULL,
    listeria_ppm    DOUBLE       NOT NULL,
    PRIMARY KEY (id),
    -- idempotent writes, "latest per automate" and "time range per automate"
    UNIQUE KEY uq_readings_automate_ts (unit_id, automate_no, ts),
    KEY ix_readings_received_at (received_at),
    CONSTRAINT fk_readings_automate FOREIGN KEY (unit_id, automate_no)
        REFERENCES automates (unit_id, automate_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS meters (
    id          VARCHAR(64)  NOT NULL,   -- Shelly device id / topic prefix
    first_seen  DATETIME(3)  NOT NULL,
    last_seen   DATETIME(3)  NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS power_readings (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    meter_id       VARCHAR(64)  NOT NULL,
    ts             DATETIME(3)  NOT NULL,   -- the device's own timestamp
    received_at    DATETIME(3)  NOT NULL,
    stored_at      DATETIME(3)  NULL,       -- when the bridge wrote it
    output         BOOLEAN      NULL,
    apower         DOUBLE       NULL,       -- W
    voltage        DOUBLE       NULL,       -- V
    current        DOUBLE       NULL,       -- A
    freq           DOUBLE       NULL,       -- Hz
    pf             DOUBLE       NULL,
    energy_wh      DOUBLE       NULL,       -- aenergy.total
    ret_energy_wh  DOUBLE       NULL,       -- ret_aenergy.total
    temperature_c  DOUBLE       NULL,
    errors         VARCHAR(255) NULL,       -- the device's error flags (overtemp, ...), comma-separated
    energy_offset_wh DOUBLE     NULL,       -- counters lost to resets before this row: energy_wh + this = energy counted
    PRIMARY KEY (id),
    -- idempotent writes, "latest per meter" and "time range per meter"
    UNIQUE KEY uq_power_readings_meter_ts (meter_id, ts),
    KEY ix_power_readings_received_at (received_at),
    KEY ix_power_readings_ts (ts),   -- the legacy /api/measurements/ lists every meter by time
    CONSTRAINT fk_power_readings_meter FOREIGN KEY (meter_id) REFERENCES meters (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS device_status (
    device       VARCHAR(96)  NOT NULL,   -- units/3, meters/<id>, bridge
    state        VARCHAR(8)   NOT NULL,   -- online | offline
    ts           DATETIME(3)  NOT NULL,
    received_at  DATETIME(3)  NOT NULL,
    PRIMARY KEY (device)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS thresholds (
    id          INT          NOT NULL AUTO_INCREMENT,
    scope       VARCHAR(96)  NOT NULL,    -- *, units/3, units/3/automates/7, meters/<id>
    measure     VARCHAR(32)  NOT NULL,
    low         DOUBLE       NULL,
    high        DOUBLE       NULL,
    deadband    DOUBLE       NOT NULL,
    severity    VARCHAR(16)  NOT NULL,
    updated_at  DATETIME(3)  NOT NULL,
    updated_by  VARCHAR(64)  NOT NULL,
    inherit_low   BOOLEAN    NULL,        -- 1: low comes from the wider scope; else NULL low = no limit
    inherit_high  BOOLEAN    NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_thresholds_scope_measure (scope, measure)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS alarms (
    id               BIGINT       NOT NULL AUTO_INCREMENT,
    source           VARCHAR(96)  NOT NULL,   -- units/3/automates/7 or meters/<id>
    unit_id          INT          NULL,
    automate_no      INT          NULL,
    meter_id         VARCHAR(64)  NULL,
    measure          VARCHAR(32)  NOT NULL,
    bound            VARCHAR(4)   NOT NULL,   -- low | high
    severity         VARCHAR(16)  NOT NULL,
    state            VARCHAR(8)   NOT NULL,   -- active | cleared
    value            DOUBLE       NOT NULL,   -- the value that raised it
    limit_value      DOUBLE       NOT NULL,
    last_value       DOUBLE       NOT NULL,
    raised_at        DATETIME(3)  NOT NULL,
    cleared_at       DATETIME(3)  NULL,
    acknowledged_at  DATETIME(3)  NULL,
    acknowledged_by  VARCHAR(64)  NULL,
    ack_note         TEXT         NULL,       -- corrective action (required for a critical alarm)
    ack_disposition  VARCHAR(8)   NULL,       -- hold | release | none
    detail           VARCHAR(512) NULL,       -- e.g. a probe fault's last rejection reason
    PRIMARY KEY (id),
    UNIQUE KEY uq_alarms_source_measure_raised (source, measure, raised_at),
    KEY ix_alarms_state_source (state, source),
    KEY ix_alarms_raised_at (raised_at),
    KEY ix_alarms_acknowledged_at (acknowledged_at)   -- "open" = active or not acknowledged
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS rejected_messages (
    id             BIGINT        NOT NULL AUTO_INCREMENT,
    received_at    DATETIME(3)   NOT NULL,
    topic          VARCHAR(512)  NOT NULL,
    payload        TEXT          NOT NULL,   -- truncated; undecodable bytes escaped
    payload_bytes  INT           NOT NULL,   -- size before truncation
    reason         VARCHAR(512)  NOT NULL,
    source         VARCHAR(96)   NULL,       -- the device the topic names, if any
    PRIMARY KEY (id),
    KEY ix_rejected_messages_received_at (received_at),
    KEY ix_rejected_messages_source (source, received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS users (
    id             INT           NOT NULL AUTO_INCREMENT,
    username       VARCHAR(64)   NOT NULL,
    password_hash  VARCHAR(255)  NOT NULL,   -- argon2id, salted
    role           VARCHAR(16)   NOT NULL,   -- viewer | operator | admin
    token_hash     VARCHAR(64)   NULL,       -- SHA-256 of the API token; the token itself is never stored
    created_at     DATETIME(3)   NOT NULL,
    updated_at     DATETIME(3)   NOT NULL,
    last_login_at  DATETIME(3)   NULL,
    session_version INT          NULL,       -- bumped on logout, password or role change: older sessions end
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_username (username),
    UNIQUE KEY uq_users_token_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS threshold_changes (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    changed_at  DATETIME(3)  NOT NULL,
    changed_by  VARCHAR(64)  NOT NULL,
    scope       VARCHAR(96)  NOT NULL,
    measure     VARCHAR(32)  NOT NULL,
    action      VARCHAR(8)   NOT NULL,   -- set | delete
    old_value   TEXT         NULL,       -- JSON {low, high, deadband, severity}; NULL when it was new
    new_value   TEXT         NULL,       -- JSON; NULL when deleted
    PRIMARY KEY (id),
    KEY ix_threshold_changes_changed_at (changed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The device registry: one row per unit (units/3) or meter (meters/<id>), created by the bridge on
-- first contact; name, disabled and removed_at are the administrators' (column grants in accounts.sql).
CREATE TABLE IF NOT EXISTS devices (
    device      VARCHAR(96)  NOT NULL,   -- units/3 | meters/<id>: the source vocabulary
    name        VARCHAR(64)  NULL,
    model       VARCHAR(64)  NULL,       -- as the device says it (Shelly.GetDeviceInfo, Gen1 announce, unit birth)
    generation  INT          NULL,       -- Shelly API generation (1, 2, 3, 4), NULL for units
    firmware    VARCHAR(96)  NULL,
    disabled    BOOLEAN      NOT NULL,   -- its data is rejected with a reason
    first_seen  DATETIME(3)  NULL,       -- NULL: registered by an administrator, not heard from yet
    last_seen   DATETIME(3)  NULL,
    removed_at  DATETIME(3)  NULL,       -- hidden from the lists; cleared when it is heard from again
    updated_at  DATETIME(3)  NULL,       -- the last administrator's edit
    updated_by  VARCHAR(64)  NULL,
    PRIMARY KEY (device)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Tokens of the legacy HTTP senders (POST /collector/info, /webhook/): one device each; only the
-- SHA-256 is stored.
CREATE TABLE IF NOT EXISTS device_tokens (
    id            INT          NOT NULL AUTO_INCREMENT,
    device        VARCHAR(96)  NOT NULL,   -- units/3 | meters/<id>
    token_hash    VARCHAR(64)  NOT NULL,
    label         VARCHAR(64)  NULL,
    created_at    DATETIME(3)  NOT NULL,
    created_by    VARCHAR(64)  NOT NULL,
    revoked_at    DATETIME(3)  NULL,
    revoked_by    VARCHAR(64)  NULL,
    last_used_at  DATETIME(3)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_device_tokens_token_hash (token_hash),
    KEY ix_device_tokens_device (device)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every remote switch of a meter's output: who, when, from where, from which state to which, and
-- what the device answered.
CREATE TABLE IF NOT EXISTS switch_actions (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    meter_id      VARCHAR(64)  NOT NULL,
    requested_at  DATETIME(3)  NOT NULL,
    requested_by  VARCHAR(64)  NOT NULL,
    remote_addr   VARCHAR(64)  NULL,
    from_state    VARCHAR(8)   NULL,       -- on | off; NULL: not known
    to_state      VARCHAR(8)   NOT NULL,   -- on | off
    outcome       VARCHAR(16)  NOT NULL,   -- pending | confirmed | error | timeout
    answered_at   DATETIME(3)  NULL,
    detail        VARCHAR(255) NULL,       -- the device's answer or error
    PRIMARY KEY (id),
    KEY ix_switch_actions_meter (meter_id, requested_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The append-only audit trail; each entry holds the SHA-256 of the previous one (store/audit.py).
-- prev_hash is unique, so two writers can never fork the chain.
CREATE TABLE IF NOT EXISTS audit_log (
    id         BIGINT       NOT NULL AUTO_INCREMENT,
    at         DATETIME(3)  NOT NULL,
    actor      VARCHAR(64)  NULL,
    address    VARCHAR(64)  NULL,
    action     VARCHAR(48)  NOT NULL,
    details    TEXT         NOT NULL,   -- canonical JSON object
    prev_hash  VARCHAR(64)  NOT NULL,
    hash       VARCHAR(64)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_audit_log_prev_hash (prev_hash),
    KEY ix_audit_log_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Alarm notifications: who is told (routes), the outbox (one row per alarm, route and event) and
-- every delivery attempt.
CREATE TABLE IF NOT EXISTS notification_routes (
    id                  INT            NOT NULL AUTO_INCREMENT,
    name                VARCHAR(64)    NOT NULL,
    channel             VARCHAR(8)     NOT NULL,   -- email | webhook
    target              VARCHAR(1024)  NOT NULL,   -- addresses, comma-separated, or the URL
    min_severity        VARCHAR(16)    NOT NULL,
    scope               VARCHAR(96)    NOT NULL,
    events              VARCHAR(32)    NOT NULL,   -- raise,clear
    escalate_after_min  INT            NULL,       -- set: told only of alarms unacknowledged that long
    enabled             BOOLEAN        NOT NULL,
    updated_at          DATETIME(3)    NOT NULL,
    updated_by          VARCHAR(64)    NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS notifications (
    id               BIGINT        NOT NULL AUTO_INCREMENT,
    alarm_id         BIGINT        NOT NULL,
    route_id         INT           NOT NULL,
    event            VARCHAR(8)    NOT NULL,   -- raise | clear | escalate
    created_at       DATETIME(3)   NOT NULL,
    status           VARCHAR(8)    NOT NULL,   -- pending | sent | failed
    attempts         INT           NOT NULL,
    next_attempt_at  DATETIME(3)   NULL,
    sent_at          DATETIME(3)   NULL,
    last_error       VARCHAR(512)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_notifications_alarm_route_event (alarm_id, route_id, event),
    KEY ix_notifications_status_next (status, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS notification_attempts (
    id               BIGINT        NOT NULL AUTO_INCREMENT,
    notification_id  BIGINT        NOT NULL,
    at               DATETIME(3)   NOT NULL,
    ok               BOOLEAN       NOT NULL,
    error            VARCHAR(512)  NULL,
    PRIMARY KEY (id),
    KEY ix_notification_attempts_notification (notification_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
