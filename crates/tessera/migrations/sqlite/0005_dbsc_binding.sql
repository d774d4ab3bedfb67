-- Device Bound Session Credentials (issue 14). One row per bound session: the device's public
-- key (RFC 7638 JWK thumbprint, the public JWK, its algorithm) and the DBSC session identifier
-- the browser knows the session by. Deleted with its session (ON DELETE CASCADE), like the
-- device rows, so no delete path needs to know about it.
CREATE TABLE IF NOT EXISTS tessera_dbsc_binding (
    app_id VARCHAR(64) NOT NULL,
    tenant_id VARCHAR(64) NOT NULL,
    session_handle VARCHAR(255) NOT NULL,
    dbsc_session_id VARCHAR(64) NOT NULL,
    jwk_thumbprint VARCHAR(64) NOT NULL,
    public_jwk TEXT NOT NULL,
    algorithm VARCHAR(8) NOT NULL,
    bound_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, tenant_id, session_handle),
    FOREIGN KEY (app_id, tenant_id, session_handle)
        REFERENCES session_info (app_id, tenant_id, session_handle) ON DELETE CASCADE
);

-- Challenges are stateless (an HMAC over the session and an expiry); this is the set of used
-- ones, so each is accepted once across every instance sharing the database (the primary key
-- decides). Rows are removed by the cleanup once their challenge has expired.
CREATE TABLE IF NOT EXISTS tessera_dbsc_used_challenge (
    app_id VARCHAR(64) NOT NULL,
    nonce VARCHAR(64) NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, nonce)
);
CREATE INDEX IF NOT EXISTS tessera_dbsc_used_challenge_expiry
    ON tessera_dbsc_used_challenge (expires_at);

-- A guest (anonymous session, no session row) bound to a device key, by anonymousId. At
-- sign-in the binding is carried to the new session. Rows are removed by the cleanup once
-- expired (the anonymous token's lifetime).
CREATE TABLE IF NOT EXISTS tessera_dbsc_guest_binding (
    app_id VARCHAR(64) NOT NULL,
    anonymous_id VARCHAR(64) NOT NULL,
    dbsc_session_id VARCHAR(64) NOT NULL,
    jwk_thumbprint VARCHAR(64) NOT NULL,
    public_jwk TEXT NOT NULL,
    algorithm VARCHAR(8) NOT NULL,
    bound_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, anonymous_id)
);
