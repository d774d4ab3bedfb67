-- Apps created through `PUT /recipe/multitenancy/app/v2`, with their core-config overrides (JSON),
-- so that a restart or a second instance on the same database knows them.
CREATE TABLE IF NOT EXISTS tessera_app_config (
    app_id VARCHAR(64) NOT NULL PRIMARY KEY,
    core_config TEXT NOT NULL,
    created_at_time BIGINT NOT NULL
);
