//! ROB-01 (4): refresh-token decoding and lookup-key derivation.
//!
//! Input byte 0 < 0x80: the rest is a refresh token; decoding never panics, and a token that
//! decodes is a genuine one up to the ASCII case of its `V2` tag (the only malleability the
//! format has; the lookup key, `sha256_hex(sha256_hex(token))`, then differs, so the store
//! finds nothing). Input byte 0 ≥ 0x80: a genuine token edited by the rest decodes only if
//! it is unchanged up to that tag case. Lookup keys are always 64 lowercase hex digits.
//! Byte 0 = 0x7f: the rest gives the fields of a new token, which must decode to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::fuzzing::sha256_hex;
use tessera::fuzzing::{decode_refresh_token, mint_refresh_token, RefreshTokenFields};
use tessera_fuzz::{apply_edits, genuine_refresh_tokens, refresh_key};

fn same_up_to_tag_case(a: &str, b: &str) -> bool {
    match (a.rsplit_once('.'), b.rsplit_once('.')) {
        (Some((a_body, a_tag)), Some((b_body, b_tag))) => {
            a_body == b_body && a_tag.eq_ignore_ascii_case(b_tag)
        }
        _ => a == b,
    }
}

fn lookup_key_ok(token: &str) {
    let hash1 = sha256_hex(token);
    let hash2 = sha256_hex(&hash1);
    for h in [&hash1, &hash2] {
        assert_eq!(h.len(), 64);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let genuine = genuine_refresh_tokens();
    if mode == 0x7f {
        let text = String::from_utf8_lossy(rest);
        let mut parts = text.split('\u{0}');
        let mut next = || parts.next().unwrap_or("");
        let (handle, user, tenant, parent, csrf, anonymous) =
            (next(), next(), next(), next(), next(), next());
        if handle.is_empty() || user.is_empty() {
            return;
        }
        let fields = RefreshTokenFields {
            session_handle: handle,
            user_id: user,
            tenant_id: if tenant.is_empty() { "public" } else { tenant },
            parent_hash1: (!parent.is_empty()).then_some(parent),
            anti_csrf_token: (!csrf.is_empty()).then_some(csrf),
            anonymous_id: (!anonymous.is_empty()).then_some(anonymous),
        };
        let minted = mint_refresh_token(refresh_key(), fields).expect("mint");
        lookup_key_ok(&minted.token);
        if minted.token.len() <= tessera::MAX_REFRESH_TOKEN_LEN {
            let p = decode_refresh_token(refresh_key(), &minted.token).expect("own token decodes");
            assert_eq!(p.session_handle, fields.session_handle);
            assert_eq!(p.user_id, fields.user_id);
            assert_eq!(p.tenant(), fields.tenant_id);
            assert_eq!(p.parent_refresh_token_hash1.as_deref(), fields.parent_hash1);
            assert_eq!(p.anti_csrf_token.as_deref(), fields.anti_csrf_token);
            assert_eq!(p.anonymous_id.as_deref(), fields.anonymous_id);
        }
        return;
    }
    let (candidate, original) = if mode < 0x80 {
        (rest.to_vec(), None)
    } else {
        let original = genuine[usize::from(mode) % genuine.len()];
        (apply_edits(original.as_bytes(), rest), Some(original))
    };
    let Ok(token) = std::str::from_utf8(&candidate) else {
        return;
    };
    lookup_key_ok(token);
    let decoded = decode_refresh_token(refresh_key(), token);
    if decoded.is_some() {
        let matches_genuine = match original {
            Some(o) => same_up_to_tag_case(token, o),
            None => genuine.iter().any(|g| same_up_to_tag_case(token, g)),
        };
        assert!(matches_genuine, "a non-genuine refresh token decoded");
    } else if let Some(o) = original {
        assert!(
            !same_up_to_tag_case(token, o),
            "a genuine refresh token failed to decode"
        );
    }
});
