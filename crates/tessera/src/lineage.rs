//! Refresh-token lineage: the rules that decide, from the session row and a presented token,
//! whether the presenter holds the current token, a child to promote, a sibling inside the
//! grace window — or a rotated-out token, which is theft.
//!
//! # The model
//! The row stores `current` (hash2 of the refresh token the session is on), `prev` (hash2 of
//! the token that was current before the last promotion) and `rotated_at` (time of that
//! promotion). A refresh with the current token P mints a child C whose plaintext names P as
//! parent, and **writes nothing**: P stays current until C is *used* — its first access token
//! is verified with the database (that token carries `parentRefreshTokenHash1`) or C itself is
//! presented for refresh. Using C *promotes* it: `prev := current, current := C,
//! rotated_at := now`.
//!
//! # Concurrency semantics (decided here, tested in `tests/engine_*.rs`)
//! * **Several tabs refreshing at once with the same token are never theft.** Every refresh
//!   with the current token succeeds and yields its own child; none of them writes. When one
//!   child is promoted, its siblings (children of `prev`) are still accepted for
//!   `grace` after `rotated_at`: presenting one (refresh or access-token verify) makes it the
//!   current token, without moving `prev` or `rotated_at`, so the window cannot be stretched.
//!   Whichever sibling a browser's cookie jar ends up holding therefore keeps working.
//! * **The previous token inside the window is a late concurrent refresh, not theft.** A tab
//!   that sent the old token before another tab's child was promoted arrives with `prev`; for
//!   `grace` after `rotated_at` it gets a new child, which becomes current
//!   ([`RefreshDecision::ReissueFromPrevious`]); the promoted sibling then counts as a sibling.
//!   (The headless-Chromium two-tab test without the cross-tab lock produced exactly this.)
//! * **A token whose successor was promoted is theft once the window has passed.** Presenting
//!   `prev` or a sibling after the window, or any older token at any time, is
//!   [`RefreshDecision::Theft`]; the engine then revokes the session. A lost refresh response
//!   never leads here: refreshing with the current token writes nothing, and a promoted child
//!   is current, so a retry of either hits [`RefreshDecision::Current`].
//! * Promotions are compare-and-set updates keyed on the `current` value read, so two
//!   concurrent uses of the same child promote once; the loser re-reads and sees
//!   [`RefreshDecision::Current`].
//!
//! Hash comparisons are constant-time.

use aws_lc_rs::constant_time::verify_slices_are_equal;

/// The lineage columns of a session row.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    /// hash2 of the current refresh token.
    pub current: &'a str,
    /// hash2 of the token current before the last promotion.
    pub prev: Option<&'a str>,
    /// When the last promotion happened, epoch ms.
    pub rotated_at_ms: Option<u64>,
}

/// What a presented token is, as far as refresh is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The current token: mint a child, write nothing.
    Current,
    /// A child of the current token: promote it, then mint its child.
    PromoteChild,
    /// A sibling of the current token inside the grace window: make it current (keeping
    /// `prev` and `rotated_at`), then mint its child.
    AdoptSibling,
    /// The previous token inside the grace window: mint a new child of it and make that child
    /// current (keeping `prev` and `rotated_at`).
    ReissueFromPrevious,
    /// Anything else: a rotated-out token. The session is revoked.
    Theft,
}

/// What an access token's lineage is, as far as a database-checked verify is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyDecision {
    /// The token's parent is current: promote the token's refresh token and mint a new
    /// access token without parent.
    Promote,
    /// The token's own refresh token is current.
    Current,
    /// A sibling inside the grace window: make its refresh token current and mint.
    AdoptSibling,
    /// An older generation: valid until it expires, no new token, not theft.
    Older,
}

fn same(a: &str, b: &str) -> bool {
    verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

impl Lineage<'_> {
    /// Inside the window after the last promotion; a grace of 0 has no window at all.
    fn in_grace(&self, now_ms: u64, grace_ms: u64) -> bool {
        grace_ms > 0
            && self
                .rotated_at_ms
                .is_some_and(|at| now_ms <= at.saturating_add(grace_ms))
    }

    fn sibling_in_grace(&self, parent_hash2: Option<&str>, now_ms: u64, grace_ms: u64) -> bool {
        match (parent_hash2, self.prev) {
            (Some(parent), Some(prev)) => same(parent, prev) && self.in_grace(now_ms, grace_ms),
            _ => false,
        }
    }

    /// Classifies a refresh with a token whose hash2 is `presented` and whose parent's hash2
    /// (`sha256_hex(parentRefreshTokenHash1)`) is `parent`.
    pub fn decide_refresh(
        &self,
        presented: &str,
        parent: Option<&str>,
        now_ms: u64,
        grace_ms: u64,
    ) -> RefreshDecision {
        if same(presented, self.current) {
            RefreshDecision::Current
        } else if parent.is_some_and(|p| same(p, self.current)) {
            RefreshDecision::PromoteChild
        } else if self.sibling_in_grace(parent, now_ms, grace_ms) {
            RefreshDecision::AdoptSibling
        } else if self.prev.is_some_and(|p| same(presented, p)) && self.in_grace(now_ms, grace_ms) {
            RefreshDecision::ReissueFromPrevious
        } else {
            RefreshDecision::Theft
        }
    }

    /// Classifies an access token whose refresh token has hash2 `own` and whose parent refresh
    /// token has hash2 `parent`.
    pub fn decide_verify(
        &self,
        own: &str,
        parent: Option<&str>,
        now_ms: u64,
        grace_ms: u64,
    ) -> VerifyDecision {
        if parent.is_some_and(|p| same(p, self.current)) {
            VerifyDecision::Promote
        } else if same(own, self.current) {
            VerifyDecision::Current
        } else if self.sibling_in_grace(parent, now_ms, grace_ms) {
            VerifyDecision::AdoptSibling
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
        // P was current, child C1 got promoted at t=1000.
        Lineage {
            current: "C1",
            prev: Some("P"),
            rotated_at_ms: Some(1_000),
        }
    }

    #[test]
    fn refresh_with_current_or_child() {
        assert_eq!(fresh().decide_refresh("P", None, 0, G), R::Current);
        assert_eq!(
            fresh().decide_refresh("C", Some("P"), 0, G),
            R::PromoteChild
        );
        assert_eq!(
            promoted().decide_refresh("C1", Some("P"), 5_000, G),
            R::Current
        );
    }

    #[test]
    fn parent_after_promotion_is_reissued_inside_grace_and_theft_after() {
        assert_eq!(
            promoted().decide_refresh("P", None, 1_000 + G, G),
            R::ReissueFromPrevious
        );
        assert_eq!(promoted().decide_refresh("P", None, 1_001 + G, G), R::Theft);
        assert_eq!(
            promoted().decide_refresh("P", None, 1_001, 0),
            R::Theft,
            "grace 0"
        );
        assert_eq!(
            promoted().decide_refresh("GP", None, 1_001, G),
            R::Theft,
            "older"
        );
    }

    #[test]
    fn sibling_is_adopted_inside_grace_and_theft_after() {
        let l = promoted();
        assert_eq!(
            l.decide_refresh("C2", Some("P"), 1_000 + G, G),
            R::AdoptSibling
        );
        assert_eq!(l.decide_refresh("C2", Some("P"), 1_001 + G, G), R::Theft);
        assert_eq!(
            l.decide_refresh("C2", Some("P"), 1_000, 0),
            R::Theft,
            "no window"
        );
        assert_eq!(
            l.decide_refresh("C2", Some("P"), 1_001, 0),
            R::Theft,
            "grace 0"
        );
    }

    #[test]
    fn unrelated_tokens_are_theft() {
        assert_eq!(fresh().decide_refresh("X", None, 0, G), R::Theft);
        assert_eq!(fresh().decide_refresh("X", Some("Y"), 0, G), R::Theft);
        assert_eq!(
            promoted().decide_refresh("X", Some("Y"), 1_000, G),
            R::Theft
        );
    }

    #[test]
    fn verify_decisions() {
        assert_eq!(fresh().decide_verify("C", Some("P"), 0, G), V::Promote);
        assert_eq!(fresh().decide_verify("P", None, 0, G), V::Current);
        let l = promoted();
        assert_eq!(l.decide_verify("C1", Some("P"), 2_000, G), V::Current);
        assert_eq!(l.decide_verify("C2", Some("P"), 2_000, G), V::AdoptSibling);
        assert_eq!(l.decide_verify("C2", Some("P"), 1_001 + G, G), V::Older);
        assert_eq!(
            l.decide_verify("P", None, 2_000, G),
            V::Older,
            "grandparent AT"
        );
    }
}
