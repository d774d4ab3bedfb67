//! ROB-01: anonymous-token verification with a fixed key set (ANON-16).
//!
//! Input byte 0 < 0x80: the rest is a token. It verifies only if it is byte-identical to one of
//! the genuine anonymous tokens; reading its anonymousId (expired tokens allowed) never yields
//! an id for anything else.
//! Input byte 0 ≥ 0x80: genuine token `byte0 % n` edited by the rest (the shared edit script):
//! it verifies if and only if the bytes are unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tessera::{AnonymousAlgorithm, AnonymousConfig, AnonymousSessions, AnonymousSigningKey, MintAnonymous};
use tessera_fuzz::{apply_edits, NOW_MS};

/// The anonymous key set (no verified-token cache, so every input takes the full path) and
/// tokens it minted: plain, with a payload, with an anti-CSRF token, in another tenant.
fn fixture() -> &'static (AnonymousSessions, Vec<String>) {
    static FIXTURE: OnceLock<(AnonymousSessions, Vec<String>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).expect("key");
        let config = AnonymousConfig {
            verified_token_cache: 0,
            ..AnonymousConfig::default()
        };
        let set = AnonymousSessions::new(config, Some(key), vec![]).expect("set");
        let mut payload = serde_json::Map::new();
        payload.insert("cart".into(), serde_json::json!(["book", 2, null]));
        let requests = [
            MintAnonymous::default(),
            MintAnonymous {
                payload,
                ..MintAnonymous::default()
            },
            MintAnonymous {
                enable_anti_csrf: true,
                ..MintAnonymous::default()
            },
            MintAnonymous {
                tenant_id: Some("tenant-1".into()),
                ..MintAnonymous::default()
            },
        ];
        let tokens = requests
            .into_iter()
            .map(|r| set.mint(r, NOW_MS).expect("mint").token)
            .collect();
        (set, tokens)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (set, genuine) = fixture();
    if mode < 0x80 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let genuine_input = genuine.iter().any(|t| t == token);
        assert_eq!(set.verify(token, NOW_MS).is_ok(), genuine_input);
        assert_eq!(
            set.readable_anonymous_id(token, NOW_MS).is_some(),
            genuine_input
        );
    } else {
        let original = &genuine[usize::from(mode) % genuine.len()];
        let edited = apply_edits(original.as_bytes(), rest);
        let Ok(token) = std::str::from_utf8(&edited) else {
            return;
        };
        assert_eq!(set.verify(token, NOW_MS).is_ok(), token == original);
    }
});
