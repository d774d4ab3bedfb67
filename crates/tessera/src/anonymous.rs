//! Anonymous sessions: a visitor who has not signed in still has a session, carried entirely by
//! a signed anonymous token (see [`crate::token::anonymous`]). Minting and verifying touch no
//! store: no row, no write, nothing kept per visitor (A1). The only state is the key set.
//!
//! Keys: one signing key (A9: static, chosen by the operator or generated once and kept in the
//! store) plus any number of verify-only previous keys, so a replaced key keeps verifying
//! during an overlap; a token signed by a previous key is re-signed with the same anonymousId
//! by the middleware (ANON-11). Removing a key from the set rejects its tokens at once.
//!
//! ```
//! use tessera::{AnonymousConfig, AnonymousSessions, MintAnonymous};
//! use tessera::{AnonymousAlgorithm, AnonymousSigningKey};
//!
//! let key = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
//! let anon = AnonymousSessions::new(AnonymousConfig::default(), Some(key), vec![]).unwrap();
//! let now = 1_700_000_000_000;
//! let minted = anon.mint(MintAnonymous::default(), now).unwrap();
//! let verified = anon.verify(&minted.token, now).unwrap();
//! assert_eq!(verified.claims.anonymous_id, minted.claims.anonymous_id);
//! ```

use crate::error::EngineError;
use crate::keys::anonymous_key::{AnonymousSigningKey, AnonymousVerifyingKey};
use crate::keys::jwks::Jwk;
use crate::session::PUBLIC;
use crate::token::anonymous::{
    encode_anonymous_token, encoded_header, names_reserved_claim, new_anonymous_id,
    plausible_anonymous_id, verify_anonymous_token, AnonymousClaims, AnonymousKeyLookup,
    AnonymousPolicy, AnonymousRejection, MAX_ANONYMOUS_PAYLOAD_LEN,
};
use crate::token::cache::{Expiring, VerifiedTokenCache};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

const DAY_MS: u64 = 86_400_000;

/// Settings of anonymous sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousConfig {
    /// Lifetime of an anonymous token (default 365 days; 1 s … 400 days, the browsers' cookie
    /// cap). A token past half its lifetime is re-signed with the same anonymousId.
    pub lifetime_ms: u64,
    /// `iss` of minted tokens, when set.
    pub issuer: Option<String>,
    /// How many verified anonymous tokens to remember (default 10 000; 0 disables).
    pub verified_token_cache: usize,
}

impl Default for AnonymousConfig {
    fn default() -> Self {
        Self {
            lifetime_ms: 365 * DAY_MS,
            issuer: None,
            verified_token_cache: 10_000,
        }
    }
}

impl AnonymousConfig {
    /// Checks bounds.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.lifetime_ms < 1_000 || self.lifetime_ms > 400 * DAY_MS {
            return Err(EngineError::Config(
                "anonymous token lifetime must be between 1 second and 400 days".into(),
            ));
        }
        Ok(())
    }
}

/// What to mint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MintAnonymous {
    /// Keep this visitor id (A6, A20); `None` starts a new one.
    pub anonymous_id: Option<String>,
    /// Tenant (`public` when `None`).
    pub tenant_id: Option<String>,
    /// The app's small payload (≤ 1 KiB serialised, no reserved names).
    pub payload: Map<String, Value>,
    /// Include an anti-CSRF token (VIA_TOKEN mode); `Some` keeps the given one.
    pub anti_csrf_token: Option<String>,
    /// Mint a fresh anti-CSRF token when `anti_csrf_token` is `None`.
    pub enable_anti_csrf: bool,
}

/// A freshly minted anonymous token.
#[derive(Clone, PartialEq)]
pub struct MintedAnonymous {
    /// The token.
    pub token: String,
    /// What it says.
    pub claims: AnonymousClaims,
}

impl std::fmt::Debug for MintedAnonymous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedAnonymous")
            .field("anonymous_id", &self.claims.anonymous_id)
            .field("exp", &self.claims.exp)
            .finish_non_exhaustive()
    }
}

/// A verified anonymous token.
#[derive(Debug, Clone)]
pub struct VerifiedAnonymous {
    /// Its claims, shared with the verified-token cache.
    pub claims: Arc<AnonymousClaims>,
    /// True when the token should be re-signed now: signed by a previous key, or past half its
    /// lifetime.
    pub renew: bool,
}

/// Why minting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The payload names a reserved claim or is too large; a bug in the app, said plainly.
    #[error("anonymous payload rejected: {0}")]
    InvalidPayload(String),
    /// This instance holds no signing key (a remote SDK verifies only).
    #[error("no anonymous signing key here")]
    NoSigningKey,
    /// Key, RNG or encoding failure.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Mints and verifies anonymous tokens. Cheap to share behind an `Arc`.
pub struct AnonymousSessions {
    config: AnonymousConfig,
    signing: Option<(AnonymousSigningKey, String)>,
    keys: HashMap<String, Arc<AnonymousVerifyingKey>>,
    current_kid: Option<String>,
    verified: VerifiedTokenCache<Cached>,
}

/// A verified token as the cache keeps it.
struct Cached {
    claims: Arc<AnonymousClaims>,
    by_current_key: bool,
}

impl Expiring for Cached {
    fn exp_s(&self) -> u64 {
        self.claims.exp
    }
}

impl std::fmt::Debug for AnonymousSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnonymousSessions")
            .field("current_kid", &self.current_kid)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AnonymousKeyLookup for HashMap<String, Arc<AnonymousVerifyingKey>> {
    fn anonymous_key(&self, kid: &str) -> Option<&AnonymousVerifyingKey> {
        self.get(kid).map(|k| &**k)
    }
}

impl AnonymousSessions {
    /// A minting and verifying set: `signing` signs (and verifies); `previous` only verify.
    pub fn new(
        config: AnonymousConfig,
        signing: Option<AnonymousSigningKey>,
        previous: Vec<AnonymousVerifyingKey>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let mut keys = HashMap::new();
        for key in previous {
            keys.insert(key.kid().to_owned(), Arc::new(key));
        }
        let current_kid = signing.as_ref().map(|k| k.kid().to_owned());
        if let Some(key) = &signing {
            let public = key
                .verifying()
                .jwk()
                .to_anonymous()
                .ok_or(EngineError::Crypto("anonymous key has no JWK"))??;
            keys.insert(key.kid().to_owned(), Arc::new(public));
        }
        let signing = signing.map(|k| {
            let header = encoded_header(&k);
            (k, header)
        });
        Ok(Self {
            verified: VerifiedTokenCache::new(config.verified_token_cache),
            config,
            signing,
            keys,
            current_kid,
        })
    }

    /// A set with no keys: verifies nothing, mints nothing (a remote SDK before its first
    /// JWKS fetch).
    pub fn empty(config: AnonymousConfig) -> Self {
        Self {
            verified: VerifiedTokenCache::new(config.verified_token_cache),
            config,
            signing: None,
            keys: HashMap::new(),
            current_kid: None,
        }
    }

    /// A verify-only set from the anonymous keys (`kid` `a-…`) of a published JWKS: what a
    /// remote-core SDK or a gateway holds. The first anonymous key listed is the current one.
    pub fn from_jwks(config: AnonymousConfig, jwks: &crate::Jwks) -> Result<Self, EngineError> {
        let mut previous = Vec::new();
        for jwk in &jwks.keys {
            if let Some(key) = jwk.to_anonymous() {
                previous.push(key?);
            }
        }
        let current = previous.first().map(|k| k.kid().to_owned());
        let mut set = Self::new(config, None, previous)?;
        set.current_kid = current;
        Ok(set)
    }

    /// The settings.
    pub fn config(&self) -> &AnonymousConfig {
        &self.config
    }

    /// The `kid` new tokens are (or, in a verify-only set, were last seen) signed with.
    pub fn current_kid(&self) -> Option<&str> {
        self.current_kid.as_deref()
    }

    /// True when this set can mint.
    pub fn can_mint(&self) -> bool {
        self.signing.is_some()
    }

    /// The public keys, current first, as JWKs for the JWKS.
    pub fn jwks(&self) -> Vec<Jwk> {
        let mut out: Vec<Jwk> = Vec::with_capacity(self.keys.len());
        if let Some(current) = self.current_kid.as_deref().and_then(|k| self.keys.get(k)) {
            out.push(current.jwk());
        }
        let mut rest: Vec<_> = self
            .keys
            .values()
            .filter(|k| Some(k.kid()) != self.current_kid.as_deref())
            .collect();
        rest.sort_by(|a, b| a.kid().cmp(b.kid()));
        out.extend(rest.into_iter().map(|k| k.jwk()));
        out
    }

    /// Fingerprints of every anonymous key (to refuse one that equals an access-token key).
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.values().map(|k| k.fingerprint()).collect()
    }

    /// Mints a token at `now_ms`. No I/O.
    pub fn mint(&self, req: MintAnonymous, now_ms: u64) -> Result<MintedAnonymous, MintError> {
        let (key, header) = self.signing.as_ref().ok_or(MintError::NoSigningKey)?;
        check_payload(&req.payload)?;
        let anonymous_id = match req.anonymous_id {
            Some(id) if plausible_anonymous_id(&id) => id,
            Some(_) => {
                return Err(MintError::InvalidPayload(
                    "anonymousId must be 22–64 URL-safe characters".into(),
                ))
            }
            None => new_anonymous_id()?,
        };
        let tenant_id = req.tenant_id.unwrap_or_else(|| PUBLIC.to_owned());
        if tenant_id.is_empty() || tenant_id.len() > 64 {
            return Err(MintError::InvalidPayload("tenant id".into()));
        }
        let anti_csrf_token = match req.anti_csrf_token {
            Some(t) => Some(t),
            None if req.enable_anti_csrf => Some(crate::random::uuid_v4()?),
            None => None,
        };
        let iat = now_ms / 1000;
        let claims = AnonymousClaims {
            anonymous_id,
            iat,
            exp: iat.saturating_add(self.config.lifetime_ms / 1000),
            tenant_id,
            anti_csrf_token,
            iss: self.config.issuer.clone(),
            payload: req.payload,
        };
        let token = encode_anonymous_token(&claims, key, header)?;
        Ok(MintedAnonymous { token, claims })
    }

    /// Verifies `token` at `now_ms`. No I/O; a repeat of a verified token skips the signature
    /// check (bounded cache, emptied when full).
    pub fn verify(
        &self,
        token: &str,
        now_ms: u64,
    ) -> Result<VerifiedAnonymous, AnonymousRejection> {
        if let Some(hit) = self.verified.get(token, now_ms) {
            return Ok(self.verified_result(&hit, now_ms));
        }
        let (claims, by_current_key) = self.verify_uncached(token, now_ms, false)?;
        let entry = Arc::new(Cached {
            claims: Arc::new(claims),
            by_current_key,
        });
        self.verified.insert(token, Arc::clone(&entry));
        Ok(self.verified_result(&entry, now_ms))
    }

    /// [`Self::verify`] answered from the verified-token cache alone, for a token given as the
    /// request's bytes (not yet checked as UTF-8); `None` when the cache does not hold it.
    pub fn verify_cached(&self, token: &[u8], now_ms: u64) -> Option<VerifiedAnonymous> {
        let hit = self.verified.get(token, now_ms)?;
        Some(self.verified_result(&hit, now_ms))
    }

    /// The anonymousId of a genuine token (our key, valid signature and schema) even if it has
    /// expired, so the visitor keeps it (A20). `None` for anything not genuinely ours.
    pub fn readable_anonymous_id(&self, token: &str, now_ms: u64) -> Option<String> {
        self.verify_uncached(token, now_ms, true)
            .ok()
            .map(|(claims, _)| claims.anonymous_id)
    }

    fn verify_uncached(
        &self,
        token: &str,
        now_ms: u64,
        ignore_time: bool,
    ) -> Result<(AnonymousClaims, bool), AnonymousRejection> {
        let policy = AnonymousPolicy {
            now_ms,
            max_lifetime_s: self.config.lifetime_ms / 1000,
            ignore_time,
        };
        let (claims, key) = verify_anonymous_token(token, &self.keys, &policy)?;
        let by_current_key = Some(key.kid()) == self.current_kid.as_deref();
        Ok((claims, by_current_key))
    }

    fn verified_result(&self, entry: &Cached, now_ms: u64) -> VerifiedAnonymous {
        VerifiedAnonymous {
            claims: Arc::clone(&entry.claims),
            renew: !entry.by_current_key || self.past_half_life(&entry.claims, now_ms),
        }
    }

    fn past_half_life(&self, claims: &AnonymousClaims, now_ms: u64) -> bool {
        let half_s = self.config.lifetime_ms / 2000;
        (now_ms / 1000).saturating_sub(claims.iat) > half_s
    }
}

fn check_payload(payload: &Map<String, Value>) -> Result<(), MintError> {
    if names_reserved_claim(payload) {
        return Err(MintError::InvalidPayload(
            "the payload names a reserved claim (anonymousId, sub, iat, exp, …)".into(),
        ));
    }
    let len = serde_json::to_vec(payload)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if len > MAX_ANONYMOUS_PAYLOAD_LEN {
        return Err(MintError::InvalidPayload(format!(
            "payload is {len} bytes; the limit is {MAX_ANONYMOUS_PAYLOAD_LEN}"
        )));
    }
    Ok(())
}
