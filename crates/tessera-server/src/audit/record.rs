//! Audit records: what each security event becomes. Rules:
//!
//! 1. One [`AuditKind`] per thing an operator asks about; a revocation of several sessions is
//!    one record per session, so a session's history reads by handle.
//! 2. Fields, never prose: app, user, session handle, client IP as their own fields; the rest
//!    (cause, reason, kid, count) in a small JSON `detail`.
//! 3. Nothing secret: records are built from [`SessionEvent`]s and from the server's own
//!    facts (an app id, an admin action), none of which carries a token, a hash or a key.

use crate::client_ip;
use serde_json::json;
use tessera::{AuditRow, SessionEvent};

/// What an audit record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A session was created.
    SessionCreated,
    /// A session was revoked; `detail.cause` says why.
    SessionRevoked,
    /// A rotated-out refresh token was presented; `detail.reason` says which kind of reuse.
    TheftDetected,
    /// A signing key was created; `detail.kid` names it.
    KeyCreated,
    /// Expired signing keys were deleted; `detail.count` says how many.
    KeysRetired,
    /// Expired sessions were deleted by the clean-up; `detail.count`.
    ExpiredSessionsRemoved,
    /// An app was created (`PUT /recipe/multitenancy/app/v2`).
    AppCreated,
    /// An app was removed.
    AppRemoved,
    /// An operator signed in to the admin page.
    AdminSignIn,
    /// A sign-in to the admin page was refused (wrong key, or too many tries).
    AdminSignInRefused,
    /// An operator signed out of the admin page.
    AdminSignOut,
    /// An operator revoked sessions from the admin page; `detail.handles`.
    AdminRevoke,
}

impl AuditKind {
    /// Every kind, in the order of [`Self::as_str`]'s documentation.
    pub const ALL: [AuditKind; 12] = [
        Self::SessionCreated,
        Self::SessionRevoked,
        Self::TheftDetected,
        Self::KeyCreated,
        Self::KeysRetired,
        Self::ExpiredSessionsRemoved,
        Self::AppCreated,
        Self::AppRemoved,
        Self::AdminSignIn,
        Self::AdminSignInRefused,
        Self::AdminSignOut,
        Self::AdminRevoke,
    ];

    /// The stored name (`session_created`, `session_revoked`, `theft_detected`, `key_created`,
    /// `keys_retired`, `expired_sessions_removed`, `app_created`, `app_removed`,
    /// `admin_sign_in`, `admin_sign_in_refused`, `admin_sign_out`, `admin_revoke`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionCreated => "session_created",
            Self::SessionRevoked => "session_revoked",
            Self::TheftDetected => "theft_detected",
            Self::KeyCreated => "key_created",
            Self::KeysRetired => "keys_retired",
            Self::ExpiredSessionsRemoved => "expired_sessions_removed",
            Self::AppCreated => "app_created",
            Self::AppRemoved => "app_removed",
            Self::AdminSignIn => "admin_sign_in",
            Self::AdminSignInRefused => "admin_sign_in_refused",
            Self::AdminSignOut => "admin_sign_out",
            Self::AdminRevoke => "admin_revoke",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A record being built: kind and time, then the optional fields.
#[derive(Debug, Clone)]
pub struct Record(pub(crate) AuditRow);

impl Record {
    /// A record of `kind` now, with the current request's client IP (if any) and an empty
    /// detail.
    pub fn new(kind: AuditKind) -> Self {
        Self(AuditRow {
            id: 0,
            at_ms: now_ms(),
            app_id: None,
            kind: kind.as_str().to_owned(),
            user_id: None,
            session_handle: None,
            client_ip: client_ip::current().map(|ip| ip.to_string()),
            detail: "{}".to_owned(),
        })
    }

    /// Sets the app.
    pub fn app(mut self, app_id: &str) -> Self {
        self.0.app_id = Some(app_id.to_owned());
        self
    }

    /// Sets the user.
    pub fn user(mut self, user_id: Option<&str>) -> Self {
        self.0.user_id = user_id.map(str::to_owned);
        self
    }

    /// Sets the session.
    pub fn session(mut self, handle: &str) -> Self {
        self.0.session_handle = Some(handle.to_owned());
        self
    }

    /// Sets the detail object.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.0.detail = detail.to_string();
        self
    }

    /// The row.
    pub fn into_row(self) -> AuditRow {
        self.0
    }
}

/// The records an engine event becomes (none for events that are counted only: refreshes,
/// guest mints, cache lookups).
pub fn records_of(event: &SessionEvent<'_>) -> Vec<Record> {
    match *event {
        SessionEvent::SessionCreated {
            app_id,
            tenant_id,
            session_handle,
            user_id,
        } => vec![Record::new(AuditKind::SessionCreated)
            .app(app_id)
            .user(Some(user_id))
            .session(session_handle)
            .detail(json!({"tenant_id": tenant_id}))],
        SessionEvent::TheftDetected {
            app_id,
            tenant_id,
            session_handle,
            user_id,
            reason,
        } => vec![Record::new(AuditKind::TheftDetected)
            .app(app_id)
            .user(Some(user_id))
            .session(session_handle)
            .detail(json!({"tenant_id": tenant_id, "reason": reason.as_str()}))],
        SessionEvent::SessionsRevoked {
            app_id,
            session_handles,
            user_id,
            cause,
        } => session_handles
            .iter()
            .map(|handle| {
                Record::new(AuditKind::SessionRevoked)
                    .app(app_id)
                    .user(user_id)
                    .session(handle)
                    .detail(json!({"cause": cause.as_str()}))
            })
            .collect(),
        SessionEvent::KeyCreated { app_id, kid } => vec![Record::new(AuditKind::KeyCreated)
            .app(app_id)
            .detail(json!({"kid": kid}))],
        SessionEvent::KeysRetired { app_id, count } => vec![Record::new(AuditKind::KeysRetired)
            .app(app_id)
            .detail(json!({"count": count}))],
        SessionEvent::ExpiredSessionsRemoved { count } => {
            vec![Record::new(AuditKind::ExpiredSessionsRemoved).detail(json!({"count": count}))]
        }
        _ => Vec::new(),
    }
}

/// Writes `row` to the `tessera::audit` tracing target as fields (a theft at `warn`, the rest
/// at `info`).
pub fn trace(row: &AuditRow) {
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: "tessera::audit",
                $level,
                kind = %row.kind,
                at_ms = row.at_ms,
                app_id = row.app_id.as_deref(),
                user_id = row.user_id.as_deref(),
                session_handle = row.session_handle.as_deref(),
                client_ip = row.client_ip.as_deref(),
                detail = %row.detail,
                "audit"
            )
        };
    }
    if row.kind == AuditKind::TheftDetected.as_str() {
        emit!(tracing::Level::WARN);
    } else {
        emit!(tracing::Level::INFO);
    }
}

/// Epoch milliseconds now (system clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
