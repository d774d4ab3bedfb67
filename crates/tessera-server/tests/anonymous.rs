//! `POST /recipe/session/anonymous` (B5): the core mints anonymous tokens with its anonymous
//! key, publishes that key in its JWKS, and writes nothing to the database.

mod common;

use common::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use tessera::anonymous::{AnonymousConfig, AnonymousSessions};
use tessera::{Jwks, VerifyingKeySet};

async fn jwks(s: &TestServer) -> Jwks {
    let r = s.get("/.well-known/jwks.json").await;
    serde_json::from_value(r.json).expect("jwks")
}

async fn session_count(s: &TestServer) -> usize {
    let store = s.place.open().await;
    store.count_sessions("public").await.expect("count") as usize
}

both_stores!(
    b5_core_mints_and_publishes_without_writes,
    |backend: Backend| async move {
        let s = common::start(backend).await;
        let keys = jwks(&s).await;
        let anon_keys: Vec<_> = keys
            .keys
            .iter()
            .filter(|k| k.kid.starts_with("a-"))
            .collect();
        assert_eq!(anon_keys.len(), 1, "the anonymous key is published");
        assert!(
            !VerifyingKeySet::from_jwks(&keys)
                .unwrap()
                .contains(&anon_keys[0].kid),
            "never as an access-token key"
        );
        let verifier = AnonymousSessions::from_jwks(AnonymousConfig::default(), &keys).unwrap();

        // Fresh visitor.
        let r = s.post("/recipe/session/anonymous", json!({})).await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        let id = r.json["anonymousId"].as_str().unwrap().to_owned();
        let token = r.json["anonymousToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let now = r.json["anonymousToken"]["createdTime"].as_u64().unwrap();
        let verified = verifier
            .verify(&token, now)
            .expect("verifies with the JWKS");
        assert_eq!(verified.claims.anonymous_id, id);
        assert!(r.json.get("antiCsrfToken").is_none());

        // Same visitor, with a payload and an anti-CSRF token, in a tenant.
        let r = s
            .post(
                "/tenant1/recipe/session/anonymous",
                json!({"anonymousId": id, "payload": {"cart": 2}, "enableAntiCsrf": true}),
            )
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        assert_eq!(r.json["anonymousId"], id.as_str());
        assert!(r.json["antiCsrfToken"].is_string());
        let token = r.json["anonymousToken"]["token"].as_str().unwrap();
        let claims = verifier.verify(token, now).unwrap().claims;
        assert_eq!(claims.tenant_id, "tenant1");
        assert_eq!(claims.payload["cart"], 2);

        // Bad input is a 400 with a reason, never a 500.
        for body in [
            json!({"anonymousId": "short"}),
            json!({"payload": {"sub": "admin"}}),
            json!({"payload": {"blob": "x".repeat(2000)}}),
            json!({"payload": "not an object"}),
            json!({"anonymousId": 5}),
        ] {
            let r = s.post("/recipe/session/anonymous", body.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} → {}", r.text);
        }

        // A1: nothing was written.
        assert_eq!(session_count(&s).await, 0);
    }
);

both_stores!(
    a9_anon11_operator_anonymous_key_with_overlap,
    |backend: Backend| async move {
        use tessera::keys::anonymous_key::{AnonymousAlgorithm, AnonymousSigningKey};
        let old = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
        let new = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
        // First the old key alone: a visitor gets a token under it.
        let place = common::Place::fresh(backend);
        let mut config = common::config();
        config.anonymous_signing_key = Some(old.to_stored().unwrap());
        let s = common::start_with(place, config.clone()).await;
        let r = s.post("/recipe/session/anonymous", json!({})).await;
        let old_token = r.json["anonymousToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let now = r.json["anonymousToken"]["createdTime"].as_u64().unwrap();
        let kids: Vec<String> = jwks(&s).await.keys.into_iter().map(|k| k.kid).collect();
        assert!(
            kids.contains(&old.kid().to_owned()),
            "the configured key's kid: {kids:?}"
        );
        let place = s.place.clone();
        s.stop().await;

        // Rotation: the new key signs, the old one still verifies (both published).
        config.anonymous_signing_key = Some(new.to_stored().unwrap());
        config.previous_anonymous_signing_keys = vec![old.to_stored().unwrap()];
        let s = common::start_with(place.clone(), config.clone()).await;
        let keys = jwks(&s).await;
        let anon: Vec<&str> = keys
            .keys
            .iter()
            .map(|k| k.kid.as_str())
            .filter(|k| k.starts_with("a-"))
            .collect();
        assert_eq!(
            anon,
            vec![new.kid(), old.kid()],
            "current first, then the previous key"
        );
        let verifier = AnonymousSessions::from_jwks(AnonymousConfig::default(), &keys).unwrap();
        let v = verifier
            .verify(&old_token, now)
            .expect("the old key still verifies");
        assert!(v.renew, "a token of a previous key is re-signed");
        s.stop().await;

        // Retired (or an emergency removal): the old key is gone from the JWKS, its tokens fail.
        config.previous_anonymous_signing_keys = vec![];
        let s = common::start_with(place, config).await;
        let keys = jwks(&s).await;
        let verifier = AnonymousSessions::from_jwks(AnonymousConfig::default(), &keys).unwrap();
        assert!(verifier.verify(&old_token, now).is_err());
        // Access-token keys are untouched by all this.
        assert!(keys.keys.iter().any(|k| k.kid.starts_with("d-")));
    }
);
