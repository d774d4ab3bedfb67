//! ROB-05: secret types. Signing keys, the refresh-token master key, minted refresh-token
//! material and the anonymous-token key must not implement `PartialEq` (a derived `==` is not
//! constant-time; every secret comparison goes through `encoding::constant_time_eq` or aws-lc's
//! `verify_slices_are_equal`), and their `Debug` output must not contain the secret.
//!
//! The `PartialEq` check runs twice: at compile time (`assert_not_partial_eq!`, which stops this
//! file compiling if an impl appears) and at run time with an autoref-specialisation probe whose
//! positive control (`String`) shows the probe can tell the difference.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::marker::PhantomData;
use tessera::fuzzing::{b64url_encode, constant_time_eq, sha256_hex};
use tessera::fuzzing::{mint_refresh_token, RefreshTokenFields, RefreshTokenKey};
use tessera::{AnonymousAlgorithm, AnonymousSigningKey, KeyKind, SigningKey};

/// Fails to compile when `$t: PartialEq` (the `static_assertions::assert_not_impl_any!` trick:
/// with an impl, the inferred type parameter becomes ambiguous).
macro_rules! assert_not_partial_eq {
    ($($t:ty),+ $(,)?) => {$(
        const _: fn() = || {
            trait AmbiguousIfEq<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfEq<()> for T {}
            #[allow(dead_code)]
            struct Invalid;
            impl<T: ?Sized + PartialEq> AmbiguousIfEq<Invalid> for T {}
            let _ = <$t as AmbiguousIfEq<_>>::some_item;
        };
    )+};
}

assert_not_partial_eq!(
    SigningKey,
    RefreshTokenKey,
    tessera::fuzzing::MintedRefreshToken,
    AnonymousSigningKey,
);

/// Run-time probe: `true` when `$t: PartialEq` (autoref specialisation: the by-value impl is
/// found first when it applies, the by-reference fallback otherwise).
macro_rules! implements_partial_eq {
    ($t:ty) => {{
        struct Probe<T: ?Sized>(PhantomData<T>);
        #[allow(dead_code)]
        trait Fallback {
            fn is_eq(&self) -> bool {
                false
            }
        }
        impl<T: ?Sized> Fallback for &Probe<T> {}
        #[allow(dead_code)]
        trait Specialised {
            fn is_eq(&self) -> bool {
                true
            }
        }
        impl<T: ?Sized + PartialEq> Specialised for Probe<T> {}
        (&Probe::<$t>(PhantomData)).is_eq()
    }};
}

#[test]
fn rob05_secret_types_do_not_implement_partial_eq() {
    assert!(
        implements_partial_eq!(String),
        "positive control: the probe sees PartialEq"
    );
    assert!(
        implements_partial_eq!(tessera::Jwk),
        "positive control: public key type"
    );
    assert!(!implements_partial_eq!(SigningKey));
    assert!(!implements_partial_eq!(RefreshTokenKey));
    assert!(!implements_partial_eq!(
        tessera::fuzzing::MintedRefreshToken
    ));
    assert!(!implements_partial_eq!(AnonymousSigningKey));
}

/// Every 16-character window of `secret` (so a partial print is caught too).
fn leaks(debug: &str, secret: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 16 {
        return debug.contains(secret);
    }
    chars
        .windows(16)
        .any(|w| debug.contains(&w.iter().collect::<String>()))
}

#[test]
fn rob05_debug_of_signing_keys_never_prints_key_material() {
    let key = SigningKey::generate("d-1".into(), KeyKind::Dynamic, 1, u64::MAX).unwrap();
    let stored = key.to_stored().unwrap();
    let (_, private) = stored.split_once('|').unwrap();
    let debug = format!("{key:?} {key:#?}");
    assert!(debug.contains("d-1"), "the kid is shown: {debug}");
    assert!(!leaks(&debug, private), "PKCS#8 in Debug: {debug}");
    assert!(!leaks(&debug, &b64url_encode(key.verifying().modulus())));
    assert!(
        leaks(&format!("{stored:?}"), private),
        "control: the check can fail"
    );

    let anon = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
    let debug = format!("{anon:?} {anon:#?}");
    assert!(debug.contains("a-"), "{debug}");
    assert!(
        !debug.to_ascii_lowercase().contains("pkcs") && debug.len() < 200,
        "{debug}"
    );
}

#[test]
fn rob05_debug_of_refresh_token_secrets_never_prints_them() {
    let master = RefreshTokenKey::generate().unwrap();
    let debug = format!("{master:?} {master:#?}");
    assert!(!leaks(&debug, master.as_stored()), "{debug}");
    assert!(!leaks(&debug, &master.as_stored()[5..]), "{debug}");

    let minted = mint_refresh_token(
        &master,
        RefreshTokenFields {
            session_handle: "h",
            user_id: "u",
            tenant_id: "public",
            parent_hash1: None,
            anti_csrf_token: Some("csrf-secret-value-123456"),
            anonymous_id: Some("visitor-0123456789abcdefXYZ"),
        },
    )
    .unwrap();
    let debug = format!("{minted:?} {minted:#?}");
    assert!(!leaks(&debug, &minted.token), "{debug}");
    assert!(
        !leaks(&debug, &minted.hash1),
        "hash1 is the AT's link to the RT: {debug}"
    );
    assert!(
        leaks(&format!("{:?}", minted.token), &minted.token),
        "control"
    );
}

#[test]
fn rob05_debug_of_session_results_never_prints_whole_tokens_or_the_anti_csrf_token() {
    let info = |token: &str| tessera::TokenInfo {
        token: token.to_owned(),
        expiry: 2,
        created_time: 1,
    };
    let at = format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "A".repeat(40));
    let rt = format!("{}.{}.V2", "B".repeat(60), sha256_hex("n"));
    let csrf = "c5a1f0e2-anti-csrf-secret-0001";
    let tokens = tessera::SessionTokens {
        session: tessera::SessionSummary {
            handle: "h".into(),
            user_id: "u".into(),
            recipe_user_id: "u".into(),
            user_data_in_jwt: Default::default(),
            tenant_id: "public".into(),
        },
        access_token: info(&at),
        refresh_token: info(&rt),
        anti_csrf_token: Some(csrf.into()),
    };
    let debug = format!("{tokens:?}");
    for secret in [at.as_str(), rt.as_str(), csrf] {
        assert!(!leaks(&debug, secret), "{secret} in {debug}");
    }
    let verified = tessera::VerifiedSession {
        session: tokens.session.clone(),
        access_token: Some(info(&at)),
        anti_csrf_token: Some(csrf.into()),
        access_token_expiry: 2,
    };
    let debug = format!("{verified:?}");
    for secret in [at.as_str(), csrf] {
        assert!(!leaks(&debug, secret), "{secret} in {debug}");
    }
}

#[test]
fn rob05_constant_time_eq_is_plain_equality() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"secret", b"secret"));
    assert!(!constant_time_eq(b"secret", b"secreT"));
    assert!(!constant_time_eq(b"secret", b"secret2"));
    assert!(!constant_time_eq(b"Secret", b"secret"));
    assert!(tessera::anti_csrf_matches(Some("x"), Some("x")));
    assert!(!tessera::anti_csrf_matches(Some("x"), Some("y")));
    assert!(!tessera::anti_csrf_matches(None, Some("x")));
}
