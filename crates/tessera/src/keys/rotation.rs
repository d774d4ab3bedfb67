//! Dynamic signing-key timing (SuperTokens core §9.2), as pure functions of the clock.
//!
//! With `I` = update interval, `V` = access-token validity and `O` = overlap (60 s):
//! - a key verifies for `I + 2V` after its creation, then it is dropped and deleted;
//! - a new key is due when the newest one is older than `I − O`;
//! - a new key is published at once but signs only once it is `O` old, so every verifier that
//!   refreshed its JWKS in the meantime already knows it (the previous key keeps signing while
//!   it is inside its own interval).

/// Timing parameters, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationTiming {
    /// `I`: how long a dynamic key signs.
    pub update_interval_ms: u64,
    /// `V`: access-token validity.
    pub access_token_validity_ms: u64,
    /// `O`: how long a new key is published before it signs.
    pub overlap_ms: u64,
}

impl RotationTiming {
    /// `created + I + 2V`: the last instant a dynamic key verifies.
    pub fn verify_until(&self, created_ms: u64) -> u64 {
        created_ms
            .saturating_add(self.update_interval_ms)
            .saturating_add(self.access_token_validity_ms.saturating_mul(2))
    }

    /// True when a key created at `newest_created_ms` no longer counts as fresh, so a new key
    /// must be generated (`newest < now − I + O`). `None` (no key at all) is always due.
    pub fn new_key_due(&self, newest_created_ms: Option<u64>, now_ms: u64) -> bool {
        match newest_created_ms {
            None => true,
            Some(created) => {
                created.saturating_add(self.update_interval_ms)
                    < now_ms.saturating_add(self.overlap_ms)
            }
        }
    }

    /// The oldest creation time that still counts as fresh (`now − I + O`); a key created at or
    /// after it makes generation unnecessary.
    pub fn fresh_threshold(&self, now_ms: u64) -> u64 {
        now_ms
            .saturating_add(self.overlap_ms)
            .saturating_sub(self.update_interval_ms)
    }

    /// Index of the key that signs now, in a list sorted newest first: the newest, unless it is
    /// younger than `O` and the second-newest is still inside its interval.
    pub fn signing_index(&self, created_newest_first: &[u64], now_ms: u64) -> Option<usize> {
        match created_newest_first {
            [] => None,
            [newest, second, ..]
                if now_ms < newest.saturating_add(self.overlap_ms)
                    && now_ms < second.saturating_add(self.update_interval_ms) =>
            {
                Some(1)
            }
            _ => Some(0),
        }
    }

    /// `Cache-Control: max-age` for the JWKS: seconds until the next key is due, at least 1.
    pub fn jwks_max_age_s(&self, newest_created_ms: Option<u64>, now_ms: u64) -> u64 {
        let Some(created) = newest_created_ms else {
            return 1;
        };
        let due = created
            .saturating_add(self.update_interval_ms)
            .saturating_sub(self.overlap_ms);
        (due.saturating_sub(now_ms) / 1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn timing() -> RotationTiming {
        RotationTiming {
            update_interval_ms: 168 * H,
            access_token_validity_ms: H,
            overlap_ms: 60_000,
        }
    }

    #[test]
    fn key_lifetime_is_interval_plus_two_validities() {
        assert_eq!(timing().verify_until(0), 170 * H);
    }

    #[test]
    fn new_key_is_due_one_overlap_before_the_interval_ends() {
        let t = timing();
        assert!(t.new_key_due(None, 0));
        assert!(!t.new_key_due(Some(0), 168 * H - 60_000));
        assert!(t.new_key_due(Some(0), 168 * H - 59_999));
    }

    #[test]
    fn a_new_key_is_published_before_it_signs() {
        let t = timing();
        let old = 0;
        let new = 168 * H - 60_000;
        assert_eq!(
            t.signing_index(&[new, old], new),
            Some(1),
            "old key keeps signing"
        );
        assert_eq!(t.signing_index(&[new, old], new + 59_999), Some(1));
        assert_eq!(
            t.signing_index(&[new, old], new + 60_000),
            Some(0),
            "overlap passed"
        );
        assert_eq!(t.signing_index(&[new], new), Some(0), "no older key");
        assert_eq!(t.signing_index(&[], new), None);
        // The older key has left its interval: the new one signs at once.
        assert_eq!(t.signing_index(&[new, old], 168 * H), Some(0));
    }

    #[test]
    fn jwks_max_age_counts_down_to_the_next_key() {
        let t = RotationTiming {
            update_interval_ms: H,
            ..timing()
        };
        assert_eq!(t.jwks_max_age_s(Some(0), 0), 3540);
        assert_eq!(t.jwks_max_age_s(Some(0), 1_000), 3539);
        assert_eq!(t.jwks_max_age_s(Some(0), 10 * H), 1);
        assert_eq!(t.jwks_max_age_s(None, 0), 1);
    }

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        let t = RotationTiming {
            update_interval_ms: u64::MAX,
            access_token_validity_ms: u64::MAX,
            overlap_ms: u64::MAX,
        };
        assert_eq!(t.verify_until(u64::MAX), u64::MAX);
        let _ = t.new_key_due(Some(u64::MAX), u64::MAX);
        let _ = t.signing_index(&[u64::MAX, u64::MAX], u64::MAX);
        let _ = t.jwks_max_age_s(Some(u64::MAX), 0);
    }
}
