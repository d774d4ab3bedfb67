//! A small bounded cache of access tokens that already passed verification, so a token seen
//! again skips the signature check (the hot path's dominant cost). Only verified tokens are
//! ever inserted, so an entry's slot can come straight from the token's last bytes (its
//! signature, which nobody but the signer chooses), mixed with a per-process random key; a hit
//! still needs the whole token to compare equal in constant time, so only byte-identical tokens
//! hit; an entry is used only until the token's `exp`; the cache is emptied whenever a signing
//! key is withdrawn; when full it is emptied rather than grown.

use super::access::AccessTokenClaims;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A cached token (shared: a hit hands it out instead of a copy of the request's) and its
/// claims.
type Entry<T> = (Arc<str>, Arc<T>);

/// How many trailing bytes of a token pick its slot: 16 base64url characters of the signature,
/// 96 bits that the signer, not the presenter, decides.
const SLOT_BYTES: usize = 16;

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
    entries: RwLock<HashMap<u64, Entry<T>, Mix>>,
    /// How many times [`Self::clear`] ran (a key was withdrawn): a hit taken before a clear is
    /// not used after it ([`Self::generation`]).
    cleared: AtomicU64,
}

impl<T: Expiring> VerifiedTokenCache<T> {
    /// A cache holding at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RwLock::new(HashMap::with_hasher(Mix::random())),
            cleared: AtomicU64::new(0),
        }
    }

    /// The number of [`Self::clear`]s so far. Read it before a lookup whose hit is used later:
    /// if it has changed by then, a key was withdrawn in between and the hit must not be used.
    pub fn generation(&self) -> u64 {
        self.cleared.load(Ordering::Acquire)
    }

    /// The claims of `token` if it was verified before and has not expired at `now_ms`.
    /// The token may be given as the request's bytes, not yet checked as UTF-8: a hit means
    /// they equal a verified token's.
    pub fn get(&self, token: impl AsRef<[u8]>, now_ms: u64) -> Option<Arc<T>> {
        self.find(token.as_ref(), now_ms, |(_, claims)| Arc::clone(claims))
    }

    /// [`Self::get`] for a token as the request's bytes, and the cached copy of the token
    /// itself: a hit needs no UTF-8 check of the request's bytes (they equal a verified
    /// token's) and no copy of them.
    pub fn get_shared(&self, token: &[u8], now_ms: u64) -> Option<(Arc<str>, Arc<T>)> {
        self.find(token, now_ms, |(cached, claims)| {
            (Arc::clone(cached), Arc::clone(claims))
        })
    }

    /// `f` of the entry that holds exactly `token`, unexpired at `now_ms`.
    fn find<R>(&self, token: &[u8], now_ms: u64, f: impl FnOnce(&Entry<T>) -> R) -> Option<R> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(&slot(token))?;
        let same = hot_constant_time_eq(entry.0.as_bytes(), token);
        (same && entry.1.exp_s().saturating_mul(1000) >= now_ms).then(|| f(entry))
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
        entries.insert(slot(token.as_bytes()), (Arc::from(token), claims));
    }

    /// Forgets everything (a key was withdrawn), and moves [`Self::generation`] on.
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.cleared.fetch_add(1, Ordering::AcqRel);
        entries.clear();
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

/// The map key of `token`: its last [`SLOT_BYTES`] bytes (the signature, unique per token) as
/// two words folded into one. Only a slot: a hit still needs the whole token to compare equal
/// in constant time, and colliding tokens just evict each other. The map's hasher ([`Mix`])
/// spreads the key with a per-process random seed, so nobody can aim tokens at one bucket.
fn slot(bytes: &[u8]) -> u64 {
    let mut tail = [0u8; SLOT_BYTES];
    let from = bytes.len().saturating_sub(SLOT_BYTES);
    let n = bytes.len() - from;
    tail[SLOT_BYTES - n..].copy_from_slice(&bytes[from..]);
    let (lo, hi) = tail.split_at(8);
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or_default());
    word(lo) ^ word(hi).rotate_left(29) ^ n as u64
}

/// Equality of two byte strings in time that depends only on their lengths (which are not
/// secret: a token's length is public), eight bytes at a time: the differences are OR-ed
/// together and only the total is looked at, after the last byte. The cache's own compare, on
/// the request hot path of every cached token: the same guarantee as
/// [`crate::encoding::constant_time_eq`] (ROB-05) at an eighth of the steps of aws-lc's
/// byte-at-a-time loop; tested against `==` on every length and bit position and by proptest.
pub(crate) fn hot_constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_rest, b_rest) = (a_words.remainder(), b_words.remainder());
    let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().unwrap_or_default());
    let mut diff = 0u64;
    for (x, y) in a_words.zip(b_words) {
        diff |= word(x) ^ word(y);
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        diff |= u64::from(x ^ y);
    }
    // Opaque to the optimiser, so it cannot turn the total into an early exit.
    std::hint::black_box(diff) == 0
}

/// The map's hasher for slots: a folded 64×64→128-bit multiply of the slot with a
/// per-process random seed (a few instructions, where SipHash costs a few hundred).
#[derive(Debug, Clone, Copy)]
struct Mix {
    seed: u64,
}

impl Mix {
    fn random() -> Self {
        // The standard library's per-process random keys, drawn once.
        Self {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }
}

impl BuildHasher for Mix {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher {
            seed: self.seed,
            state: 0,
        }
    }
}

#[derive(Debug)]
struct MixHasher {
    seed: u64,
    state: u64,
}

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by a `u64` key; correct for any input all the same.
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let m = u128::from(self.state ^ x ^ 0x9e37_79b9_7f4a_7c15) * u128::from(self.seed);
        self.state = (m as u64) ^ ((m >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.state
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

    /// A hit by the request's bytes hands out the cache's own copy of the token (shared, not
    /// copied), only for exactly the verified token's bytes, and only until its expiry.
    #[test]
    fn a_hit_by_bytes_shares_the_cached_token() {
        let cache = VerifiedTokenCache::new(10);
        let token = "header.payload.signature-of-the-token";
        cache.insert(token, claims(10));
        let (first, _) = cache.get_shared(token.as_bytes(), 0).unwrap();
        let (second, _) = cache.get_shared(token.as_bytes(), 10_000).unwrap();
        assert_eq!(&*first, token);
        assert!(Arc::ptr_eq(&first, &second), "one shared copy");
        assert!(cache.get_shared(token.as_bytes(), 10_001).is_none());
        let mut tampered = token.as_bytes().to_vec();
        tampered[3] ^= 0x80; // not UTF-8 any more, same slot
        assert!(cache.get_shared(&tampered, 0).is_none());
        assert!(cache.get(&tampered, 0).is_none());
        let shorter = &token.as_bytes()[1..];
        assert!(cache.get_shared(shorter, 0).is_none());
        // A clear (a key withdrawn) moves the generation on; a full cache emptying itself
        // does not.
        let before = cache.generation();
        let small = VerifiedTokenCache::new(1);
        small.insert("a", claims(10));
        small.insert("b", claims(10));
        assert_eq!(small.generation(), 0, "emptied when full: same generation");
        cache.clear();
        assert_eq!(cache.generation(), before + 1);
        assert!(cache.get_shared(token.as_bytes(), 0).is_none());
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

    #[test]
    fn short_tokens_and_tails_differing_only_in_length_are_apart() {
        let cache = VerifiedTokenCache::new(10);
        cache.insert("", claims(10));
        cache.insert("\0", claims(10));
        cache.insert("x", claims(10));
        assert!(cache.get("", 0).is_some());
        assert!(cache.get("\0", 0).is_some());
        assert!(cache.get("x", 0).is_some());
        assert!(cache.get("\0\0", 0).is_none());
        assert!(cache.get("y", 0).is_none());
        assert_ne!(
            slot(b""),
            slot(b"\0"),
            "the length is part of a short token's slot"
        );
    }

    #[test]
    fn hot_constant_time_eq_is_equality() {
        assert!(hot_constant_time_eq(b"", b""));
        assert!(!hot_constant_time_eq(b"a", b""));
        assert!(!hot_constant_time_eq(b"ab", b"abc"));
        // Every length around the word size, a difference at every position, in every bit.
        for len in 0..40usize {
            let a: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert!(hot_constant_time_eq(&a, &a.clone()));
            for i in 0..len {
                for bit in 0..8 {
                    let mut b = a.clone();
                    b[i] ^= 1 << bit;
                    assert!(
                        !hot_constant_time_eq(&a, &b),
                        "len {len}, byte {i}, bit {bit}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn hot_constant_time_eq_agrees_with_eq(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            same in proptest::prelude::any::<bool>(),
        ) {
            let b = if same { a.clone() } else { b };
            proptest::prop_assert_eq!(hot_constant_time_eq(&a, &b), a == b);
        }
    }
}
