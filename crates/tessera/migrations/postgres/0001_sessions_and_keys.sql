-- Session state and signing keys (SuperTokens core schema, plus the lineage columns of core 12.1).
CREATE TABLE IF NOT EXISTS key_value (
    app_id VARCHAR(64) NOT NULL DEFAULT 'public',
    tenant_id VARCHAR(64) NOT NULL DEFAULT 'public',
    name VARCHAR(128) NOT NULL,
    value TEXT,
    created_at_time BIGINT,
    PRIMARY KEY (app_id, tenant_id, name)
);

CREATE TABLE IF NOT EXISTS session_info (
    app_id VARCHAR(64) NOT NULL DEFAULT 'public',
    tenant_id VARCHAR(64) NOT NULL DEFAULT 'public',
    session_handle VARCHAR(255) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    refresh_token_hash_2 VARCHAR(128) NOT NULL,
    session_data TEXT,
    expires_at BIGINT NOT NULL,
    created_at_time BIGINT NOT NULL,
    jwt_user_payload TEXT,
    use_static_key BOOLEAN NOT NULL,
    prev_refresh_token_hash_2 VARCHAR(128),
    refresh_token_rotated_at BIGINT,
    PRIMARY KEY (app_id, tenant_id, session_handle)
);
CREATE INDEX IF NOT EXISTS session_expiry_index ON session_info (expires_at);
CREATE INDEX IF NOT EXISTS session_info_user_id_app_id_index ON session_info (user_id, app_id);
CREATE INDEX IF NOT EXISTS session_info_tenant_id_index ON session_info (app_id, tenant_id);

CREATE TABLE IF NOT EXISTS session_access_token_signing_keys (
    app_id VARCHAR(64) NOT NULL DEFAULT 'public',
    created_at_time BIGINT NOT NULL,
    value TEXT,
    PRIMARY KEY (app_id, created_at_time)
);

CREATE TABLE IF NOT EXISTS jwt_signing_keys (
    app_id VARCHAR(64) NOT NULL DEFAULT 'public',
    key_id VARCHAR(255) NOT NULL,
    key_string TEXT NOT NULL,
    algorithm VARCHAR(10) NOT NULL,
    created_at BIGINT,
    PRIMARY KEY (app_id, key_id)
);
