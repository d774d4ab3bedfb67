//! Engine settings, with the SuperTokens core's defaults and bounds.

use crate::error::EngineError;
use crate::keys::rotation::RotationTiming;

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// Session settings for one app. All durations are in milliseconds.
///
/// ```
/// let config = tessera::SessionConfig {
///     access_token_validity_ms: 15 * 60 * 1000,
///     ..Default::default()
/// };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Access-token lifetime (`access_token_validity`, default 3600 s; 1 s … 1000 days).
    pub access_token_validity_ms: u64,
    /// Refresh-token (session) idle lifetime (`refresh_token_validity`, default 100 days);
    /// must exceed the access-token validity.
    pub refresh_token_validity_ms: u64,
    /// How long a dynamic key signs (`access_token_dynamic_signing_key_update_interval`,
    /// default 168 h).
    pub dynamic_key_update_interval_ms: u64,
    /// How long a new dynamic key is published before it signs (60 s; tests shrink it).
    pub key_overlap_ms: u64,
    /// The rotation grace window `G` of `crate::lineage`: above 0, children are derived
    /// from their parent, the previous token is a late request for `G` after a promotion, and
    /// promotions are at least `G` apart; 0 … 300 s, default 30 s. 0 gives the strict
    /// SuperTokens CDI ≤ 5.4 behaviour (random children).
    pub sibling_grace_ms: u64,
    /// Access-token validity jitter in parts per million (`access_token_validity_jitter`,
    /// SuperTokens 12.1): create and refresh mint with `validity × (1 − U[0, jitter])`, so
    /// expiries of sessions made together spread out. 0 … 250 000; default 0 (off).
    pub access_token_validity_jitter_ppm: u32,
    /// When set, minted access tokens carry `iss` (unless the payload names one) and
    /// verification requires it to match.
    pub issuer: Option<String>,
    /// How many verified access tokens to remember so a repeat skips the RSA check
    /// (default 10 000; 0 disables the cache). See `crate::token::cache`.
    pub verified_token_cache: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            access_token_validity_ms: HOUR,
            refresh_token_validity_ms: 144_000 * MINUTE,
            dynamic_key_update_interval_ms: 168 * HOUR,
            key_overlap_ms: MINUTE,
            sibling_grace_ms: 30 * SECOND,
            access_token_validity_jitter_ppm: 0,
            issuer: None,
            verified_token_cache: 10_000,
        }
    }
}

impl SessionConfig {
    /// Checks bounds; the message names the setting and what is allowed.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::Config(m.to_owned()));
        if self.access_token_validity_ms < SECOND
            || self.access_token_validity_ms > 86_400_000 * SECOND
            || self.access_token_validity_ms % SECOND != 0
        {
            return bad(
                "access_token_validity must be a whole number of seconds from 1 to 86400000",
            );
        }
        if self.refresh_token_validity_ms <= self.access_token_validity_ms {
            return bad("refresh_token_validity must be longer than access_token_validity");
        }
        if self.dynamic_key_update_interval_ms == 0 {
            return bad("access_token_dynamic_signing_key_update_interval must be positive");
        }
        if self.key_overlap_ms >= self.dynamic_key_update_interval_ms {
            return bad("the key overlap must be shorter than the key update interval");
        }
        if self.access_token_validity_jitter_ppm > 250_000 {
            return bad("access_token_validity_jitter must be between 0 and 0.25");
        }
        if self.sibling_grace_ms > 300 * SECOND {
            return bad("refresh_token_rotation_grace_period must be between 0 and 300 seconds");
        }
        Ok(())
    }

    /// The rotation timing these settings imply.
    pub fn rotation(&self) -> RotationTiming {
        RotationTiming {
            update_interval_ms: self.dynamic_key_update_interval_ms,
            access_token_validity_ms: self.access_token_validity_ms,
            overlap_ms: self.key_overlap_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        SessionConfig::default().validate().unwrap();
        let c = |f: fn(&mut SessionConfig)| {
            let mut c = SessionConfig::default();
            f(&mut c);
            c.validate()
        };
        assert!(c(|c| c.access_token_validity_ms = 0).is_err());
        assert!(c(|c| c.access_token_validity_ms = 1500).is_err());
        assert!(c(|c| c.refresh_token_validity_ms = c.access_token_validity_ms).is_err());
        assert!(c(|c| c.sibling_grace_ms = 301_000).is_err());
        assert!(c(|c| c.key_overlap_ms = c.dynamic_key_update_interval_ms).is_err());
        assert!(c(|c| c.sibling_grace_ms = 0).is_ok());
        assert!(c(|c| c.access_token_validity_jitter_ppm = 250_000).is_ok());
        assert!(c(|c| c.access_token_validity_jitter_ppm = 250_001).is_err());
    }
}
