//! The SQL both backends share. SQLite and PostgreSQL accept the same `$N` placeholders and the
//! same statements here; the one difference — PostgreSQL needs an advisory lock to make
//! "insert a key unless one exists" atomic under READ COMMITTED, while SQLite serialises
//! writers — is a macro argument.

/// Epoch-ms values are `u64` in Rust and `BIGINT` in SQL.
pub(crate) fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) const SESSION_COLUMNS: &str = "app_id, tenant_id, session_handle, user_id, \
    refresh_token_hash_2, prev_refresh_token_hash_2, refresh_token_rotated_at, session_data, \
    jwt_user_payload, expires_at, created_at_time, use_static_key";

/// [`SESSION_COLUMNS`] of one session (`s`) and whether a DBSC key is bound to it
/// (`dbsc_bound`), by `$1`–`$3` = app, tenant, handle: the refresh path's one read.
pub(crate) const SESSION_FOR_REFRESH: &str = "SELECT s.app_id, s.tenant_id, s.session_handle, \
    s.user_id, s.refresh_token_hash_2, s.prev_refresh_token_hash_2, s.refresh_token_rotated_at, \
    s.session_data, s.jwt_user_payload, s.expires_at, s.created_at_time, s.use_static_key, \
    (b.session_handle IS NOT NULL) AS dbsc_bound \
    FROM session_info s LEFT JOIN tessera_dbsc_binding b ON b.app_id = s.app_id \
    AND b.tenant_id = s.tenant_id AND b.session_handle = s.session_handle \
    WHERE s.app_id = $1 AND s.tenant_id = $2 AND s.session_handle = $3";

/// The tables holding an app's data, all keyed by `app_id` (SEC2-M2: removing an app empties
/// each).
pub(crate) const APP_TABLES: [&str; 6] = [
    "session_info",
    "tessera_dbsc_used_challenge",
    "tessera_dbsc_guest_binding",
    "session_access_token_signing_keys",
    "jwt_signing_keys",
    "key_value",
];

/// The session row's `INSERT`, its values `$1`–`$10` in the order of its column list.
macro_rules! insert_session_sql {
    () => {
        "INSERT INTO session_info (app_id, tenant_id, session_handle, user_id, \
         refresh_token_hash_2, session_data, jwt_user_payload, expires_at, created_at_time, \
         use_static_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    };
}

/// The device row's columns after its key; their values are `$11`–`$15` of
/// [`SESSION_WITH_DEVICE_SQLITE`] and [`SESSION_WITH_DEVICE_POSTGRES`].
macro_rules! device_columns {
    () => {
        "INSERT INTO tessera_session_device (app_id, tenant_id, session_handle, user_agent, ip, \
         created_at_time, last_active_at, signed_in_at) "
    };
}

/// Binds a session row to `$1`–`$10` of [`insert_session_sql`], in its column order.
macro_rules! bind_session_row {
    ($query:expr, $r:expr) => {
        $query
            .bind(&$r.app_id)
            .bind(&$r.tenant_id)
            .bind(&$r.session_handle)
            .bind(&$r.user_id)
            .bind(&$r.refresh_token_hash2)
            .bind(&$r.session_data)
            .bind(&$r.jwt_user_payload)
            .bind($crate::store::sql::to_db($r.expires_at))
            .bind($crate::store::sql::to_db($r.created_at))
            .bind($r.use_static_key)
    };
}

/// Binds a device row's values after its key to `$11`–`$15` of [`SESSION_WITH_DEVICE_SQLITE`]
/// and [`SESSION_WITH_DEVICE_POSTGRES`].
macro_rules! bind_device_row {
    ($query:expr, $d:expr) => {
        $query
            .bind(&$d.user_agent)
            .bind(&$d.ip)
            .bind($crate::store::sql::to_db($d.created_at))
            .bind($crate::store::sql::to_db($d.last_active_at))
            .bind($crate::store::sql::to_db($d.signed_in_at))
    };
}

/// The device row's `INSERT` of [`SESSION_WITH_DEVICE_SQLITE`].
macro_rules! sqlite_device_insert {
    () => {
        concat!(
            device_columns!(),
            "VALUES ($1, $2, $3, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING"
        )
    };
}

/// A new session and its device row: two statements, run inside one transaction by the caller
/// (SQLite has no data-modifying `WITH`).
pub(crate) const SESSION_WITH_DEVICE_SQLITE: &str =
    concat!(insert_session_sql!(), "; ", sqlite_device_insert!());

/// [`SESSION_WITH_DEVICE_SQLITE`] as one transaction in one call to SQLite's worker thread
/// (the store's writer connection; see `store/sqlite.rs`).
pub(crate) const SESSION_WITH_DEVICE_SQLITE_IN_TX: &str = concat!(
    "BEGIN IMMEDIATE; ",
    insert_session_sql!(),
    "; ",
    sqlite_device_insert!(),
    "; COMMIT"
);

/// A new session and its device row in one PostgreSQL statement (atomic on its own): the
/// device row is inserted from the session insert's `RETURNING`.
pub(crate) const SESSION_WITH_DEVICE_POSTGRES: &str = concat!(
    "WITH s AS (",
    insert_session_sql!(),
    " RETURNING app_id, tenant_id, session_handle) ",
    device_columns!(),
    "SELECT app_id, tenant_id, session_handle, $11, $12, $13, $14, $15 FROM s \
     ON CONFLICT DO NOTHING"
);

/// Reads the one row of a table keyed by session: `$sql` ends in a `WHERE` on `$1`–`$3` = app,
/// tenant, handle (`session_info` and the tables deleted with it). Evaluates to
/// `Option<Row>`; a store error returns from the calling method.
macro_rules! fetch_by_session_key {
    ($store:expr, $sql:expr, $app_id:expr, $tenant_id:expr, $handle:expr) => {
        sqlx::query($sql)
            .bind($app_id)
            .bind($tenant_id)
            .bind($handle)
            .fetch_optional(&mut *$store.acquire_timed().await?)
            .await?
    };
}

/// A [`crate::store::SessionRow`] from a row holding [`SESSION_COLUMNS`].
pub(crate) fn session_from_row<R>(row: &R) -> Result<crate::store::SessionRow, sqlx::Error>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(crate::store::SessionRow {
        app_id: row.try_get("app_id")?,
        tenant_id: row.try_get("tenant_id")?,
        session_handle: row.try_get("session_handle")?,
        user_id: row.try_get("user_id")?,
        refresh_token_hash2: row.try_get("refresh_token_hash_2")?,
        prev_refresh_token_hash2: row.try_get("prev_refresh_token_hash_2")?,
        refresh_token_rotated_at: row
            .try_get::<Option<i64>, _>("refresh_token_rotated_at")?
            .map(from_db),
        session_data: row
            .try_get::<Option<String>, _>("session_data")?
            .unwrap_or_else(|| "{}".into()),
        jwt_user_payload: row
            .try_get::<Option<String>, _>("jwt_user_payload")?
            .unwrap_or_else(|| "{}".into()),
        expires_at: from_db(row.try_get("expires_at")?),
        created_at: from_db(row.try_get("created_at_time")?),
        use_static_key: row.try_get("use_static_key")?,
    })
}

/// Implements [`crate::store::Store`] for a struct with a `pool: sqlx::Pool<$db>` field (reads)
/// and these methods: `acquire_timed` (a pooled connection for a read), `writer` (the
/// connection to write through), `begin_write` (a transaction on it), `writer_stats` and
/// `insert_session_rows` (a session and its device row, both or neither).
/// `$key_lock` is an optional statement run first in the key-insertion transaction, with the
/// app id as `$1`. `$cleanup_batch` is [`crate::store::Store::cleanup_batch`].
macro_rules! impl_sql_store {
    ($store:ty, $key_lock:expr, $cleanup_batch:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn insert_session(
                &self,
                r: &$crate::store::SessionRow,
            ) -> Result<(), $crate::error::StoreError> {
                $crate::store::sql::bind_session_row!(
                    sqlx::query($crate::store::sql::insert_session_sql!()),
                    r
                )
                    .execute(&mut *self.writer().await?)
                    .await?;
                Ok(())
            }

            async fn insert_session_with_device(
                &self,
                r: &$crate::store::SessionRow,
                d: &$crate::store::DeviceRow,
            ) -> Result<(), $crate::error::StoreError> {
                self.insert_session_rows(r, d).await
            }

            async fn get_session(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
            ) -> Result<Option<$crate::store::SessionRow>, $crate::error::StoreError> {
                let sql = format!(
                    "SELECT {} FROM session_info \
                     WHERE app_id = $1 AND tenant_id = $2 AND session_handle = $3",
                    $crate::store::sql::SESSION_COLUMNS
                );
                let row = $crate::store::sql::fetch_by_session_key!(
                    self, &sql, app_id, tenant_id, handle
                );
                Ok(row.as_ref().map($crate::store::sql::session_from_row).transpose()?)
            }

            async fn get_session_for_refresh(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
            ) -> Result<Option<($crate::store::SessionRow, bool)>, $crate::error::StoreError> {
                use sqlx::Row;
                let row = $crate::store::sql::fetch_by_session_key!(
                    self,
                    $crate::store::sql::SESSION_FOR_REFRESH,
                    app_id,
                    tenant_id,
                    handle
                );
                let Some(row) = row else { return Ok(None) };
                let bound: bool = row.try_get("dbsc_bound")?;
                Ok(Some(($crate::store::sql::session_from_row(&row)?, bound)))
            }

            async fn update_lineage(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
                u: &$crate::store::LineageUpdate<'_>,
            ) -> Result<bool, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                let done = sqlx::query(
                    "UPDATE session_info SET refresh_token_hash_2 = $1, \
                     prev_refresh_token_hash_2 = $2, refresh_token_rotated_at = $3, \
                     expires_at = $4, use_static_key = $5 \
                     WHERE app_id = $6 AND tenant_id = $7 AND session_handle = $8 \
                     AND refresh_token_hash_2 = $9",
                )
                .bind(u.current)
                .bind(u.prev)
                .bind(u.rotated_at.map(to_db))
                .bind(to_db(u.expires_at))
                .bind(u.use_static_key)
                .bind(app_id)
                .bind(tenant_id)
                .bind(handle)
                .bind(u.expected_current)
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_use_static_key(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
                use_static_key: bool,
            ) -> Result<(), $crate::error::StoreError> {
                sqlx::query(
                    "UPDATE session_info SET use_static_key = $1 \
                     WHERE app_id = $2 AND tenant_id = $3 AND session_handle = $4",
                )
                .bind(use_static_key)
                .bind(app_id)
                .bind(tenant_id)
                .bind(handle)
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(())
            }

            async fn update_jwt_payload(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
                payload_json: &str,
                now_ms: u64,
            ) -> Result<bool, $crate::error::StoreError> {
                let done = sqlx::query(
                    "UPDATE session_info SET jwt_user_payload = $1 WHERE app_id = $2 \
                     AND tenant_id = $3 AND session_handle = $4 AND expires_at > $5",
                )
                .bind(payload_json)
                .bind(app_id)
                .bind(tenant_id)
                .bind(handle)
                .bind($crate::store::sql::to_db(now_ms))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_session_data(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
                data_json: &str,
                now_ms: u64,
            ) -> Result<bool, $crate::error::StoreError> {
                let done = sqlx::query(
                    "UPDATE session_info SET session_data = $1 WHERE app_id = $2 \
                     AND tenant_id = $3 AND session_handle = $4 AND expires_at > $5",
                )
                .bind(data_json)
                .bind(app_id)
                .bind(tenant_id)
                .bind(handle)
                .bind($crate::store::sql::to_db(now_ms))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_sessions(
                &self,
                app_id: &str,
                handles: &[(String, String)],
            ) -> Result<Vec<$crate::store::DeletedSession>, $crate::error::StoreError> {
                let mut deleted = Vec::new();
                let mut conn = self.writer().await?;
                for (tenant_id, handle) in handles {
                    let user_id: Option<String> = sqlx::query_scalar(
                        "DELETE FROM session_info \
                         WHERE app_id = $1 AND tenant_id = $2 AND session_handle = $3 \
                         RETURNING user_id",
                    )
                    .bind(app_id)
                    .bind(tenant_id)
                    .bind(handle)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(user_id) = user_id {
                        deleted.push($crate::store::DeletedSession {
                            session_handle: handle.clone(),
                            user_id,
                        });
                    }
                }
                Ok(deleted)
            }

            async fn session_handles_for_user(
                &self,
                app_id: &str,
                tenant_id: Option<&str>,
                user_id: &str,
                now_ms: u64,
            ) -> Result<Vec<(String, String)>, $crate::error::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT tenant_id, session_handle FROM session_info \
                     WHERE app_id = $1 AND user_id = $2 AND expires_at >= $3 \
                     AND ($4 IS NULL OR tenant_id = $4) ORDER BY created_at_time",
                )
                .bind(app_id)
                .bind(user_id)
                .bind($crate::store::sql::to_db(now_ms))
                .bind(tenant_id)
                .fetch_all(&mut *self.acquire_timed().await?)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("session_handle")?)))
                    .collect()
            }

            async fn delete_expired_sessions(
                &self,
                now_ms: u64,
                limit: u64,
            ) -> Result<u64, $crate::error::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM session_info WHERE (app_id, tenant_id, session_handle) IN \
                     (SELECT app_id, tenant_id, session_handle FROM session_info \
                     WHERE expires_at <= $1 LIMIT $2)",
                )
                .bind($crate::store::sql::to_db(now_ms))
                .bind($crate::store::sql::to_db(limit))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected())
            }

            fn cleanup_batch(&self) -> u64 {
                $cleanup_batch
            }

            async fn count_sessions(&self, app_id: &str) -> Result<u64, $crate::error::StoreError> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_info WHERE app_id = $1")
                    .bind(app_id)
                    .fetch_one(&mut *self.acquire_timed().await?)
                    .await?;
                Ok($crate::store::sql::from_db(n))
            }

            async fn dynamic_keys(
                &self,
                app_id: &str,
                created_since: u64,
            ) -> Result<Vec<$crate::store::StoredKey>, $crate::error::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT created_at_time, value FROM session_access_token_signing_keys \
                     WHERE app_id = $1 AND created_at_time >= $2 ORDER BY created_at_time DESC",
                )
                .bind(app_id)
                .bind($crate::store::sql::to_db(created_since))
                .fetch_all(&mut *self.acquire_timed().await?)
                .await?;
                rows.iter()
                    .map(|r| {
                        let created = $crate::store::sql::from_db(r.try_get("created_at_time")?);
                        Ok($crate::store::StoredKey {
                            kid: format!("d-{created}"),
                            value: r.try_get("value")?,
                            created_at: created,
                        })
                    })
                    .collect()
            }

            async fn insert_dynamic_key_unless_fresh(
                &self,
                app_id: &str,
                key: &$crate::store::StoredKey,
                fresh_since: u64,
            ) -> Result<bool, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                let mut conn = self.writer().await?;
                let mut tx = Self::begin_write(&mut conn).await?;
                if let Some(lock) = $key_lock {
                    sqlx::query(lock).bind(app_id).execute(&mut *tx).await?;
                }
                let done = sqlx::query(
                    "INSERT INTO session_access_token_signing_keys (app_id, created_at_time, value) \
                     SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM \
                     session_access_token_signing_keys WHERE app_id = $1 AND created_at_time >= $4) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(app_id)
                .bind(to_db(key.created_at))
                .bind(&key.value)
                .bind(to_db(fresh_since))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_dynamic_keys_before(
                &self,
                app_id: &str,
                created_before: u64,
            ) -> Result<u64, $crate::error::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM session_access_token_signing_keys \
                     WHERE app_id = $1 AND created_at_time < $2",
                )
                .bind(app_id)
                .bind($crate::store::sql::to_db(created_before))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected())
            }

            async fn static_keys(
                &self,
                app_id: &str,
            ) -> Result<Vec<$crate::store::StoredKey>, $crate::error::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT key_id, key_string, created_at FROM jwt_signing_keys \
                     WHERE app_id = $1 AND algorithm = 'RS256' ORDER BY created_at DESC, key_id DESC",
                )
                .bind(app_id)
                .fetch_all(&mut *self.acquire_timed().await?)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::StoredKey {
                            kid: r.try_get("key_id")?,
                            value: r.try_get("key_string")?,
                            created_at: $crate::store::sql::from_db(r.try_get("created_at")?),
                        })
                    })
                    .collect()
            }

            async fn insert_static_key_unless_present(
                &self,
                app_id: &str,
                key: &$crate::store::StoredKey,
            ) -> Result<bool, $crate::error::StoreError> {
                let mut conn = self.writer().await?;
                let mut tx = Self::begin_write(&mut conn).await?;
                if let Some(lock) = $key_lock {
                    sqlx::query(lock).bind(app_id).execute(&mut *tx).await?;
                }
                let done = sqlx::query(
                    "INSERT INTO jwt_signing_keys (app_id, key_id, key_string, algorithm, created_at) \
                     SELECT $1, $2, $3, 'RS256', $4 WHERE NOT EXISTS (SELECT 1 FROM \
                     jwt_signing_keys WHERE app_id = $1 AND algorithm = 'RS256') \
                     ON CONFLICT DO NOTHING",
                )
                .bind(app_id)
                .bind(&key.kid)
                .bind(&key.value)
                .bind($crate::store::sql::to_db(key.created_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_static_key(
                &self,
                app_id: &str,
                key: &$crate::store::StoredKey,
            ) -> Result<(), $crate::error::StoreError> {
                sqlx::query(
                    "INSERT INTO jwt_signing_keys (app_id, key_id, key_string, algorithm, created_at) \
                     VALUES ($1, $2, $3, 'RS256', $4) ON CONFLICT DO NOTHING",
                )
                .bind(app_id)
                .bind(&key.kid)
                .bind(&key.value)
                .bind($crate::store::sql::to_db(key.created_at))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(())
            }

            async fn delete_static_key(
                &self,
                app_id: &str,
                kid: &str,
            ) -> Result<bool, $crate::error::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM jwt_signing_keys WHERE app_id = $1 AND key_id = $2",
                )
                .bind(app_id)
                .bind(kid)
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_or_insert_key_value(
                &self,
                app_id: &str,
                name: &str,
                value: &str,
                now_ms: u64,
            ) -> Result<String, $crate::error::StoreError> {
                sqlx::query(
                    "INSERT INTO key_value (app_id, tenant_id, name, value, created_at_time) \
                     VALUES ($1, 'public', $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(app_id)
                .bind(name)
                .bind(value)
                .bind($crate::store::sql::to_db(now_ms))
                .execute(&mut *self.writer().await?)
                .await?;
                let stored: String = sqlx::query_scalar(
                    "SELECT value FROM key_value \
                     WHERE app_id = $1 AND tenant_id = 'public' AND name = $2",
                )
                .bind(app_id)
                .bind(name)
                .fetch_one(&mut *self.acquire_timed().await?)
                .await?;
                Ok(stored)
            }

            async fn ping(&self) -> Result<(), $crate::error::StoreError> {
                sqlx::query("SELECT 1").execute(&mut *self.acquire_timed().await?).await?;
                Ok(())
            }

            fn pool_stats(&self) -> Option<$crate::store::PoolStats> {
                let (writer_size, writer_idle) = self.writer_stats();
                Some($crate::store::PoolStats {
                    size: self.pool.size() + writer_size,
                    idle: u32::try_from(self.pool.num_idle())
                        .unwrap_or(u32::MAX)
                        .saturating_add(writer_idle),
                    max: self.pool.options().get_max_connections() + writer_size,
                    acquires: self.waits.totals().0,
                    acquire_wait: self.waits.totals().1,
                })
            }

            async fn put_app_config(
                &self,
                app_id: &str,
                config_json: &str,
                now_ms: u64,
            ) -> Result<bool, $crate::error::StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO tessera_app_config (app_id, core_config, created_at_time) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(app_id)
                .bind(config_json)
                .bind($crate::store::sql::to_db(now_ms))
                .execute(&mut *self.writer().await?)
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(true);
                }
                sqlx::query("UPDATE tessera_app_config SET core_config = $1 WHERE app_id = $2")
                    .bind(config_json)
                    .bind(app_id)
                    .execute(&mut *self.writer().await?)
                    .await?;
                Ok(false)
            }

            async fn delete_app(&self, app_id: &str) -> Result<bool, $crate::error::StoreError> {
                if app_id == $crate::session::PUBLIC {
                    return Ok(false);
                }
                let mut conn = self.writer().await?;
                let mut tx = Self::begin_write(&mut conn).await?;
                if let Some(lock) = $key_lock {
                    // Serialised with key creation for this app on other instances.
                    sqlx::query(lock).bind(app_id).execute(&mut *tx).await?;
                }
                for table in $crate::store::sql::APP_TABLES {
                    sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
                        .bind(app_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let done = sqlx::query("DELETE FROM tessera_app_config WHERE app_id = $1")
                    .bind(app_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_app_config(
                &self,
                app_id: &str,
            ) -> Result<Option<(String, u64)>, $crate::error::StoreError> {
                let row: Option<(String, i64)> = sqlx::query_as(
                    "SELECT core_config, created_at_time FROM tessera_app_config WHERE app_id = $1",
                )
                .bind(app_id)
                .fetch_optional(&mut *self.acquire_timed().await?)
                .await?;
                Ok(row.map(|(json, created)| (json, $crate::store::sql::from_db(created))))
            }
        }
    };
}

pub(crate) use {
    bind_device_row, bind_session_row, fetch_by_session_key, impl_sql_store, insert_session_sql,
};
