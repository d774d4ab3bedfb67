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
