//! Device Bound Session Credentials (issue 14): the device key bound to a session
//! (`tessera_dbsc_binding`, deleted with the session by `ON DELETE CASCADE`) and the set of
//! used challenges (`tessera_dbsc_used_challenge`), whose primary key makes each challenge
//! single-use across every instance sharing the database.

use crate::error::StoreError;
use async_trait::async_trait;

/// The device key bound to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbscBinding {
    /// App id.
    pub app_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Session handle.
    pub session_handle: String,
    /// The DBSC `session_identifier` the browser knows this session by.
    pub dbsc_session_id: String,
    /// RFC 7638 SHA-256 thumbprint of the public key (base64url).
    pub jwk_thumbprint: String,
    /// The public JWK as JSON text (only the members the thumbprint covers).
    pub public_jwk: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    /// When the key was bound, epoch ms.
    pub bound_at: u64,
}

/// What device-bound sessions need from a database.
#[async_trait]
pub trait DbscStore: Send + Sync + 'static {
    /// Binds a key to a live session unless one is bound already (first binding wins, the
    /// row is never replaced). Returns the binding now stored, `None` if the session is gone.
    async fn bind_dbsc_key(
        &self,
        binding: &DbscBinding,
        now_ms: u64,
    ) -> Result<Option<DbscBinding>, StoreError>;

    /// The binding of a session, if any.
    async fn get_dbsc_binding(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<DbscBinding>, StoreError>;

    /// Records a challenge nonce as used; true only for its first use.
    async fn use_dbsc_challenge(
        &self,
        app_id: &str,
        nonce: &str,
        expires_at: u64,
    ) -> Result<bool, StoreError>;

    /// Binds a key to a guest (by anonymousId) unless one is bound already; returns the
    /// binding now stored (its `session_handle` is the anonymousId, `tenant_id` empty).
    async fn bind_dbsc_guest(
        &self,
        binding: &DbscBinding,
        expires_at: u64,
    ) -> Result<DbscBinding, StoreError>;

    /// The live binding of a guest, if any.
    async fn get_dbsc_guest(
        &self,
        app_id: &str,
        anonymous_id: &str,
        now_ms: u64,
    ) -> Result<Option<DbscBinding>, StoreError>;

    /// Forgets used challenges and guest bindings that expired at or before `now_ms` (the
    /// challenges can no longer be presented); returns the count.
    async fn delete_expired_dbsc_challenges(&self, now_ms: u64) -> Result<u64, StoreError>;
}

/// The columns of a binding besides its key (both binding tables have them).
macro_rules! binding_columns {
    () => {
        "SELECT dbsc_session_id, jwk_thumbprint, public_jwk, algorithm, bound_at"
    };
}
pub(crate) use binding_columns;

/// A [`DbscBinding`] from a row holding [`binding_columns`], under the given key (a guest's:
/// empty tenant, the anonymousId as handle).
pub(crate) fn binding_from_row<R>(
    row: &R,
    app_id: &str,
    tenant_id: &str,
    handle: &str,
) -> Result<DbscBinding, sqlx::Error>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(DbscBinding {
        app_id: app_id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        session_handle: handle.to_owned(),
        dbsc_session_id: row.try_get("dbsc_session_id")?,
        jwk_thumbprint: row.try_get("jwk_thumbprint")?,
        public_jwk: row.try_get("public_jwk")?,
        algorithm: row.try_get("algorithm")?,
        bound_at: crate::store::sql::from_db(row.try_get("bound_at")?),
    })
}

/// Implements [`DbscStore`] for a struct with a `pool: sqlx::Pool<$db>` field.
macro_rules! impl_dbsc_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::dbsc::DbscStore for $store {
            async fn bind_dbsc_key(
                &self,
                b: &$crate::store::dbsc::DbscBinding,
                now_ms: u64,
            ) -> Result<Option<$crate::store::dbsc::DbscBinding>, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                // Only a live session row can be bound (the foreign key alone would accept an
                // expired one).
                sqlx::query(
                    "INSERT INTO tessera_dbsc_binding (app_id, tenant_id, session_handle, \
                     dbsc_session_id, jwk_thumbprint, public_jwk, algorithm, bound_at) \
                     SELECT app_id, tenant_id, session_handle, $4, $5, $6, $7, $8 \
                     FROM session_info \
                     WHERE app_id = $1 AND tenant_id = $2 AND session_handle = $3 \
                     AND expires_at >= $9 \
                     ON CONFLICT (app_id, tenant_id, session_handle) DO NOTHING",
                )
                .bind(&b.app_id)
                .bind(&b.tenant_id)
                .bind(&b.session_handle)
                .bind(&b.dbsc_session_id)
                .bind(&b.jwk_thumbprint)
                .bind(&b.public_jwk)
                .bind(&b.algorithm)
                .bind(to_db(b.bound_at))
                .bind(to_db(now_ms))
                .execute(&mut *self.writer().await?)
                .await?;
                self.get_dbsc_binding(&b.app_id, &b.tenant_id, &b.session_handle)
                    .await
            }

            async fn get_dbsc_binding(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
            ) -> Result<Option<$crate::store::dbsc::DbscBinding>, $crate::error::StoreError> {
                let row = $crate::store::sql::fetch_by_session_key!(
                    self,
                    concat!(
                        $crate::store::dbsc::binding_columns!(),
                        " FROM tessera_dbsc_binding \
                         WHERE app_id = $1 AND tenant_id = $2 AND session_handle = $3"
                    ),
                    app_id,
                    tenant_id,
                    handle
                );
                row.map(|r| $crate::store::dbsc::binding_from_row(&r, app_id, tenant_id, handle))
                    .transpose()
                    .map_err(Into::into)
            }

            async fn use_dbsc_challenge(
                &self,
                app_id: &str,
                nonce: &str,
                expires_at: u64,
            ) -> Result<bool, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                let done = sqlx::query(
                    "INSERT INTO tessera_dbsc_used_challenge (app_id, nonce, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (app_id, nonce) DO NOTHING",
                )
                .bind(app_id)
                .bind(nonce)
                .bind(to_db(expires_at))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn bind_dbsc_guest(
                &self,
                b: &$crate::store::dbsc::DbscBinding,
                expires_at: u64,
            ) -> Result<$crate::store::dbsc::DbscBinding, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                sqlx::query(
                    "INSERT INTO tessera_dbsc_guest_binding (app_id, anonymous_id, \
                     dbsc_session_id, jwk_thumbprint, public_jwk, algorithm, bound_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (app_id, anonymous_id) DO NOTHING",
                )
                .bind(&b.app_id)
                .bind(&b.session_handle)
                .bind(&b.dbsc_session_id)
                .bind(&b.jwk_thumbprint)
                .bind(&b.public_jwk)
                .bind(&b.algorithm)
                .bind(to_db(b.bound_at))
                .bind(to_db(expires_at))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(self
                    .get_dbsc_guest(&b.app_id, &b.session_handle, 0)
                    .await?
                    .unwrap_or_else(|| b.clone()))
            }

            async fn get_dbsc_guest(
                &self,
                app_id: &str,
                anonymous_id: &str,
                now_ms: u64,
            ) -> Result<Option<$crate::store::dbsc::DbscBinding>, $crate::error::StoreError> {
                let row = sqlx::query(concat!(
                    $crate::store::dbsc::binding_columns!(),
                    " FROM tessera_dbsc_guest_binding \
                     WHERE app_id = $1 AND anonymous_id = $2 AND expires_at >= $3"
                ))
                .bind(app_id)
                .bind(anonymous_id)
                .bind($crate::store::sql::to_db(now_ms))
                .fetch_optional(&mut *self.acquire_timed().await?)
                .await?;
                row.map(|r| $crate::store::dbsc::binding_from_row(&r, app_id, "", anonymous_id))
                    .transpose()
                    .map_err(Into::into)
            }

            async fn delete_expired_dbsc_challenges(
                &self,
                now_ms: u64,
            ) -> Result<u64, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                let mut count = 0;
                for table in ["tessera_dbsc_used_challenge", "tessera_dbsc_guest_binding"] {
                    let done = sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
                        .bind(to_db(now_ms))
                        .execute(&mut *self.writer().await?)
                        .await?;
                    count += done.rows_affected();
                }
                Ok(count)
            }
        }
    };
}

pub(crate) use impl_dbsc_store;
