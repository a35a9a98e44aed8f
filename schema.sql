-- Au Bon Beurre telemetry: the MariaDB schema, GENERATED from the migrations (store/migrations/)
-- by: python -m store schema-sql > schema.sql
-- Do not edit: change store/models.py and add a revision (README "Schema upgrades"). Apply it to an
-- EMPTY database (mariadb plant < schema.sql); upgrade an existing one with `python -m store upgrade`.
-- Times are UTC, DATETIME(3) (milliseconds).

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

CREATE TABLE alarms (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    source VARCHAR(96) NOT NULL, 
    unit_id INTEGER, 
    automate_no INTEGER, 
    meter_id VARCHAR(64), 
    measure VARCHAR(32) NOT NULL, 
    bound VARCHAR(4) NOT NULL, 
    severity VARCHAR(16) NOT NULL, 
    state VARCHAR(8) NOT NULL, 
    value DOUBLE NOT NULL, 
    limit_value DOUBLE NOT NULL, 
    `last_value` DOUBLE NOT NULL, 
    raised_at DATETIME(3) NOT NULL, 
    cleared_at DATETIME(3), 
    acknowledged_at DATETIME(3), 
    acknowledged_by VARCHAR(64), 
    ack_note TEXT, 
    ack_disposition VARCHAR(8), 
    detail VARCHAR(512), 
    PRIMARY KEY (id), 
    CONSTRAINT uq_alarms_source_measure_raised UNIQUE (source, measure, raised_at)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_alarms_acknowledged_at ON alarms (acknowledged_at);

CREATE INDEX ix_alarms_raised_at ON alarms (raised_at);

CREATE INDEX ix_alarms_state_source ON alarms (state, source);

CREATE TABLE audit_log (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    at DATETIME(3) NOT NULL, 
    actor VARCHAR(64), 
    address VARCHAR(64), 
    action VARCHAR(48) NOT NULL, 
    details TEXT NOT NULL, 
    prev_hash VARCHAR(64) NOT NULL, 
    hash VARCHAR(64) NOT NULL, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_audit_log_prev_hash UNIQUE (prev_hash)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_audit_log_at ON audit_log (at);

CREATE TABLE automate_sequences (
    unit_id INTEGER NOT NULL, 
    automate_no INTEGER NOT NULL, 
    confirmed BIGINT NOT NULL, 
    newest BIGINT NOT NULL, 
    newest_ts DATETIME(3), 
    max_ts DATETIME(3), 
    ahead TEXT NOT NULL, 
    gap_since DATETIME(3), 
    boot VARCHAR(32), 
    prev_boot VARCHAR(32), 
    updated_at DATETIME(3) NOT NULL, 
    PRIMARY KEY (unit_id, automate_no)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE device_status (
    device VARCHAR(96) NOT NULL, 
    state VARCHAR(8) NOT NULL, 
    ts DATETIME(3) NOT NULL, 
    received_at DATETIME(3) NOT NULL, 
    PRIMARY KEY (device)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE device_tokens (
    id INTEGER NOT NULL AUTO_INCREMENT, 
    device VARCHAR(96) NOT NULL, 
    token_hash VARCHAR(64) NOT NULL, 
    label VARCHAR(64), 
    created_at DATETIME(3) NOT NULL, 
    created_by VARCHAR(64) NOT NULL, 
    revoked_at DATETIME(3), 
    revoked_by VARCHAR(64), 
    last_used_at DATETIME(3), 
    PRIMARY KEY (id), 
    CONSTRAINT uq_device_tokens_token_hash UNIQUE (token_hash)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_device_tokens_device ON device_tokens (device);

CREATE TABLE devices (
    device VARCHAR(96) NOT NULL, 
    name VARCHAR(64), 
    model VARCHAR(64), 
    generation INTEGER, 
    firmware VARCHAR(96), 
    disabled BOOL NOT NULL, 
    first_seen DATETIME(3), 
    last_seen DATETIME(3), 
    removed_at DATETIME(3), 
    updated_at DATETIME(3), 
    updated_by VARCHAR(64), 
    PRIMARY KEY (device)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE meter_states (
    meter_id VARCHAR(64) NOT NULL, 
    status TEXT NOT NULL, 
    complete BOOL NOT NULL, 
    updated_at DATETIME(3) NOT NULL, 
    energy_offset_wh DOUBLE, 
    last_ts DATETIME(3), 
    PRIMARY KEY (meter_id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE meters (
    id VARCHAR(64) NOT NULL, 
    first_seen DATETIME(3) NOT NULL, 
    last_seen DATETIME(3) NOT NULL, 
    PRIMARY KEY (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE notification_attempts (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    notification_id BIGINT NOT NULL, 
    at DATETIME(3) NOT NULL, 
    ok BOOL NOT NULL, 
    error VARCHAR(512), 
    PRIMARY KEY (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_notification_attempts_notification ON notification_attempts (notification_id);

CREATE TABLE notification_routes (
    id INTEGER NOT NULL AUTO_INCREMENT, 
    name VARCHAR(64) NOT NULL, 
    channel VARCHAR(8) NOT NULL, 
    target VARCHAR(1024) NOT NULL, 
    min_severity VARCHAR(16) NOT NULL, 
    scope VARCHAR(96) NOT NULL, 
    events VARCHAR(32) NOT NULL, 
    escalate_after_min INTEGER, 
    enabled BOOL NOT NULL, 
    updated_at DATETIME(3) NOT NULL, 
    updated_by VARCHAR(64) NOT NULL, 
    PRIMARY KEY (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE notifications (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    alarm_id BIGINT NOT NULL, 
    route_id INTEGER NOT NULL, 
    event VARCHAR(8) NOT NULL, 
    created_at DATETIME(3) NOT NULL, 
    status VARCHAR(8) NOT NULL, 
    attempts INTEGER NOT NULL, 
    next_attempt_at DATETIME(3), 
    sent_at DATETIME(3), 
    last_error VARCHAR(512), 
    PRIMARY KEY (id), 
    CONSTRAINT uq_notifications_alarm_route_event UNIQUE (alarm_id, route_id, event)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_notifications_status_next ON notifications (status, next_attempt_at);

CREATE TABLE rejected_messages (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    received_at DATETIME(3) NOT NULL, 
    topic VARCHAR(512) NOT NULL, 
    payload TEXT NOT NULL, 
    payload_bytes INTEGER NOT NULL, 
    reason VARCHAR(512) NOT NULL, 
    source VARCHAR(96), 
    PRIMARY KEY (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_rejected_messages_received_at ON rejected_messages (received_at);

CREATE INDEX ix_rejected_messages_source ON rejected_messages (source, received_at);

CREATE TABLE source_versions (
    source VARCHAR(96) NOT NULL, 
    version BIGINT NOT NULL, 
    PRIMARY KEY (source)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE switch_actions (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    meter_id VARCHAR(64) NOT NULL, 
    requested_at DATETIME(3) NOT NULL, 
    requested_by VARCHAR(64) NOT NULL, 
    remote_addr VARCHAR(64), 
    from_state VARCHAR(8), 
    to_state VARCHAR(8) NOT NULL, 
    outcome VARCHAR(16) NOT NULL, 
    answered_at DATETIME(3), 
    detail VARCHAR(255), 
    PRIMARY KEY (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_switch_actions_meter ON switch_actions (meter_id, requested_at);

CREATE TABLE threshold_changes (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    changed_at DATETIME(3) NOT NULL, 
    changed_by VARCHAR(64) NOT NULL, 
    scope VARCHAR(96) NOT NULL, 
    measure VARCHAR(32) NOT NULL, 
    action VARCHAR(8) NOT NULL, 
    old_value TEXT, 
    new_value TEXT, 
    PRIMARY KEY (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_threshold_changes_changed_at ON threshold_changes (changed_at);

CREATE TABLE thresholds (
    id INTEGER NOT NULL AUTO_INCREMENT, 
    scope VARCHAR(96) NOT NULL, 
    measure VARCHAR(32) NOT NULL, 
    low DOUBLE, 
    high DOUBLE, 
    deadband DOUBLE NOT NULL, 
    severity VARCHAR(16) NOT NULL, 
    updated_at DATETIME(3) NOT NULL, 
    updated_by VARCHAR(64) NOT NULL, 
    inherit_low BOOL, 
    inherit_high BOOL, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_thresholds_scope_measure UNIQUE (scope, measure)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE units (
    id INTEGER NOT NULL, 
    created_at DATETIME(3) NOT NULL, 
    PRIMARY KEY (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE users (
    id INTEGER NOT NULL AUTO_INCREMENT, 
    username VARCHAR(64) NOT NULL, 
    password_hash VARCHAR(255) NOT NULL, 
    `role` VARCHAR(16) NOT NULL, 
    token_hash VARCHAR(64), 
    created_at DATETIME(3) NOT NULL, 
    updated_at DATETIME(3) NOT NULL, 
    last_login_at DATETIME(3), 
    session_version INTEGER, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_users_token_hash UNIQUE (token_hash), 
    CONSTRAINT uq_users_username UNIQUE (username)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE automates (
    unit_id INTEGER NOT NULL, 
    automate_no INTEGER NOT NULL, 
    type VARCHAR(10) NOT NULL, 
    created_at DATETIME(3) NOT NULL, 
    PRIMARY KEY (unit_id, automate_no), 
    CONSTRAINT fk_automates_unit FOREIGN KEY(unit_id) REFERENCES units (id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE power_readings (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    meter_id VARCHAR(64) NOT NULL, 
    ts DATETIME(3) NOT NULL, 
    received_at DATETIME(3) NOT NULL, 
    stored_at DATETIME(3), 
    output BOOL, 
    apower DOUBLE, 
    voltage DOUBLE, 
    current DOUBLE, 
    freq DOUBLE, 
    pf DOUBLE, 
    energy_wh DOUBLE, 
    ret_energy_wh DOUBLE, 
    temperature_c DOUBLE, 
    errors VARCHAR(255), 
    energy_offset_wh DOUBLE, 
    PRIMARY KEY (id), 
    CONSTRAINT fk_power_readings_meter FOREIGN KEY(meter_id) REFERENCES meters (id), 
    CONSTRAINT uq_power_readings_meter_ts UNIQUE (meter_id, ts)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_power_readings_received_at ON power_readings (received_at);

CREATE INDEX ix_power_readings_ts ON power_readings (ts);

CREATE TABLE readings (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    unit_id INTEGER NOT NULL, 
    automate_no INTEGER NOT NULL, 
    seq BIGINT NOT NULL, 
    ts DATETIME(3) NOT NULL, 
    received_at DATETIME(3) NOT NULL, 
    stored_at DATETIME(3), 
    tank_temp_c DOUBLE NOT NULL, 
    ext_temp_c DOUBLE NOT NULL, 
    milk_kg DOUBLE NOT NULL, 
    product_kg DOUBLE NOT NULL, 
    ph DOUBLE NOT NULL, 
    k_mg_l DOUBLE NOT NULL, 
    nacl_g_l DOUBLE NOT NULL, 
    salmonella_ppm DOUBLE NOT NULL, 
    ecoli_ppm DOUBLE NOT NULL, 
    listeria_ppm DOUBLE NOT NULL, 
    PRIMARY KEY (id), 
    CONSTRAINT fk_readings_automate FOREIGN KEY(unit_id, automate_no) REFERENCES automates (unit_id, automate_no), 
    CONSTRAINT uq_readings_automate_ts UNIQUE (unit_id, automate_no, ts)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_readings_received_at ON readings (received_at);

INSERT INTO alembic_version (version_num) VALUES ('0001');

-- Running upgrade 0001 -> 0002

CREATE TABLE power_readings_latest (
    meter_id VARCHAR(64) NOT NULL, 
    ts DATETIME(3) NOT NULL, 
    PRIMARY KEY (meter_id)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE readings_minute (
    unit_id INTEGER NOT NULL, 
    automate_no INTEGER NOT NULL, 
    bucket BIGINT NOT NULL, 
    tank_temp_c_n INTEGER NOT NULL, 
    tank_temp_c_min DOUBLE, 
    tank_temp_c_max DOUBLE, 
    tank_temp_c_sum DOUBLE, 
    ext_temp_c_n INTEGER NOT NULL, 
    ext_temp_c_min DOUBLE, 
    ext_temp_c_max DOUBLE, 
    ext_temp_c_sum DOUBLE, 
    milk_kg_n INTEGER NOT NULL, 
    milk_kg_min DOUBLE, 
    milk_kg_max DOUBLE, 
    milk_kg_sum DOUBLE, 
    product_kg_n INTEGER NOT NULL, 
    product_kg_min DOUBLE, 
    product_kg_max DOUBLE, 
    product_kg_sum DOUBLE, 
    ph_n INTEGER NOT NULL, 
    ph_min DOUBLE, 
    ph_max DOUBLE, 
    ph_sum DOUBLE, 
    k_mg_l_n INTEGER NOT NULL, 
    k_mg_l_min DOUBLE, 
    k_mg_l_max DOUBLE, 
    k_mg_l_sum DOUBLE, 
    nacl_g_l_n INTEGER NOT NULL, 
    nacl_g_l_min DOUBLE, 
    nacl_g_l_max DOUBLE, 
    nacl_g_l_sum DOUBLE, 
    salmonella_ppm_n INTEGER NOT NULL, 
    salmonella_ppm_min DOUBLE, 
    salmonella_ppm_max DOUBLE, 
    salmonella_ppm_sum DOUBLE, 
    ecoli_ppm_n INTEGER NOT NULL, 
    ecoli_ppm_min DOUBLE, 
    ecoli_ppm_max DOUBLE, 
    ecoli_ppm_sum DOUBLE, 
    listeria_ppm_n INTEGER NOT NULL, 
    listeria_ppm_min DOUBLE, 
    listeria_ppm_max DOUBLE, 
    listeria_ppm_sum DOUBLE, 
    PRIMARY KEY (unit_id, automate_no, bucket)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE power_readings_minute (
    meter_id VARCHAR(64) NOT NULL, 
    bucket BIGINT NOT NULL, 
    apower_n INTEGER NOT NULL, 
    apower_min DOUBLE, 
    apower_max DOUBLE, 
    apower_sum DOUBLE, 
    voltage_n INTEGER NOT NULL, 
    voltage_min DOUBLE, 
    voltage_max DOUBLE, 
    voltage_sum DOUBLE, 
    current_n INTEGER NOT NULL, 
    current_min DOUBLE, 
    current_max DOUBLE, 
    current_sum DOUBLE, 
    freq_n INTEGER NOT NULL, 
    freq_min DOUBLE, 
    freq_max DOUBLE, 
    freq_sum DOUBLE, 
    pf_n INTEGER NOT NULL, 
    pf_min DOUBLE, 
    pf_max DOUBLE, 
    pf_sum DOUBLE, 
    energy_wh_n INTEGER NOT NULL, 
    energy_wh_min DOUBLE, 
    energy_wh_max DOUBLE, 
    energy_wh_sum DOUBLE, 
    ret_energy_wh_n INTEGER NOT NULL, 
    ret_energy_wh_min DOUBLE, 
    ret_energy_wh_max DOUBLE, 
    ret_energy_wh_sum DOUBLE, 
    temperature_c_n INTEGER NOT NULL, 
    temperature_c_min DOUBLE, 
    temperature_c_max DOUBLE, 
    temperature_c_sum DOUBLE, 
    PRIMARY KEY (meter_id, bucket)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE readings_hour (
    unit_id INTEGER NOT NULL, 
    automate_no INTEGER NOT NULL, 
    bucket BIGINT NOT NULL, 
    tank_temp_c_n INTEGER NOT NULL, 
    tank_temp_c_min DOUBLE, 
    tank_temp_c_max DOUBLE, 
    tank_temp_c_sum DOUBLE, 
    ext_temp_c_n INTEGER NOT NULL, 
    ext_temp_c_min DOUBLE, 
    ext_temp_c_max DOUBLE, 
    ext_temp_c_sum DOUBLE, 
    milk_kg_n INTEGER NOT NULL, 
    milk_kg_min DOUBLE, 
    milk_kg_max DOUBLE, 
    milk_kg_sum DOUBLE, 
    product_kg_n INTEGER NOT NULL, 
    product_kg_min DOUBLE, 
    product_kg_max DOUBLE, 
    product_kg_sum DOUBLE, 
    ph_n INTEGER NOT NULL, 
    ph_min DOUBLE, 
    ph_max DOUBLE, 
    ph_sum DOUBLE, 
    k_mg_l_n INTEGER NOT NULL, 
    k_mg_l_min DOUBLE, 
    k_mg_l_max DOUBLE, 
    k_mg_l_sum DOUBLE, 
    nacl_g_l_n INTEGER NOT NULL, 
    nacl_g_l_min DOUBLE, 
    nacl_g_l_max DOUBLE, 
    nacl_g_l_sum DOUBLE, 
    salmonella_ppm_n INTEGER NOT NULL, 
    salmonella_ppm_min DOUBLE, 
    salmonella_ppm_max DOUBLE, 
    salmonella_ppm_sum DOUBLE, 
    ecoli_ppm_n INTEGER NOT NULL, 
    ecoli_ppm_min DOUBLE, 
    ecoli_ppm_max DOUBLE, 
    ecoli_ppm_sum DOUBLE, 
    listeria_ppm_n INTEGER NOT NULL, 
    listeria_ppm_min DOUBLE, 
    listeria_ppm_max DOUBLE, 
    listeria_ppm_sum DOUBLE, 
    PRIMARY KEY (unit_id, automate_no, bucket)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

CREATE TABLE power_readings_hour (
    meter_id VARCHAR(64) NOT NULL, 
    bucket BIGINT NOT NULL, 
    apower_n INTEGER NOT NULL, 
    apower_min DOUBLE, 
    apower_max DOUBLE, 
    apower_sum DOUBLE, 
    voltage_n INTEGER NOT NULL, 
    voltage_min DOUBLE, 
    voltage_max DOUBLE, 
    voltage_sum DOUBLE, 
    current_n INTEGER NOT NULL, 
    current_min DOUBLE, 
    current_max DOUBLE, 
    current_sum DOUBLE, 
    freq_n INTEGER NOT NULL, 
    freq_min DOUBLE, 
    freq_max DOUBLE, 
    freq_sum DOUBLE, 
    pf_n INTEGER NOT NULL, 
    pf_min DOUBLE, 
    pf_max DOUBLE, 
    pf_sum DOUBLE, 
    energy_wh_n INTEGER NOT NULL, 
    energy_wh_min DOUBLE, 
    energy_wh_max DOUBLE, 
    energy_wh_sum DOUBLE, 
    ret_energy_wh_n INTEGER NOT NULL, 
    ret_energy_wh_min DOUBLE, 
    ret_energy_wh_max DOUBLE, 
    ret_energy_wh_sum DOUBLE, 
    temperature_c_n INTEGER NOT NULL, 
    temperature_c_min DOUBLE, 
    temperature_c_max DOUBLE, 
    temperature_c_sum DOUBLE, 
    PRIMARY KEY (meter_id, bucket)
)CHARSET=utf8mb4 ENGINE=InnoDB COLLATE utf8mb4_unicode_ci;

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

-- Running upgrade 0002 -> 0003

ALTER TABLE users ADD COLUMN language VARCHAR(8);

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

