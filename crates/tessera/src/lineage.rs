//! Refresh-token lineage v2: the rules that decide, from the session row and a presented
//! token, what a refresh answers and whether a database-checked verify writes.
//!
//! # The row
//! `head` (hash2 of the token the session is on; the `current` column), `prev` (hash2 of the
//! head before the last promotion) and `rotated_at` (time of that promotion). With the grace
//! window `G` (`refresh_token_rotation_grace_period`):
//! `in_window = G > 0 && now <= rotated_at + G`.
//!
//! # Children
//! With `G > 0` children are **deterministic**: `child(X)` is derived from `X` alone
//! ([`crate::token::refresh::derive_child`]), so every refresh of the same token answers the
//! same child and a storm of concurrent refreshes has one lineage, not siblings. With `G = 0`
//! children are random and the rules below are exactly SuperTokens CDI ≤ 5.4 (nothing is ever
//! `in_window`).
//!
//! # Refresh with a presented token `X` ([`Lineage::decide_refresh`])
//! 1. `X == head` → answer `child(X)`; no write.
//! 2. `parent(X) == head` → `X` is the head's child in use. Outside the window: promote
//!    (`prev = head, head = X, rotated_at = now`, compare-and-set on `head`) and answer
//!    `child(X)`. Inside the window: answer `X` itself — the head's child — and write nothing,
//!    so a burst never moves the lineage twice within `G`.
//! 3. `X == prev` inside the window → a late request from before the promotion: answer the
//!    head's child, `child(child(X))`; no write, not theft.
//! 4. Anything else → theft; the session is revoked. The reason says which: the previous token
//!    after the window, a token branching off the previous token (a sibling at `G = 0`), or
//!    anything older.
//!
//! Inside the window every accepted token is therefore answered the head's child, and outside
//! it the head and the head's child are accepted: whatever reply a cookie jar keeps refreshes.
//!
//! # Verify of an access token with the database, CDI ≤ 5.4 ([`Lineage::decide_verify`])
//! 1. its parent is `head` → outside the window promote its refresh token; inside the window
//!    no write (a second promotion within `G` could strand a late request); either way a new
//!    access token without parent is minted;
//! 2. its own refresh token is `head` → valid (a token with a parent gets one without);
//! 3. anything older → valid until it expires; never theft, no write.
//!
//! Writes: a refresh or verify writes once when it promotes, never otherwise. Hash
//! comparisons are constant-time.

use aws_lc_rs::constant_time::verify_slices_are_equal;

/// The lineage columns of a session row.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    /// hash2 of the head (current) refresh token.
    pub current: &'a str,
    /// hash2 of the head before the last promotion.
    pub prev: Option<&'a str>,
    /// When the last promotion happened, epoch ms.
    pub rotated_at_ms: Option<u64>,
}

/// Why a presented refresh token is theft (reported as CDI 5.6 `recentTokenReuseSubtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TheftReason {
    /// The previous head, presented after the window.
    RecentPrev,
    /// A token whose parent is the previous head but that is not the head: a branch that
    /// lost (only possible with random children, `G = 0`).
    OrphanedBranch,
    /// Anything older or unrelated.
    StaleLineage,
}

impl TheftReason {
    /// The CDI 5.6 `recentTokenReuseSubtype` name.
    ///
    /// ```
    /// use tessera::TheftReason;
    /// assert_eq!(TheftReason::RecentPrev.as_str(), "RECENT_PREV");
    /// assert_eq!(TheftReason::parse("ORPHANED_BRANCH"), Some(TheftReason::OrphanedBranch));
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecentPrev => "RECENT_PREV",
            Self::OrphanedBranch => "ORPHANED_BRANCH",
            Self::StaleLineage => "STALE_LINEAGE",
        }
    }

    /// The reason named by [`Self::as_str`]; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::RecentPrev, Self::OrphanedBranch, Self::StaleLineage]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// What a refresh does, given the presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The head: answer its child, write nothing.
    Current,
    /// The head's child outside the window: promote it, answer its child.
    Promote,
    /// The head's child inside the window: answer the presented token itself, write nothing.
    ChildInWindow,
    /// The previous head inside the window: answer the head's child (`child(child(X))`),
    /// write nothing.
    LateParent,
    /// A rotated-out token: the session is revoked.
    Theft(TheftReason),
}

impl RefreshDecision {
    /// How many child steps from the presented token the answered refresh token is:
    /// `Some(0)` is the presented token itself, `Some(1)` its child, `Some(2)` its grandchild;
    /// `None` for theft.
    ///
    /// ```
    /// use tessera::RefreshDecision;
    /// assert_eq!(RefreshDecision::Current.answer_generation(), Some(1));
    /// assert_eq!(RefreshDecision::LateParent.answer_generation(), Some(2));
    /// ```
    pub fn answer_generation(self) -> Option<u8> {
        match self {
            Self::ChildInWindow => Some(0),
            Self::Current | Self::Promote => Some(1),
            Self::LateParent => Some(2),
            Self::Theft(_) => None,
        }
    }
}

/// What a database-checked verify does with an access token's lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyDecision {
    /// The token's parent is the head, outside the window: promote the token's refresh token
    /// and mint an access token without parent.
    Promote,
    /// The token's parent is the head, inside the window: no write; mint an access token
    /// without parent.
    ChildInWindow,
    /// The token's own refresh token is the head.
    Current,
    /// An older generation: valid until it expires, no new token, not theft.
    Older,
}

fn same(a: &str, b: &str) -> bool {
    verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

impl Lineage<'_> {
    /// Inside the window after the last promotion; a grace of 0 has no window at all.
    pub fn in_window(&self, now_ms: u64, grace_ms: u64) -> bool {
        grace_ms > 0
            && self
                .rotated_at_ms
                .is_some_and(|at| now_ms <= at.saturating_add(grace_ms))
    }

    /// Decides a refresh with a token whose hash2 is `presented` and whose parent's hash2
    /// (`sha256_hex(parentRefreshTokenHash1)`) is `parent`. The rules are listed in the
    /// module documentation, in this order.
    ///
    /// ```
    /// use tessera::RefreshDecision;
    /// use tessera::fuzzing::Lineage;
    /// let row = Lineage { current: "H", prev: Some("P"), rotated_at_ms: Some(1_000) };
    /// assert_eq!(row.decide_refresh("H", Some("P"), 1_500, 2_000), RefreshDecision::Current);
    /// assert_eq!(row.decide_refresh("P", None, 1_500, 2_000), RefreshDecision::LateParent);
    /// ```
    pub fn decide_refresh(
        &self,
        presented: &str,
        parent: Option<&str>,
        now_ms: u64,
        grace_ms: u64,
    ) -> RefreshDecision {
        let in_window = self.in_window(now_ms, grace_ms);
        let is_prev = self.prev.is_some_and(|p| same(presented, p));
        if same(presented, self.current) {
            RefreshDecision::Current
        } else if parent.is_some_and(|p| same(p, self.current)) {
            if in_window {
                RefreshDecision::ChildInWindow
            } else {
                RefreshDecision::Promote
            }
        } else if is_prev && in_window {
            RefreshDecision::LateParent
        } else if is_prev {
            RefreshDecision::Theft(TheftReason::RecentPrev)
        } else if parent.is_some_and(|p| self.prev.is_some_and(|prev| same(p, prev))) {
            RefreshDecision::Theft(TheftReason::OrphanedBranch)
        } else {
            RefreshDecision::Theft(TheftReason::StaleLineage)
        }
    }

    /// CDI 5.6 stateless verify: the access token whose refresh token has hash2 `own` and
    /// whose parent has hash2 `parent` belongs to the head or the previous head — one of them
    /// is in `{current, prev}`.
    ///
    /// ```
    /// use tessera::fuzzing::Lineage;
    /// let row = Lineage { current: "C", prev: Some("P"), rotated_at_ms: Some(1_000) };
    /// assert!(row.is_known("D", Some("C")));
    /// assert!(row.is_known("P", None));
    /// assert!(!row.is_known("X", Some("GP")));
    /// ```
    pub fn is_known(&self, own: &str, parent: Option<&str>) -> bool {
        let known = |h: &str| same(h, self.current) || self.prev.is_some_and(|p| same(h, p));
        known(own) || parent.is_some_and(known)
    }

    /// Decides a database-checked verify of an access token whose refresh token has hash2
    /// `own` and whose parent refresh token has hash2 `parent`.
    ///
    /// ```
    /// use tessera::fuzzing::{Lineage, VerifyDecision};
    /// let row = Lineage { current: "H", prev: None, rotated_at_ms: None };
    /// assert_eq!(row.decide_verify("C", Some("H"), 0, 2_000), VerifyDecision::Promote);
    /// assert_eq!(row.decide_verify("H", None, 0, 2_000), VerifyDecision::Current);
    /// ```
    pub fn decide_verify(
        &self,
        own: &str,
        parent: Option<&str>,
        now_ms: u64,
        grace_ms: u64,
    ) -> VerifyDecision {
        if parent.is_some_and(|p| same(p, self.current)) {
            if self.in_window(now_ms, grace_ms) {
                VerifyDecision::ChildInWindow
            } else {
                VerifyDecision::Promote
            }
        } else if same(own, self.current) {
            VerifyDecision::Current
        } else {
            VerifyDecision::Older
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RefreshDecision as R;
    use VerifyDecision as V;

    const G: u64 = 30_000;

    fn fresh() -> Lineage<'static> {
        Lineage {
            current: "P",
            prev: None,
            rotated_at_ms: None,
        }
    }

    fn promoted() -> Lineage<'static> {
        // P was the head, its child C got promoted at t=1000.
        Lineage {
            current: "C",
            prev: Some("P"),
            rotated_at_ms: Some(1_000),
        }
    }

    #[test]
    fn head_and_child() {
        assert_eq!(fresh().decide_refresh("P", None, 0, G), R::Current);
        assert_eq!(fresh().decide_refresh("C", Some("P"), 0, G), R::Promote);
        assert_eq!(
            promoted().decide_refresh("C", Some("P"), 5_000, G),
            R::Current
        );
        // The head's child: answered itself inside the window, promoted after it.
        let l = promoted();
        assert_eq!(
            l.decide_refresh("D", Some("C"), 1_000 + G, G),
            R::ChildInWindow
        );
        assert_eq!(l.decide_refresh("D", Some("C"), 1_001 + G, G), R::Promote);
        assert_eq!(
            l.decide_refresh("D", Some("C"), 1_001, 0),
            R::Promote,
            "grace 0"
        );
    }

    #[test]
    fn previous_head_is_late_inside_the_window_and_theft_after() {
        let l = promoted();
        assert_eq!(l.decide_refresh("P", None, 1_000 + G, G), R::LateParent);
        let theft = R::Theft(TheftReason::RecentPrev);
        assert_eq!(l.decide_refresh("P", None, 1_001 + G, G), theft);
        assert_eq!(l.decide_refresh("P", None, 1_001, 0), theft, "grace 0");
    }

    #[test]
    fn branches_and_older_tokens_are_theft() {
        let l = promoted();
        let orphan = R::Theft(TheftReason::OrphanedBranch);
        assert_eq!(l.decide_refresh("C2", Some("P"), 1_001, 0), orphan);
        assert_eq!(l.decide_refresh("C2", Some("P"), 1_001, G), orphan);
        let stale = R::Theft(TheftReason::StaleLineage);
        assert_eq!(l.decide_refresh("GP", None, 1_001, G), stale);
        assert_eq!(fresh().decide_refresh("X", None, 0, G), stale);
        assert_eq!(fresh().decide_refresh("X", Some("Y"), 0, G), stale);
    }

    #[test]
    fn verify_decisions() {
        assert_eq!(fresh().decide_verify("C", Some("P"), 0, G), V::Promote);
        assert_eq!(fresh().decide_verify("P", None, 0, G), V::Current);
        let l = promoted();
        assert_eq!(l.decide_verify("C", Some("P"), 2_000, G), V::Current);
        assert_eq!(l.decide_verify("D", Some("C"), 2_000, G), V::ChildInWindow);
        assert_eq!(l.decide_verify("D", Some("C"), 1_001 + G, G), V::Promote);
        assert_eq!(l.decide_verify("P", None, 2_000, G), V::Older, "older AT");
    }

    #[test]
    fn answer_generations() {
        assert_eq!(R::ChildInWindow.answer_generation(), Some(0));
        assert_eq!(R::Promote.answer_generation(), Some(1));
        assert_eq!(
            R::Theft(TheftReason::StaleLineage).answer_generation(),
            None
        );
    }
}
