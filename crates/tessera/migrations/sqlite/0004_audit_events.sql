-- The audit trail (issue 13), kept only when the operator turns the audit store on. One row per
-- security event; never a token, a token hash, a key or a secret. `detail` is JSON text.
CREATE TABLE IF NOT EXISTS tessera_audit_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    app_id VARCHAR(64),
    kind VARCHAR(64) NOT NULL,
    user_id VARCHAR(128),
    session_handle VARCHAR(255),
    client_ip VARCHAR(45),
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tessera_audit_event_at_index ON tessera_audit_event (at_ms);
CREATE INDEX IF NOT EXISTS tessera_audit_event_user_index ON tessera_audit_event (user_id, at_ms);
