//! Live counters for the admin page: how many of each event this process has seen since it
//! started. A relaxed atomic add per event; no lock, no allocation. (Prometheus metrics are a
//! separate sink; these exist so the admin page works without an exporter.)

use super::record::AuditKind;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera::{RefreshOutcome, SessionEvent};

/// Counter names, in index order.
pub const COUNTER_NAMES: [&str; 16] = [
    "session_created",
    "refreshed",
    "theft_detected",
    "session_revoked",
    "anonymous_minted",
    "key_created",
    "keys_retired",
    "expired_sessions_removed",
    "verify_cache_hit",
    "verify_cache_miss",
    "app_created",
    "app_removed",
    "admin_sign_in",
    "admin_sign_in_refused",
    "admin_revoke",
    "audit_records_dropped",
];

/// Index of the dropped-records counter.
pub(crate) const DROPPED: usize = 15;

/// Event counts since start.
#[derive(Debug, Default)]
pub struct Counters {
    values: [AtomicU64; COUNTER_NAMES.len()],
}

impl Counters {
    pub(crate) fn add(&self, index: usize, n: u64) {
        if let Some(v) = self.values.get(index) {
            v.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts an engine event.
    pub(crate) fn count_event(&self, event: &SessionEvent<'_>) {
        let (index, n) = match event {
            SessionEvent::SessionCreated { .. } => (0, 1),
            SessionEvent::Refreshed { outcome, .. } if *outcome != RefreshOutcome::Theft => (1, 1),
            SessionEvent::TheftDetected { .. } => (2, 1),
            SessionEvent::SessionsRevoked {
                session_handles, ..
            } => (3, session_handles.len() as u64),
            SessionEvent::AnonymousMinted { .. } => (4, 1),
            SessionEvent::KeyCreated { .. } => (5, 1),
            SessionEvent::KeysRetired { count, .. } => (6, *count),
            SessionEvent::ExpiredSessionsRemoved { count } => (7, *count),
            SessionEvent::VerifyCache { hit: true, .. } => (8, 1),
            SessionEvent::VerifyCache { hit: false, .. } => (9, 1),
            _ => return,
        };
        self.add(index, n);
    }

    /// Counts a record the server made itself (apps, admin actions).
    pub(crate) fn count_kind(&self, kind: AuditKind) {
        let index = match kind {
            AuditKind::AppCreated => 10,
            AuditKind::AppRemoved => 11,
            AuditKind::AdminSignIn => 12,
            AuditKind::AdminSignInRefused => 13,
            AuditKind::AdminRevoke => 14,
            _ => return,
        };
        self.add(index, 1);
    }

    /// `(name, count)` for every counter.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        COUNTER_NAMES
            .iter()
            .zip(self.values.iter())
            .map(|(name, v)| (*name, v.load(Ordering::Relaxed)))
            .collect()
    }
}
