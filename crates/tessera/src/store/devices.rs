//! Device metadata per session (`tessera_session_device`): the user agent and IP seen at
//! sign-in, when the session was created, last active and last signed in. One row per session,
//! deleted with it by the database (`ON DELETE CASCADE`), so no delete path needs to know.
//!
//! Kept apart from [`crate::store::Store`]'s session methods so the lineage code never reads
//! or writes it: last-active moves only at refresh (see [`crate::engine::devices`]).

use crate::error::StoreError;
use async_trait::async_trait;

/// One device row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// App id.
    pub app_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Session handle.
    pub session_handle: String,
    /// The user agent seen at sign-in (bounded, stored as given).
    pub user_agent: Option<String>,
    /// The client IP seen at sign-in.
    pub ip: Option<String>,
    /// Session creation, epoch ms.
    pub created_at: u64,
    /// Last refresh (or creation), epoch ms.
    pub last_active_at: u64,
    /// Last sign-in or re-authentication, epoch ms.
    pub signed_in_at: u64,
}

/// A live session of a user with its device row (sessions from before device rows existed
/// read with no user agent or IP and their creation time as last activity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceListing {
    /// The session's device data.
    pub device: DeviceRow,
    /// Session expiry, epoch ms.
    pub expires_at: u64,
}

/// What the device features need from a database.
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    /// Inserts the device row of a new session.
    async fn insert_device(&self, row: &DeviceRow) -> Result<(), StoreError>;

    /// The device row of a session, if any.
    async fn get_device(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<DeviceRow>, StoreError>;

    /// Sets `last_active_at = now_ms` if it is at or before `stale_before` (at most one write
    /// per interval); true if written.
    async fn touch_device(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
        now_ms: u64,
        stale_before: u64,
    ) -> Result<bool, StoreError>;

    /// Sets `signed_in_at` (re-authentication); creates the row for a session without one.
    async fn set_signed_in_at(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
        at_ms: u64,
    ) -> Result<(), StoreError>;

    /// A user's sessions with `expires_at >= now`, in every tenant of the app, most recently
    /// active first (ties by handle), `limit` rows from `offset`.
    async fn list_devices(
        &self,
        app_id: &str,
        user_id: &str,
        now_ms: u64,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<DeviceListing>, StoreError>;
}

/// Implements [`DeviceStore`] for a struct with a `pool: sqlx::Pool<$db>` field.
macro_rules! impl_device_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::devices::DeviceStore for $store {
            async fn insert_device(
                &self,
                r: &$crate::store::devices::DeviceRow,
            ) -> Result<(), $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                sqlx::query(
                    "INSERT INTO tessera_session_device (app_id, tenant_id, session_handle, \
                     user_agent, ip, created_at_time, last_active_at, signed_in_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&r.app_id)
                .bind(&r.tenant_id)
                .bind(&r.session_handle)
                .bind(&r.user_agent)
                .bind(&r.ip)
                .bind(to_db(r.created_at))
                .bind(to_db(r.last_active_at))
                .bind(to_db(r.signed_in_at))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(())
            }

            async fn get_device(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
            ) -> Result<Option<$crate::store::devices::DeviceRow>, $crate::error::StoreError> {
                use sqlx::Row;
                use $crate::store::sql::from_db;
                let row = $crate::store::sql::fetch_by_session_key!(
                    self,
                    "SELECT user_agent, ip, created_at_time, last_active_at, signed_in_at \
                     FROM tessera_session_device \
                     WHERE app_id = $1 AND tenant_id = $2 AND session_handle = $3",
                    app_id,
                    tenant_id,
                    handle
                );
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::store::devices::DeviceRow {
                    app_id: app_id.to_owned(),
                    tenant_id: tenant_id.to_owned(),
                    session_handle: handle.to_owned(),
                    user_agent: row.try_get("user_agent")?,
                    ip: row.try_get("ip")?,
                    created_at: from_db(row.try_get("created_at_time")?),
                    last_active_at: from_db(row.try_get("last_active_at")?),
                    signed_in_at: from_db(row.try_get("signed_in_at")?),
                }))
            }

            async fn touch_device(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
                now_ms: u64,
                stale_before: u64,
            ) -> Result<bool, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                let done = sqlx::query(
                    "UPDATE tessera_session_device SET last_active_at = $1 \
                     WHERE app_id = $2 AND tenant_id = $3 AND session_handle = $4 \
                     AND last_active_at <= $5",
                )
                .bind(to_db(now_ms))
                .bind(app_id)
                .bind(tenant_id)
                .bind(handle)
                .bind(to_db(stale_before))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_signed_in_at(
                &self,
                app_id: &str,
                tenant_id: &str,
                handle: &str,
                at_ms: u64,
            ) -> Result<(), $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                sqlx::query(
                    "INSERT INTO tessera_session_device (app_id, tenant_id, session_handle, \
                     created_at_time, last_active_at, signed_in_at) \
                     SELECT app_id, tenant_id, session_handle, created_at_time, $4, $4 \
                     FROM session_info \
                     WHERE app_id = $1 AND tenant_id = $2 AND session_handle = $3 \
                     ON CONFLICT (app_id, tenant_id, session_handle) \
                     DO UPDATE SET signed_in_at = $4",
                )
                .bind(app_id)
                .bind(tenant_id)
                .bind(handle)
                .bind(to_db(at_ms))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(())
            }

            async fn list_devices(
                &self,
                app_id: &str,
                user_id: &str,
                now_ms: u64,
                limit: u32,
                offset: u32,
            ) -> Result<Vec<$crate::store::devices::DeviceListing>, $crate::error::StoreError> {
                use sqlx::Row;
                use $crate::store::sql::{from_db, to_db};
                let rows = sqlx::query(
                    "SELECT s.tenant_id, s.session_handle, s.created_at_time, s.expires_at, \
                     d.user_agent, d.ip, \
                     COALESCE(d.last_active_at, s.created_at_time) AS last_active, \
                     COALESCE(d.signed_in_at, s.created_at_time) AS signed_in \
                     FROM session_info s LEFT JOIN tessera_session_device d \
                     ON d.app_id = s.app_id AND d.tenant_id = s.tenant_id \
                     AND d.session_handle = s.session_handle \
                     WHERE s.app_id = $1 AND s.user_id = $2 AND s.expires_at >= $3 \
                     ORDER BY last_active DESC, s.session_handle \
                     LIMIT $4 OFFSET $5",
                )
                .bind(app_id)
                .bind(user_id)
                .bind(to_db(now_ms))
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(&mut *self.acquire_timed().await?)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::devices::DeviceListing {
                            device: $crate::store::devices::DeviceRow {
                                app_id: app_id.to_owned(),
                                tenant_id: r.try_get("tenant_id")?,
                                session_handle: r.try_get("session_handle")?,
                                user_agent: r.try_get("user_agent")?,
                                ip: r.try_get("ip")?,
                                created_at: from_db(r.try_get("created_at_time")?),
                                last_active_at: from_db(r.try_get("last_active")?),
                                signed_in_at: from_db(r.try_get("signed_in")?),
                            },
                            expires_at: from_db(r.try_get("expires_at")?),
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_device_store;
