-- (app_id, tenant_id) is the prefix of the primary key. On a table without statistics the
-- planner chose this index for lookups by handle and filtered every row of the tenant; without
-- it, lookups use the primary key.
DROP INDEX IF EXISTS session_info_tenant_id_index;
