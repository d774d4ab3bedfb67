//! An immutable snapshot of the keys an engine holds. The engine swaps whole snapshots
//! (`ArcSwap`), so the verify path reads keys without a lock.

use super::jwks::{Jwk, Jwks};
use super::rotation::RotationTiming;
use super::rsa_key::{KeyKind, KeyLookup, SigningKey, VerifyingKey};
use std::collections::HashMap;
use std::sync::Arc;

/// Dynamic keys (newest first), static keys (newest first), retired static keys that only
/// verify, and an index by `kid`.
#[derive(Debug, Default)]
pub struct KeyRing {
    dynamic: Vec<Arc<SigningKey>>,
    statics: Vec<Arc<SigningKey>>,
    retired: Vec<Arc<SigningKey>>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    by_header: HashMap<Vec<u8>, Arc<SigningKey>>,
}

impl KeyRing {
    /// Builds a snapshot; the lists are sorted newest first here, except that the static key
    /// named by `preferred_static` (an operator-supplied key) comes first and so signs.
    pub fn new(
        mut dynamic: Vec<Arc<SigningKey>>,
        mut statics: Vec<Arc<SigningKey>>,
        preferred_static: Option<String>,
    ) -> Self {
        dynamic.sort_by_key(|k| std::cmp::Reverse(k.created_at_ms()));
        statics.sort_by(|a, b| {
            let preferred = |k: &SigningKey| Some(k.kid()) == preferred_static.as_deref();
            (preferred(b), b.created_at_ms(), b.kid()).cmp(&(
                preferred(a),
                a.created_at_ms(),
                a.kid(),
            ))
        });
        let by_kid = dynamic
            .iter()
            .chain(statics.iter())
            .map(|k| (k.kid().to_owned(), Arc::clone(k)))
            .collect();
        let by_header = dynamic
            .iter()
            .chain(statics.iter())
            .map(|k| {
                let header = crate::jose::header_json(k.kid());
                (
                    crate::encoding::b64url_encode(header.as_bytes()).into_bytes(),
                    Arc::clone(k),
                )
            })
            .collect();
        Self {
            dynamic,
            statics,
            retired: Vec::new(),
            by_kid,
            by_header,
        }
    }

    /// Adds retired static keys (an operator's previous keys, SEC2-H1): they verify and are
    /// published, but never sign, whatever their age. A `kid` the ring already holds is
    /// skipped.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tessera::{KeyKind, KeyRing, SigningKey};
    /// let current = Arc::new(SigningKey::generate("s-new".into(), KeyKind::Static, 1, u64::MAX)?);
    /// let previous = Arc::new(SigningKey::generate("s-old".into(), KeyKind::Static, 2, u64::MAX)?);
    /// let ring = KeyRing::new(vec![], vec![current], None).with_retired(vec![previous]);
    /// assert!(ring.contains("s-old"));
    /// assert_eq!(ring.static_key().unwrap().kid(), "s-new");
    /// # Ok::<(), tessera::EngineError>(())
    /// ```
    pub fn with_retired(mut self, retired: Vec<Arc<SigningKey>>) -> Self {
        for key in retired {
            if self.by_kid.contains_key(key.kid()) {
                continue;
            }
            let header = crate::jose::header_json(key.kid());
            self.by_header.insert(
                crate::encoding::b64url_encode(header.as_bytes()).into_bytes(),
                Arc::clone(&key),
            );
            self.by_kid.insert(key.kid().to_owned(), Arc::clone(&key));
            self.retired.push(key);
        }
        self
    }

    /// The key that signs new access tokens of this kind now.
    pub fn signing_key(
        &self,
        kind: KeyKind,
        timing: &RotationTiming,
        now_ms: u64,
    ) -> Option<&Arc<SigningKey>> {
        match kind {
            KeyKind::Static => self.statics.first(),
            KeyKind::Dynamic => {
                let created: Vec<u64> = self.dynamic.iter().map(|k| k.created_at_ms()).collect();
                timing
                    .signing_index(&created, now_ms)
                    .and_then(|i| self.dynamic.get(i))
            }
        }
    }

    /// Creation time of the newest dynamic key.
    pub fn newest_dynamic_created(&self) -> Option<u64> {
        self.dynamic.first().map(|k| k.created_at_ms())
    }

    /// The key with this id.
    pub fn key(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.by_kid.get(kid)
    }

    /// The ids of every key held.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(String::as_str)
    }

    /// True when a key with this id is held.
    pub fn contains(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Number of dynamic keys held.
    pub fn dynamic_count(&self) -> usize {
        self.dynamic.len()
    }

    /// The newest static key, if any.
    pub fn static_key(&self) -> Option<&Arc<SigningKey>> {
        self.statics.first()
    }

    /// The published key set: dynamic keys still verifying at `now_ms` (newest first), then
    /// static keys (newest first), then retired static keys. Only public members appear.
    pub fn jwks(&self, now_ms: u64) -> Jwks {
        let keys = self
            .dynamic
            .iter()
            .filter(|k| k.verifying().verify_until_ms() >= now_ms)
            .chain(self.statics.iter())
            .chain(self.retired.iter())
            .map(|k| Jwk::rs256(k.verifying()))
            .collect();
        Jwks { keys }
    }
}

impl KeyLookup for KeyRing {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.by_kid.get(kid).map(|k| k.verifying())
    }

    fn key_for_header(&self, header_b64: &[u8]) -> Option<&VerifyingKey> {
        self.by_header.get(header_b64).map(|k| k.verifying())
    }
}
