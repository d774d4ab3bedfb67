//! Security events: what the engine reports as it works, for metrics and an audit trail.
//!
//! Rules:
//! 1. An event names what happened and to which session, user and app; it never carries a
//!    token, a token hash, a key or a secret (`kid`s are public and allowed).
//! 2. Events are reported after the store agreed (a session is "created" once its row is
//!    written, "revoked" once the delete returned it), never for a write that failed.
//! 3. A sink is called inline on the request path: it must not block or fail. Count, or hand
//!    the record to a channel; do I/O elsewhere.
//! 4. With no sink configured the engine calls [`NoEvents`], which does nothing.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use tessera::{EventSink, SessionEvent};
//!
//! #[derive(Default)]
//! struct Thefts(AtomicU64);
//! impl EventSink for Thefts {
//!     fn record(&self, event: &SessionEvent<'_>) {
//!         if matches!(event, SessionEvent::TheftDetected { .. }) {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//! // SessionEngine::builder(store).events(Arc::new(Thefts::default()))
//! ```

use crate::lineage::{RefreshDecision, TheftReason};

/// How a refresh was answered (the lineage decision, `crate::lineage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// The head was presented: its child answered, nothing written.
    Current,
    /// The head's child outside the window: promoted with one write.
    Promoted,
    /// The head's child inside the window: adopted as is, nothing written.
    Adopted,
    /// The previous head inside the window: the head's child reissued, nothing written.
    Reissued,
    /// A rotated-out token: theft, the session revoked.
    Theft,
}

impl RefreshOutcome {
    /// A stable lower-case label (`current`, `promoted`, `adopted`, `reissued`, `theft`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Promoted => "promoted",
            Self::Adopted => "adopted",
            Self::Reissued => "reissued",
            Self::Theft => "theft",
        }
    }
}

impl From<&RefreshDecision> for RefreshOutcome {
    fn from(decision: &RefreshDecision) -> Self {
        match decision {
            RefreshDecision::Current => Self::Current,
            RefreshDecision::Promote => Self::Promoted,
            RefreshDecision::ChildInWindow => Self::Adopted,
            RefreshDecision::LateParent => Self::Reissued,
            RefreshDecision::Theft(_) => Self::Theft,
        }
    }
}

/// Why sessions were revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokeCause {
    /// A caller asked for these sessions by handle (sign-out, the core's `/recipe/session/remove`).
    Requested,
    /// A caller asked for every session of a user.
    AllForUser,
    /// The user revoked one of their devices, or every device but the current one.
    Device,
    /// An operator, from the admin page.
    Admin,
    /// Refresh-token reuse: theft.
    Theft,
    /// The user's session cap made room for a new session.
    Cap,
    /// The session's absolute or idle lifetime ended.
    Lifetime,
}

impl RevokeCause {
    /// A stable lower-case label (`requested`, `all_for_user`, `device`, `admin`, `theft`,
    /// `cap`, `lifetime`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::AllForUser => "all_for_user",
            Self::Device => "device",
            Self::Admin => "admin",
            Self::Theft => "theft",
            Self::Cap => "cap",
            Self::Lifetime => "lifetime",
        }
    }
}

/// One thing the engine did that an operator may want to count or keep.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SessionEvent<'a> {
    /// A session row was written.
    SessionCreated {
        /// The app.
        app_id: &'a str,
        /// The tenant.
        tenant_id: &'a str,
        /// The new session's handle.
        session_handle: &'a str,
        /// Its user.
        user_id: &'a str,
    },
    /// A refresh was answered with new tokens.
    Refreshed {
        /// The app.
        app_id: &'a str,
        /// The session.
        session_handle: &'a str,
        /// Which lineage decision answered it (never [`RefreshOutcome::Theft`] here).
        outcome: RefreshOutcome,
    },
    /// A rotated-out refresh token was presented; the session is revoked (a
    /// [`SessionEvent::SessionsRevoked`] with [`RevokeCause::Theft`] follows when the delete
    /// found it).
    TheftDetected {
        /// The app.
        app_id: &'a str,
        /// The tenant.
        tenant_id: &'a str,
        /// The session.
        session_handle: &'a str,
        /// Its user.
        user_id: &'a str,
        /// Which kind of reuse.
        reason: TheftReason,
    },
    /// Sessions were deleted.
    SessionsRevoked {
        /// The app.
        app_id: &'a str,
        /// The handles the store deleted (never empty).
        session_handles: &'a [String],
        /// The user, when the engine knows it.
        user_id: Option<&'a str>,
        /// Why.
        cause: RevokeCause,
    },
    /// A guest token was minted (a first visit, or a re-signed guest token).
    AnonymousMinted {
        /// The app.
        app_id: &'a str,
    },
    /// A new signing key was stored.
    KeyCreated {
        /// The app.
        app_id: &'a str,
        /// Its public key id.
        kid: &'a str,
    },
    /// Expired signing keys were deleted by the clean-up.
    KeysRetired {
        /// The app.
        app_id: &'a str,
        /// How many.
        count: u64,
    },
    /// Expired sessions were deleted by the clean-up.
    ExpiredSessionsRemoved {
        /// How many.
        count: u64,
    },
    /// An access token was checked against the verified-token cache.
    VerifyCache {
        /// The app.
        app_id: &'a str,
        /// Whether the cache answered.
        hit: bool,
    },
}

/// Receives [`SessionEvent`]s. See the module rules: inline, non-blocking, infallible.
pub trait EventSink: Send + Sync + 'static {
    /// Called once per event.
    fn record(&self, event: &SessionEvent<'_>);
}

/// The sink that does nothing (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _event: &SessionEvent<'_>) {}
}

/// Several sinks, each called in order.
#[derive(Default)]
pub struct EventFanout(pub Vec<std::sync::Arc<dyn EventSink>>);

impl EventSink for EventFanout {
    fn record(&self, event: &SessionEvent<'_>) {
        for sink in &self.0 {
            sink.record(event);
        }
    }
}
