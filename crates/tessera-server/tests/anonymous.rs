//! `POST /recipe/session/anonymous` (B5): the core mints anonymous tokens with its anonymous
//! key, publishes that key at `/.well-known/anonymous-jwks.json` (apart from the access-token
//! JWKS, SEC2-L3), and writes nothing to the database.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::StatusCode;
use serde_json::json;
use tessera::{AnonymousConfig, AnonymousSessions, Jwks, VerifyingKeySet};
use tessera_testkit::in_process::TestServer;
use tessera_testkit::{both_stores, in_process, Backend, Place};

/// The anonymous keys, at their own URL (SEC2-L3).
async fn jwks(s: &TestServer) -> Jwks {
    let r = s.get("/.well-known/anonymous-jwks.json").await;
    serde_json::from_value(r.json).expect("jwks")
}

async fn session_count(s: &TestServer) -> usize {
    let store = s.place.open().await;
    store.count_sessions("public").await.expect("count") as usize
}

both_stores!(
    b5_core_mints_and_publishes_without_writes,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
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
        use tessera::{AnonymousAlgorithm, AnonymousSigningKey};
        let old = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
        let new = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
        // First the old key alone: a visitor gets a token under it.
        let place = Place::fresh(backend);
        let mut config = in_process::config();
        config.anonymous_signing_key = Some(old.to_stored().unwrap());
        let s = in_process::start_with(place, config.clone()).await;
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
        let s = in_process::start_with(place.clone(), config.clone()).await;
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
        let s = in_process::start_with(place, config).await;
        let keys = jwks(&s).await;
        let verifier = AnonymousSessions::from_jwks(AnonymousConfig::default(), &keys).unwrap();
        assert!(verifier.verify(&old_token, now).is_err());
        // Access-token keys are untouched by all this.
        let at_keys: Jwks =
            serde_json::from_value(s.get("/.well-known/jwks.json").await.json).unwrap();
        assert!(at_keys.keys.iter().any(|k| k.kid.starts_with("d-")));
    }
);

// ---- Security round 2 (issue 11) ----

both_stores!(
    sec2_l3_jwt30_anonymous_keys_have_a_jwks_of_their_own,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
        // Access-token (and JWT-recipe) keys only: a gateway that checks just the signature
        // against this set can no longer be handed an anonymous token.
        for path in ["/.well-known/jwks.json", "/recipe/jwt/jwks"] {
            let r = s.get(path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
            let keys: Jwks = serde_json::from_value(r.json.clone()).unwrap();
            assert!(!keys.keys.is_empty(), "{path}");
            for k in &keys.keys {
                assert!(
                    k.kty == "RSA" && (k.kid.starts_with("d-") || k.kid.starts_with("s-")),
                    "{path} lists {}",
                    k.kid
                );
            }
        }
        // The anonymous keys at their own URL, like the JWKS: no API key, cacheable.
        let r = s
            .raw(
                reqwest::Method::GET,
                "/.well-known/anonymous-jwks.json",
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        assert!(r.headers.get("cache-control").is_some());
        let keys: Jwks = serde_json::from_value(r.json).unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert!(keys.keys[0].kid.starts_with("a-") && keys.keys[0].kty == "OKP");
        assert!(VerifyingKeySet::from_jwks(&keys).unwrap().is_empty());
        let verifier = AnonymousSessions::from_jwks(AnonymousConfig::default(), &keys).unwrap();
        let r = s.post("/recipe/session/anonymous", json!({})).await;
        let token = r.json["anonymousToken"]["token"].as_str().unwrap();
        let now = r.json["anonymousToken"]["createdTime"].as_u64().unwrap();
        assert!(verifier.verify(token, now).is_ok());
    }
);

both_stores!(
    sec2_h2_a_failed_refresh_answers_the_anonymous_id_its_refresh_token_carries,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
        let id = "visitor-0123456789abcdefXYZ";
        let create = |anonymous_id: Option<&str>| {
            let mut body = json!({"userId": "u", "userDataInJWT": {}, "userDataInDatabase": {},
                                  "enableAntiCsrf": false});
            if let Some(id) = anonymous_id {
                body["anonymousId"] = json!(id);
            }
            s.post("/public/recipe/session", body)
        };
        let refresh = |rt: String| {
            s.post(
                "/recipe/session/refresh",
                json!({"refreshToken": rt, "enableAntiCsrf": false, "useDynamicSigningKey": true}),
            )
        };
        let created = create(Some(id)).await;
        let rt1 = created.json["refreshToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let handle = created.json["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        // Rotated twice: the id travels in every child's encrypted payload.
        let r = refresh(rt1).await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        assert!(r.json.get("anonymousId").is_none(), "only on failure");
        let rt2 = r.json["refreshToken"]["token"].as_str().unwrap().to_owned();
        let r = refresh(rt2).await;
        let rt3 = r.json["refreshToken"]["token"].as_str().unwrap().to_owned();
        let r = s
            .post(
                "/recipe/session/remove",
                json!({"sessionHandles": [handle]}),
            )
            .await;
        assert_eq!(r.status_field(), "OK");
        let r = refresh(rt3).await;
        assert_eq!(r.status_field(), "UNAUTHORISED", "{}", r.text);
        assert_eq!(
            r.json["anonymousId"], id,
            "proof: the caller holds the refresh token"
        );
        // Anything that is not a genuine refresh token proves nothing.
        let r = refresh("junk".into()).await;
        assert_eq!(r.status_field(), "UNAUTHORISED");
        assert!(r.json.get("anonymousId").is_none(), "{}", r.text);
        let at = created.json["accessToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = refresh(at).await;
        assert!(
            r.json.get("anonymousId").is_none(),
            "an access token is no proof"
        );
        // A session created without one: nothing to answer.
        let created = create(None).await;
        let rt = created.json["refreshToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let handle = created.json["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        s.post(
            "/recipe/session/remove",
            json!({"sessionHandles": [handle]}),
        )
        .await;
        let r = refresh(rt).await;
        assert_eq!(r.status_field(), "UNAUTHORISED");
        assert!(r.json.get("anonymousId").is_none());
    }
);
