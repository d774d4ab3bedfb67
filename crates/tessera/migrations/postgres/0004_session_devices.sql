-- Device metadata per session (issue 15): who signed in from where, and when the session was last
-- active (moved at refresh, never at verify). Deleted with its session (ON DELETE CASCADE).
CREATE TABLE IF NOT EXISTS tessera_session_device (
    app_id VARCHAR(64) NOT NULL,
    tenant_id VARCHAR(64) NOT NULL,
    session_handle VARCHAR(255) NOT NULL,
    user_agent VARCHAR(512),
    ip VARCHAR(45),
    created_at_time BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    signed_in_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, tenant_id, session_handle),
    FOREIGN KEY (app_id, tenant_id, session_handle)
        REFERENCES session_info (app_id, tenant_id, session_handle) ON DELETE CASCADE
);
