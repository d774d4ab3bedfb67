//! A small bounded cache of access tokens that already passed verification, so a token seen
//! again skips the RSA check (the hot path's dominant cost). Entries are found by a keyed hash
//! (SipHash with a per-process random key, so nobody can aim collisions) and then the whole
//! token is compared in constant time, so only byte-identical tokens hit; an entry is used
//! only until the token's `exp`; the cache is emptied whenever a signing key is withdrawn;
//! when full it is emptied rather than grown.

use super::access::AccessTokenClaims;
use aws_lc_rs::constant_time::verify_slices_are_equal;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock};

type Entry<T> = (Box<[u8]>, Arc<T>);

/// How many trailing bytes of a token pick its slot.
const SLOT_BYTES: usize = 64;

/// Verified claims that know when they expire.
pub trait Expiring {
    /// Expiry, epoch seconds.
    fn exp_s(&self) -> u64;
}

impl Expiring for AccessTokenClaims {
    fn exp_s(&self) -> u64 {
        self.exp
    }
}

/// Verified claims by token (access tokens by default; anonymous tokens use their own cache).
#[derive(Debug)]
pub struct VerifiedTokenCache<T = AccessTokenClaims> {
    capacity: usize,
    hasher: RandomState,
    entries: RwLock<HashMap<u64, Entry<T>>>,
}

impl<T: Expiring> VerifiedTokenCache<T> {
    /// A cache holding at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            hasher: RandomState::new(),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The claims of `token` if it was verified before and has not expired at `now_ms`.
    pub fn get(&self, token: &str, now_ms: u64) -> Option<Arc<T>> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let (cached, claims) = entries.get(&self.slot(token))?;
        let same = verify_slices_are_equal(cached, token.as_bytes()).is_ok();
        (same && claims.exp_s().saturating_mul(1000) >= now_ms).then(|| Arc::clone(claims))
    }

    /// Remembers a token that just passed full verification.
    pub fn insert(&self, token: &str, claims: Arc<T>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.clear();
        }
        let key = self.slot(token);
        entries.insert(key, (token.as_bytes().into(), claims));
    }

    /// The map key of `token`: a keyed hash of its last 64 bytes (the signature, unique per
    /// token), which costs a fraction of hashing the whole token. Only a slot: a hit still needs
    /// the whole token to compare equal in constant time, and colliding tokens just evict each
    /// other.
    fn slot(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        self.hasher
            .hash_one(&bytes[bytes.len().saturating_sub(SLOT_BYTES)..])
    }

    /// Forgets everything (a key was withdrawn).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Arc<AccessTokenClaims> {
        Arc::new(AccessTokenClaims {
            sub: "u".into(),
            exp,
            iat: 0,
            session_handle: "h".into(),
            refresh_token_hash1: "r".into(),
            parent_refresh_token_hash1: None,
            anti_csrf_token: None,
            tenant_id: "public".into(),
            rsub: "u".into(),
            auth_time: None,
            user_claims: Default::default(),
        })
    }

    #[test]
    fn tokens_sharing_a_slot_never_hit_each_other() {
        let cache = VerifiedTokenCache::new(10);
        let tail = "s".repeat(SLOT_BYTES);
        let (a, b) = (format!("aaaa.{tail}"), format!("bbbb.{tail}"));
        cache.insert(&a, claims(10));
        assert!(cache.get(&a, 0).is_some());
        assert!(
            cache.get(&b, 0).is_none(),
            "same slot, different token: a miss"
        );
        cache.insert(&b, claims(10));
        assert!(cache.get(&a, 0).is_none(), "the slot now holds b");
        assert!(cache.get(&b, 0).is_some());
    }

    #[test]
    fn hits_until_expiry_and_stays_bounded() {
        let cache = VerifiedTokenCache::new(2);
        cache.insert("a", claims(10));
        assert!(cache.get("a", 10_000).is_some());
        assert!(cache.get("a", 10_001).is_none(), "expired with the token");
        assert!(cache.get("b", 0).is_none());
        cache.insert("b", claims(10));
        cache.insert("c", claims(10));
        assert!(cache.len() <= 2, "never grows past capacity");
        cache.clear();
        assert!(cache.is_empty());
        let off = VerifiedTokenCache::new(0);
        off.insert("a", claims(10));
        assert!(off.get("a", 0).is_none());
    }
}
