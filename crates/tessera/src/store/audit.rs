//! The audit trail's table (`tessera_audit_event`): one row per security event, written only
//! when an operator keeps the audit in the store. Rules:
//!
//! 1. A row names what happened (`kind`), when, in which app, to which user and session, and
//!    from which client IP; `detail` is a small JSON object. Never a token, a token hash, a key
//!    or a secret: the writer (the server's audit sink) builds rows from
//!    [`crate::events::SessionEvent`]s, which carry none.
//! 2. Rows are never updated. They are deleted only by age, in bounded batches
//!    ([`AuditStore::delete_audit_events_before`]), never with an app: the record of an app's
//!    removal outlives the app.
//! 3. Reads are newest first and bounded ([`MAX_AUDIT_QUERY`]).

use crate::error::StoreError;
use async_trait::async_trait;

/// Most rows one [`AuditStore::audit_events`] call returns.
pub const MAX_AUDIT_QUERY: u32 = 1_000;

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Row id (assigned by the database; ignored on insert).
    pub id: i64,
    /// When it happened, epoch ms.
    pub at_ms: u64,
    /// The app, when the event belongs to one.
    pub app_id: Option<String>,
    /// What happened (`session_created`, `session_revoked`, `theft_detected`, …).
    pub kind: String,
    /// The user, when known.
    pub user_id: Option<String>,
    /// The session, when one is concerned.
    pub session_handle: Option<String>,
    /// The client IP of the request that caused it, when there was one.
    pub client_ip: Option<String>,
    /// A JSON object with the rest (cause, reason, kid, count, …).
    pub detail: String,
}

/// Which rows [`AuditStore::audit_events`] returns: the newest `limit` matching every filter
/// given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// At most this many (capped at [`MAX_AUDIT_QUERY`]; 0 means 100).
    pub limit: u32,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this app.
    pub app_id: Option<String>,
    /// Only rows at or after this time (epoch ms).
    pub since_ms: Option<u64>,
    /// Only rows before this time (epoch ms).
    pub until_ms: Option<u64>,
}

impl AuditQuery {
    /// The row limit to apply.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => 100,
            n => n.min(MAX_AUDIT_QUERY),
        }
    }
}

/// What the audit trail needs from a database.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Inserts rows (their `id` is ignored), in one transaction.
    async fn insert_audit_events(&self, rows: &[AuditRow]) -> Result<(), StoreError>;

    /// The newest rows matching `query`, newest first (ties: higher id first).
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError>;

    /// Deletes at most `limit` rows older than `before_ms` in one statement; returns the count.
    /// Callers loop with a pause, like the expired-session clean-up.
    async fn delete_audit_events_before(
        &self,
        before_ms: u64,
        limit: u64,
    ) -> Result<u64, StoreError>;
}

/// Implements [`AuditStore`] for a struct with a `pool: sqlx::Pool<$db>` field.
macro_rules! impl_audit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::audit::AuditStore for $store {
            async fn insert_audit_events(
                &self,
                rows: &[$crate::store::audit::AuditRow],
            ) -> Result<(), $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                let mut conn = self.writer().await?;
                let mut tx = Self::begin_write(&mut conn).await?;
                for r in rows {
                    sqlx::query(
                        "INSERT INTO tessera_audit_event (at_ms, app_id, kind, user_id, \
                         session_handle, client_ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(to_db(r.at_ms))
                    .bind(&r.app_id)
                    .bind(&r.kind)
                    .bind(&r.user_id)
                    .bind(&r.session_handle)
                    .bind(&r.client_ip)
                    .bind(&r.detail)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn audit_events(
                &self,
                q: &$crate::store::audit::AuditQuery,
            ) -> Result<Vec<$crate::store::audit::AuditRow>, $crate::error::StoreError> {
                use sqlx::Row;
                use $crate::store::sql::{from_db, to_db};
                let rows = sqlx::query(
                    "SELECT id, at_ms, app_id, kind, user_id, session_handle, client_ip, detail \
                     FROM tessera_audit_event \
                     WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR user_id = $2) \
                     AND ($3 IS NULL OR app_id = $3) AND ($4 IS NULL OR at_ms >= $4) \
                     AND ($5 IS NULL OR at_ms < $5) \
                     ORDER BY at_ms DESC, id DESC LIMIT $6",
                )
                .bind(&q.kind)
                .bind(&q.user_id)
                .bind(&q.app_id)
                .bind(q.since_ms.map(to_db))
                .bind(q.until_ms.map(to_db))
                .bind(i64::from(q.effective_limit()))
                .fetch_all(&mut *self.acquire_timed().await?)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::audit::AuditRow {
                            id: r.try_get("id")?,
                            at_ms: from_db(r.try_get("at_ms")?),
                            app_id: r.try_get("app_id")?,
                            kind: r.try_get("kind")?,
                            user_id: r.try_get("user_id")?,
                            session_handle: r.try_get("session_handle")?,
                            client_ip: r.try_get("client_ip")?,
                            detail: r.try_get("detail")?,
                        })
                    })
                    .collect()
            }

            async fn delete_audit_events_before(
                &self,
                before_ms: u64,
                limit: u64,
            ) -> Result<u64, $crate::error::StoreError> {
                use $crate::store::sql::to_db;
                let done = sqlx::query(
                    "DELETE FROM tessera_audit_event WHERE id IN \
                     (SELECT id FROM tessera_audit_event WHERE at_ms < $1 LIMIT $2)",
                )
                .bind(to_db(before_ms))
                .bind(to_db(limit))
                .execute(&mut *self.writer().await?)
                .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_audit_store;
