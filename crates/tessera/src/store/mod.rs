//! Persistence behind one small trait. The engine knows nothing about SQL; each backend is a
//! plain implementation. Every multi-step rule the engine needs atomically is expressed as a
//! single conditional statement (compare-and-set), so no transaction crosses the trait.

pub mod audit;
pub mod dbsc;
pub mod devices;
pub mod postgres;
mod sql;
pub mod sqlite;

use crate::error::StoreError;
use async_trait::async_trait;

pub use audit::{AuditQuery, AuditRow, AuditStore, MAX_AUDIT_QUERY};
pub use dbsc::{DbscBinding, DbscStore};
pub use devices::{DeviceListing, DeviceRow, DeviceStore};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, SQLITE_MAX_GROUP};

/// Most expired sessions one clean-up statement deletes (PostgreSQL; see
/// [`Store::cleanup_batch`]).
pub const CLEANUP_BATCH: u64 = 1_000;

/// One session row (`session_info`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// App id.
    pub app_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Session handle.
    pub session_handle: String,
    /// Recipe user id.
    pub user_id: String,
    /// hash2 of the current refresh token.
    pub refresh_token_hash2: String,
    /// hash2 of the token that was current before the last promotion.
    pub prev_refresh_token_hash2: Option<String>,
    /// When the last promotion happened, epoch ms.
    pub refresh_token_rotated_at: Option<u64>,
    /// JSON text of the session data (`userDataInDatabase`).
    pub session_data: String,
    /// JSON text of the custom access-token claims.
    pub jwt_user_payload: String,
    /// Session (refresh-token) expiry, epoch ms.
    pub expires_at: u64,
    /// Creation time, epoch ms.
    pub created_at: u64,
    /// Sign this session's access tokens with the static key.
    pub use_static_key: bool,
}

/// A session [`Store::delete_sessions`] removed: its handle and the user it belonged to (so a
/// revocation by handle can still say whose session it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedSession {
    /// Session handle.
    pub session_handle: String,
    /// Recipe user id of the deleted row.
    pub user_id: String,
}

/// A promotion: the new lineage values written if the row still has `expected_current`.
#[derive(Debug, Clone)]
pub struct LineageUpdate<'a> {
    /// The `current` value the decision was made on.
    pub expected_current: &'a str,
    /// New `current`.
    pub current: &'a str,
    /// New `prev`.
    pub prev: Option<&'a str>,
    /// New `rotated_at`.
    pub rotated_at: Option<u64>,
    /// New expiry.
    pub expires_at: u64,
    /// New key type.
    pub use_static_key: bool,
}

/// A stored key record: `value` is `<b64 SPKI>|<b64 PKCS#8>`.
#[derive(Clone)]
pub struct StoredKey {
    /// Key id (`d-<created>` or `s-<uuid>`).
    pub kid: String,
    /// Storage form of the key pair.
    pub value: String,
    /// Creation time, epoch ms.
    pub created_at: u64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A connection pool's state at one moment (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
    /// Connections acquired for single queries since the store opened (transactions are not
    /// counted).
    pub acquires: u64,
    /// Total time those acquisitions waited for a connection.
    pub acquire_wait: std::time::Duration,
}

/// Counts connection acquisitions and the time they waited (cumulative, lock-free).
#[derive(Debug, Default)]
pub(crate) struct AcquireWaits {
    count: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

impl AcquireWaits {
    pub(crate) fn record(&self, waited: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.count.fetch_add(1, Relaxed);
        self.nanos.fetch_add(
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    pub(crate) fn totals(&self) -> (u64, std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.count.load(Relaxed),
            std::time::Duration::from_nanos(self.nanos.load(Relaxed)),
        )
    }
}

impl PoolStats {
    /// Connections in use (`size - idle`).
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
}

/// What the engine needs from a database (device metadata: [`DeviceStore`]; the audit trail:
/// [`AuditStore`]; device-bound sessions: [`DbscStore`]).
#[async_trait]
pub trait Store: DeviceStore + AuditStore + DbscStore {
    /// Inserts a new session row.
    async fn insert_session(&self, row: &SessionRow) -> Result<(), StoreError>;

    /// Inserts a new session row and its device row, both or neither (the create path). The
    /// SQL backends do it in one call: one statement on PostgreSQL, one transaction on SQLite.
    async fn insert_session_with_device(
        &self,
        row: &SessionRow,
        device: &DeviceRow,
    ) -> Result<(), StoreError> {
        self.insert_session(row).await?;
        self.insert_device(device).await
    }

    /// Reads a row by handle (expired rows included; the caller decides).
    async fn get_session(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<SessionRow>, StoreError>;

    /// [`Self::get_session`] and whether a DBSC key is bound to the session, in one read (the
    /// refresh path, which refuses a bound session without a device proof).
    async fn get_session_for_refresh(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<(SessionRow, bool)>, StoreError> {
        let bound = self
            .get_dbsc_binding(app_id, tenant_id, handle)
            .await?
            .is_some();
        Ok(self
            .get_session(app_id, tenant_id, handle)
            .await?
            .map(|row| (row, bound)))
    }

    /// Writes new lineage values if `current` still equals `update.expected_current`.
    /// Returns false when another writer got there first.
    async fn update_lineage(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
        update: &LineageUpdate<'_>,
    ) -> Result<bool, StoreError>;

    /// Sets `use_static_key`.
    async fn set_use_static_key(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
        use_static_key: bool,
    ) -> Result<(), StoreError>;

    /// Replaces the custom access-token claims of a live session; false if none.
    async fn update_jwt_payload(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
        payload_json: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Replaces the session data of a live session; false if none.
    async fn update_session_data(
        &self,
        app_id: &str,
        tenant_id: &str,
        handle: &str,
        data_json: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Deletes sessions by `(tenant, handle)`; returns the ones that existed, with their users.
    async fn delete_sessions(
        &self,
        app_id: &str,
        handles: &[(String, String)],
    ) -> Result<Vec<DeletedSession>, StoreError>;

    /// Handles of a user's sessions with `expires_at >= now`, in one tenant or all.
    async fn session_handles_for_user(
        &self,
        app_id: &str,
        tenant_id: Option<&str>,
        user_id: &str,
        now_ms: u64,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Deletes at most `limit` sessions with `expires_at <= now`, in every app, in one
    /// statement; returns the count. The engine calls it in a loop (SEC2-L2): one statement
    /// over millions of rows would hold SQLite's write lock for seconds.
    async fn delete_expired_sessions(&self, now_ms: u64, limit: u64) -> Result<u64, StoreError>;

    /// How many expired sessions one [`Self::delete_expired_sessions`] call of the engine's
    /// clean-up deletes: [`CLEANUP_BATCH`] unless the backend needs shorter statements.
    fn cleanup_batch(&self) -> u64 {
        CLEANUP_BATCH
    }

    /// Counts session rows of an app (for tests and metrics).
    async fn count_sessions(&self, app_id: &str) -> Result<u64, StoreError>;

    /// Dynamic keys created at or after `created_since`.
    async fn dynamic_keys(
        &self,
        app_id: &str,
        created_since: u64,
    ) -> Result<Vec<StoredKey>, StoreError>;

    /// Inserts `key` unless a dynamic key created at or after `fresh_since` exists, atomically
    /// across instances. Returns true if inserted.
    async fn insert_dynamic_key_unless_fresh(
        &self,
        app_id: &str,
        key: &StoredKey,
        fresh_since: u64,
    ) -> Result<bool, StoreError>;

    /// Deletes dynamic keys created before `created_before`; returns the count.
    async fn delete_dynamic_keys_before(
        &self,
        app_id: &str,
        created_before: u64,
    ) -> Result<u64, StoreError>;

    /// Static RS256 keys.
    async fn static_keys(&self, app_id: &str) -> Result<Vec<StoredKey>, StoreError>;

    /// Inserts `key` unless a static RS256 key exists, atomically across instances.
    async fn insert_static_key_unless_present(
        &self,
        app_id: &str,
        key: &StoredKey,
    ) -> Result<bool, StoreError>;

    /// Inserts a static key unconditionally (tests and imports; the engine never stores an
    /// operator-supplied key).
    async fn insert_static_key(&self, app_id: &str, key: &StoredKey) -> Result<(), StoreError>;

    /// Deletes one static key; true if it existed.
    async fn delete_static_key(&self, app_id: &str, kid: &str) -> Result<bool, StoreError>;

    /// Returns the value under `name`, inserting `value` first if absent (first writer wins).
    async fn get_or_insert_key_value(
        &self,
        app_id: &str,
        name: &str,
        value: &str,
        now_ms: u64,
    ) -> Result<String, StoreError>;

    /// Runs a trivial read, to check the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's state, for stores that pool connections (metrics).
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }

    /// Creates or replaces the stored core-config overrides of an app (JSON text); returns
    /// true if the app was new. The default keeps nothing (an app then lives only in memory).
    async fn put_app_config(
        &self,
        app_id: &str,
        config_json: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let _ = (app_id, config_json, now_ms);
        Ok(true)
    }

    /// The stored core-config overrides of an app and when the app was created (epoch ms),
    /// if it was created. The creation time tells a re-created app from the one removed
    /// before it.
    async fn get_app_config(&self, app_id: &str) -> Result<Option<(String, u64)>, StoreError> {
        let _ = app_id;
        Ok(None)
    }

    /// Removes an app with everything it owns — its sessions, signing keys, refresh-token
    /// master key, anonymous key and stored settings — in one transaction, so a re-created
    /// app of the same id starts empty (SEC2-M2). Never removes `public`. True if the app was
    /// created (its settings existed).
    async fn delete_app(&self, app_id: &str) -> Result<bool, StoreError> {
        let _ = app_id;
        Ok(false)
    }
}
