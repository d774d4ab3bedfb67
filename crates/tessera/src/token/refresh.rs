//! Refresh tokens in the SuperTokens `V2` format:
//! `base64(iv ‖ AES-256-GCM(payload) ‖ tag) . sha256_hex(uuid) . V2`, the AES key derived with
//! PBKDF2-HMAC-SHA512 (100 iterations, salt = IV) from the app's refresh-token master key.
//! The database only ever sees `hash2 = sha256_hex(sha256_hex(token))`.

use crate::encoding::{b64_decode, b64_encode, hex, sha256_hex};
use crate::error::EngineError;
use crate::random;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::pbkdf2;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroU32;

/// Longest refresh token accepted, in bytes.
pub const MAX_REFRESH_TOKEN_LEN: usize = 4096;
const TYPE_TAG: &str = "V2";
const TAG_LEN: usize = 16;

/// The per-app master key from which every refresh token's AES key is derived. Stored in the
/// database (`key_value.refresh_token_key`) so every instance shares it; never rotated, never
/// logged (`Debug` prints nothing of it).
#[derive(Clone)]
pub struct RefreshTokenKey(String);

impl fmt::Debug for RefreshTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenKey(..)")
    }
}

impl RefreshTokenKey {
    /// A new key in the core's format `1000:<128 hex salt>:<128 hex derived>`, where
    /// `derived = PBKDF2-HMAC-SHA512(1000, hex(64 random bytes), salt)`.
    pub fn generate() -> Result<Self, EngineError> {
        let secret = hex(&random::bytes::<64>()?);
        let salt = random::bytes::<64>()?;
        let mut derived = [0u8; 64];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA512,
            NonZeroU32::new(1000).ok_or(EngineError::Crypto("pbkdf2 iterations"))?,
            &salt,
            secret.as_bytes(),
            &mut derived,
        );
        Ok(Self(format!("1000:{}:{}", hex(&salt), hex(&derived))))
    }

    /// Accepts a stored key; refuses an empty or implausibly short one.
    pub fn from_stored(stored: &str) -> Result<Self, EngineError> {
        if stored.len() < 32 {
            return Err(EngineError::Corrupt(
                "refresh-token master key is too short",
            ));
        }
        Ok(Self(stored.to_owned()))
    }

    /// The storage form.
    pub fn as_stored(&self) -> &str {
        &self.0
    }

    /// The per-token AES-256 key: PBKDF2-HMAC-SHA512, 100 iterations, salt = IV.
    fn derive_aes_key(&self, iv: &[u8; NONCE_LEN], key: &mut [u8; 32]) -> Result<(), EngineError> {
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA512,
            NonZeroU32::new(100).ok_or(EngineError::Crypto("pbkdf2 iterations"))?,
            iv,
            self.0.as_bytes(),
            key,
        );
        Ok(())
    }

    fn aead_key(&self, iv: &[u8; NONCE_LEN]) -> Result<LessSafeKey, EngineError> {
        let mut key = [0u8; 32];
        self.derive_aes_key(iv, &mut key)?;
        aes_256_gcm_key(&key)
    }
}

fn aes_256_gcm_key(key: &[u8]) -> Result<LessSafeKey, EngineError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key)
        .map_err(|_| EngineError::Crypto("AES key setup failed"))?;
    Ok(LessSafeKey::new(unbound))
}

/// The AES-256-GCM open that [`decode_refresh_token`] performs once it has derived the key:
/// `in_out` is `ciphertext ‖ 16-byte tag`; on success the plaintext is returned (a prefix of
/// `in_out`). Exposed only so the Wycheproof vectors (PRJ-02) run through exactly this call;
/// not part of the API.
#[doc(hidden)]
pub fn aes_256_gcm_open<'a>(
    key: &[u8],
    iv: [u8; NONCE_LEN],
    aad: &[u8],
    in_out: &'a mut [u8],
) -> Option<&'a mut [u8]> {
    aes_256_gcm_key(key)
        .ok()?
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), in_out)
        .ok()
}

/// What a refresh token carries, in the core's plaintext order; absent values are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenPayload {
    /// The session.
    #[serde(rename = "sessionHandle")]
    pub session_handle: String,
    /// Recipe user id.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// `sha256_hex` of the parent refresh token; absent on a session's first token.
    #[serde(
        rename = "parentRefreshTokenHash1",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_refresh_token_hash1: Option<String>,
    /// Must equal the token's middle segment.
    pub nonce: String,
    /// Anti-CSRF token, when enabled.
    #[serde(
        rename = "antiCsrfToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub anti_csrf_token: Option<String>,
    /// Tenant id; omitted for `public`.
    #[serde(rename = "tenantId", default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The visitor's anonymousId (a Tessera addition, absent otherwise). Only the holder of the
    /// refresh token can have the core read it back, so it proves the caller may keep the id
    /// when the session ends (SEC2-H2).
    #[serde(
        rename = "anonymousId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub anonymous_id: Option<String>,
}

impl RefreshTokenPayload {
    /// The tenant, `public` when absent.
    pub fn tenant(&self) -> &str {
        self.tenant_id.as_deref().unwrap_or(crate::PUBLIC)
    }
}

/// A freshly minted refresh token with its hashes.
#[derive(Clone)]
pub struct MintedRefreshToken {
    /// The token string given to the client.
    pub token: String,
    /// `sha256_hex(token)`.
    pub hash1: String,
    /// `sha256_hex(hash1)`: what the database stores.
    pub hash2: String,
    /// The anti-CSRF token it carries, if any.
    pub anti_csrf_token: Option<String>,
}

impl fmt::Debug for MintedRefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedRefreshToken")
            .field("hash2", &self.hash2)
            .finish_non_exhaustive()
    }
}

/// The parts of a refresh token the caller chooses.
#[derive(Debug, Clone, Copy)]
pub struct RefreshTokenFields<'a> {
    /// The session.
    pub session_handle: &'a str,
    /// Recipe user id.
    pub user_id: &'a str,
    /// Tenant id.
    pub tenant_id: &'a str,
    /// hash1 of the parent token, if any.
    pub parent_hash1: Option<&'a str>,
    /// Anti-CSRF token, if enabled.
    pub anti_csrf_token: Option<&'a str>,
    /// The visitor's anonymousId, if the session has one.
    pub anonymous_id: Option<&'a str>,
}

/// Mints a refresh token with a random IV and nonce (a session's first token, and every
/// child when the grace window is 0).
///
/// # Errors
/// [`EngineError::Crypto`] when the system RNG or AES fails.
pub fn mint_refresh_token(
    key: &RefreshTokenKey,
    fields: RefreshTokenFields<'_>,
) -> Result<MintedRefreshToken, EngineError> {
    let nonce = sha256_hex(&random::uuid_v4()?);
    let iv = random::bytes::<NONCE_LEN>()?;
    seal_refresh_token(key, fields, IvSource::Random(iv), nonce)
}

/// The parts of a deterministic child besides those copied from its parent.
#[derive(Debug, Clone, Copy)]
pub struct ChildFields<'a> {
    /// The session.
    pub session_handle: &'a str,
    /// Recipe user id.
    pub user_id: &'a str,
    /// Tenant id.
    pub tenant_id: &'a str,
    /// The visitor's anonymousId, if the session has one.
    pub anonymous_id: Option<&'a str>,
    /// Whether the child carries an anti-CSRF token (derived, like the IV and the nonce).
    pub with_anti_csrf: bool,
}

/// The one child of the refresh token whose hash1 is `parent_hash1`, used when the grace
/// window is above 0 (see `crate::lineage`): the nonce and the anti-CSRF token come from
/// HMAC-SHA256 under a key derived from the app's master key, over the parent's hash1, every
/// other field from `fields`, and the IV from the same key over the whole plaintext. The same parent therefore always has the same child,
/// which makes a refresh idempotent. Only a holder of the parent (who knows its hash1) can
/// derive it; the database only holds hash2.
///
/// ```
/// use tessera::fuzzing::{derive_child, ChildFields, RefreshTokenKey};
/// let key = RefreshTokenKey::generate().unwrap();
/// let fields = ChildFields {
///     session_handle: "h", user_id: "u", tenant_id: "public",
///     anonymous_id: None, with_anti_csrf: true,
/// };
/// let a = derive_child(&key, "parent-hash1", fields).unwrap();
/// let b = derive_child(&key, "parent-hash1", fields).unwrap();
/// assert_eq!(a.token, b.token);
/// ```
///
/// # Errors
/// [`EngineError::Crypto`] when AES fails.
pub fn derive_child(
    key: &RefreshTokenKey,
    parent_hash1: &str,
    fields: ChildFields<'_>,
) -> Result<MintedRefreshToken, EngineError> {
    let child_key = hmac::Key::new(
        hmac::HMAC_SHA256,
        hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.0.as_bytes()),
            b"tessera/refresh-token/child/v1",
        )
        .as_ref(),
    );
    let derive = |label: &str| {
        let mut ctx = hmac::Context::with_key(&child_key);
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(parent_hash1.as_bytes());
        ctx.sign()
    };
    let nonce = hex(derive("nonce").as_ref());
    let anti_csrf = fields.with_anti_csrf.then(|| {
        let tag = derive("anti-csrf");
        let mut b = [0u8; 16];
        b.copy_from_slice(&tag.as_ref()[..16]);
        uuid::Builder::from_random_bytes(b)
            .into_uuid()
            .hyphenated()
            .to_string()
    });
    seal_refresh_token(
        key,
        RefreshTokenFields {
            session_handle: fields.session_handle,
            user_id: fields.user_id,
            tenant_id: fields.tenant_id,
            parent_hash1: Some(parent_hash1),
            anti_csrf_token: anti_csrf.as_deref(),
            anonymous_id: fields.anonymous_id,
        },
        IvSource::Synthetic(&child_key),
        nonce,
    )
}

/// Where a token's AES-GCM IV comes from.
enum IvSource<'a> {
    /// Fresh random bytes.
    Random([u8; NONCE_LEN]),
    /// HMAC-SHA256 under this key over the whole plaintext (a synthetic IV, as in SIV): the
    /// same IV (and so the same PBKDF2-derived AES key) can only ever seal the same plaintext,
    /// so a deterministic child never reuses a GCM nonce with different data.
    Synthetic(&'a hmac::Key),
}

fn seal_refresh_token(
    key: &RefreshTokenKey,
    fields: RefreshTokenFields<'_>,
    iv: IvSource<'_>,
    nonce: String,
) -> Result<MintedRefreshToken, EngineError> {
    let payload = RefreshTokenPayload {
        session_handle: fields.session_handle.to_owned(),
        user_id: fields.user_id.to_owned(),
        parent_refresh_token_hash1: fields.parent_hash1.map(str::to_owned),
        nonce: nonce.clone(),
        anti_csrf_token: fields.anti_csrf_token.map(str::to_owned),
        tenant_id: (fields.tenant_id != crate::PUBLIC).then(|| fields.tenant_id.to_owned()),
        anonymous_id: fields.anonymous_id.map(str::to_owned),
    };
    let plaintext = serde_json::to_vec(&payload)
        .map_err(|_| EngineError::Crypto("refresh-token serialisation failed"))?;
    let iv: [u8; NONCE_LEN] = match iv {
        IvSource::Random(iv) => iv,
        IvSource::Synthetic(k) => {
            let mut ctx = hmac::Context::with_key(k);
            ctx.update(b"iv\0");
            ctx.update(&plaintext);
            ctx.sign().as_ref()[..NONCE_LEN]
                .try_into()
                .map_err(|_| EngineError::Crypto("synthetic IV"))?
        }
    };
    let mut sealed = plaintext;
    key.aead_key(&iv)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut sealed)
        .map_err(|_| EngineError::Crypto("AES-GCM seal failed"))?;
    let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(&sealed);
    let token = format!("{}.{}.{}", b64_encode(&blob), nonce, TYPE_TAG);
    let hash1 = sha256_hex(&token);
    let hash2 = sha256_hex(&hash1);
    Ok(MintedRefreshToken {
        token,
        hash1,
        hash2,
        anti_csrf_token: fields.anti_csrf_token.map(str::to_owned),
    })
}

/// Decrypts and validates a refresh token. Any failure is `None`: the caller answers
/// "unauthorised" and learns nothing about which check failed.
pub fn decode_refresh_token(key: &RefreshTokenKey, token: &str) -> Option<RefreshTokenPayload> {
    if token.is_empty() || token.len() > MAX_REFRESH_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(blob_b64), Some(nonce), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    // Exactly `V2`: the token is hashed as given, so a variant that decoded (`v2`) would hash
    // to a stranger and be answered as theft of its own session (SEC2-L8). The blob is strict
    // canonical base64 and the nonce is compared exactly, so no other byte can vary either.
    if tag != TYPE_TAG {
        return None;
    }
    let mut blob = b64_decode(blob_b64)?;
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let iv: [u8; NONCE_LEN] = blob[..NONCE_LEN].try_into().ok()?;
    let mut aes_key = [0u8; 32];
    key.derive_aes_key(&iv, &mut aes_key).ok()?;
    let plaintext = aes_256_gcm_open(&aes_key, iv, &[], &mut blob[NONCE_LEN..])?;
    let payload: RefreshTokenPayload = serde_json::from_slice(plaintext).ok()?;
    verify_slices_are_equal(payload.nonce.as_bytes(), nonce.as_bytes()).ok()?;
    if payload.session_handle.is_empty() || payload.user_id.is_empty() {
        return None;
    }
    Some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> RefreshTokenFields<'static> {
        RefreshTokenFields {
            session_handle: "h",
            user_id: "u",
            tenant_id: "public",
            parent_hash1: None,
            anti_csrf_token: Some("csrf"),
            anonymous_id: None,
        }
    }

    #[test]
    fn round_trip_and_hashes() {
        let key = RefreshTokenKey::generate().unwrap();
        assert!(key.as_stored().starts_with("1000:"));
        assert_eq!(key.as_stored().len(), 5 + 128 + 1 + 128);
        let rt = mint_refresh_token(&key, fields()).unwrap();
        assert!(rt.token.ends_with(".V2"));
        assert_eq!(rt.hash1, sha256_hex(&rt.token));
        assert_eq!(rt.hash2, sha256_hex(&rt.hash1));
        let p = decode_refresh_token(&key, &rt.token).unwrap();
        assert_eq!(p.session_handle, "h");
        assert_eq!(p.anti_csrf_token.as_deref(), Some("csrf"));
        assert_eq!(p.tenant(), "public");
        assert!(p.tenant_id.is_none(), "public is omitted");
        assert!(p.anonymous_id.is_none());
        let with_id = RefreshTokenFields {
            anonymous_id: Some("visitor-0123456789abcdefXYZ"),
            ..fields()
        };
        let rt2 = mint_refresh_token(&key, with_id).unwrap();
        let p2 = decode_refresh_token(&key, &rt2.token).unwrap();
        assert_eq!(
            p2.anonymous_id.as_deref(),
            Some("visitor-0123456789abcdefXYZ")
        );
        let lower = rt.token.replace(".V2", ".v2");
        assert!(
            decode_refresh_token(&key, &lower).is_none(),
            "the tag is exact (SEC2-L8)"
        );
    }

    #[test]
    fn derived_children_are_deterministic_per_parent_and_key() {
        let key = RefreshTokenKey::generate().unwrap();
        let f = ChildFields {
            session_handle: "h",
            user_id: "u",
            tenant_id: "t1",
            anonymous_id: Some("visitor-0123456789abcdefXYZ"),
            with_anti_csrf: true,
        };
        let a = derive_child(&key, "p1", f).unwrap();
        assert_eq!(a.token, derive_child(&key, "p1", f).unwrap().token);
        assert_ne!(a.token, derive_child(&key, "p2", f).unwrap().token);
        let other = RefreshTokenKey::generate().unwrap();
        assert_ne!(a.token, derive_child(&other, "p1", f).unwrap().token);
        let p = decode_refresh_token(&key, &a.token).unwrap();
        assert_eq!(p.parent_refresh_token_hash1.as_deref(), Some("p1"));
        assert_eq!(p.tenant(), "t1");
        assert_eq!(
            p.anonymous_id.as_deref(),
            Some("visitor-0123456789abcdefXYZ")
        );
        let csrf = p.anti_csrf_token.unwrap();
        assert_eq!(csrf.len(), 36);
        let plain = derive_child(
            &key,
            "p1",
            ChildFields {
                with_anti_csrf: false,
                ..f
            },
        )
        .unwrap();
        assert!(decode_refresh_token(&key, &plain.token)
            .unwrap()
            .anti_csrf_token
            .is_none());
        // A different plaintext for the same parent never reuses the IV (the GCM nonce).
        let iv = |t: &str| b64_decode(t.split('.').next().unwrap()).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(iv(&a.token), iv(&plain.token));
        let other_user = derive_child(&key, "p1", ChildFields { user_id: "v", ..f }).unwrap();
        assert_ne!(iv(&a.token), iv(&other_user.token));
    }

    #[test]
    fn rt_11_garbage_and_tampered_tokens_are_refused() {
        let key = RefreshTokenKey::generate().unwrap();
        let rt = mint_refresh_token(&key, fields()).unwrap();
        let other = RefreshTokenKey::generate().unwrap();
        assert!(
            decode_refresh_token(&other, &rt.token).is_none(),
            "different key"
        );
        for bad in [
            "",
            "a",
            "a.b",
            "a.b.V2",
            "a.b.c.d",
            &rt.token.replace(".V2", ".V1"),
        ] {
            assert!(decode_refresh_token(&key, bad).is_none(), "{bad}");
        }
        let (blob, rest) = rt.token.split_once('.').unwrap();
        let nonce = rest.split('.').next().unwrap();
        let other_nonce = sha256_hex("x");
        let swapped = format!("{blob}.{other_nonce}.V2");
        assert!(
            decode_refresh_token(&key, &swapped).is_none(),
            "nonce mismatch"
        );
        let mut bytes = b64_decode(blob).unwrap();
        for i in [0, 12, bytes.len() - 1] {
            bytes[i] ^= 1;
            let t = format!("{}.{nonce}.V2", b64_encode(&bytes));
            assert!(decode_refresh_token(&key, &t).is_none(), "bit flip at {i}");
            bytes[i] ^= 1;
        }
        let long = "A".repeat(MAX_REFRESH_TOKEN_LEN + 1);
        assert!(decode_refresh_token(&key, &long).is_none());
    }
}
