//! [`RemoteCore`]: the SDK talking to a `tessera serve` (or any SuperTokens core, CDI 5.4) over
//! HTTP. Access tokens are verified locally against the core's JWKS (cached, refetched on an
//! unknown `kid` at most once per cooldown); the core is called only when the protocol needs
//! it — a token's first use after a refresh, a database check, or any write.

use crate::core::{Core, Verified};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera::anonymous::{
    AnonymousConfig, AnonymousSessions, MintAnonymous, MintedAnonymous, VerifiedAnonymous,
};
use tessera::token::anonymous::{plausible_anonymous_id, AnonymousRejection, ANONYMOUS_ID_CLAIM};
use tessera::{
    verify_access_token, Clock, EngineError, NewSession, RefreshOptions, Regenerated, SessionError,
    SessionInfo, SessionSummary, SessionTokens, SystemClock, TokenInfo, TryRefreshReason,
    UnauthorisedReason, VerifiedSession, VerifyOptions, VerifyPolicy, VerifyingKeySet,
};

/// The CDI version spoken.
const CDI_VERSION: &str = "5.4";
/// An unknown `kid` refetches the JWKS at most this often.
const JWKS_COOLDOWN_MS: u64 = 500;
/// A JWKS is refetched at least this often (supertokens-node's default, 4 h).
const JWKS_MAX_AGE_MS: u64 = 4 * 3600 * 1000;

/// A session core reached over HTTP.
///
/// ```no_run
/// # fn demo() -> Result<(), tessera::EngineError> {
/// let core = tessera_axum::RemoteCore::new("http://127.0.0.1:3567", None)?;
/// # Ok(()) }
/// ```
pub struct RemoteCore {
    base: String,
    api_key: Option<String>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    keys: ArcSwap<VerifyingKeySet>,
    fetched_at_ms: AtomicU64,
    refetch: tokio::sync::Mutex<()>,
    verified: tessera::token::cache::VerifiedTokenCache,
    anonymous: ArcSwap<AnonymousSessions>,
}

/// Verify-only anonymous settings of a remote SDK: the longest lifetime a core may configure,
/// so every token the core mints is accepted.
fn remote_anonymous_config() -> AnonymousConfig {
    AnonymousConfig {
        lifetime_ms: 400 * 86_400_000,
        ..AnonymousConfig::default()
    }
}

impl std::fmt::Debug for RemoteCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCore")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn remote(e: impl std::fmt::Display) -> SessionError {
    SessionError::Engine(EngineError::Remote(e.to_string()))
}

impl RemoteCore {
    /// A core at `connection_uri` (e.g. `http://127.0.0.1:3567` or `…/appid-myapp`), with an
    /// optional API key.
    pub fn new(connection_uri: &str, api_key: Option<String>) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| EngineError::Remote(e.to_string()))?;
        Ok(Self {
            base: connection_uri.trim_end_matches('/').to_owned(),
            api_key,
            client,
            clock: Arc::new(SystemClock),
            keys: ArcSwap::from_pointee(VerifyingKeySet::default()),
            fetched_at_ms: AtomicU64::new(0),
            refetch: tokio::sync::Mutex::new(()),
            verified: tessera::token::cache::VerifiedTokenCache::new(10_000),
            anonymous: ArcSwap::from_pointee(AnonymousSessions::empty(remote_anonymous_config())),
        })
    }

    /// Replaces the clock used for local expiry checks (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("cdi-version", CDI_VERSION)
            .header("rid", "session");
        if let Some(key) = &self.api_key {
            rb = rb.header("api-key", key);
        }
        rb
    }

    async fn call(&self, rb: reqwest::RequestBuilder) -> Result<Value, SessionError> {
        let response = rb.send().await.map_err(remote)?;
        let status = response.status();
        let text = response.text().await.map_err(remote)?;
        if !status.is_success() {
            // 400 text bodies are input errors (protected claims and the like).
            if status == reqwest::StatusCode::BAD_REQUEST {
                return Err(SessionError::InvalidInput(tessera::InputError::Invalid(
                    text,
                )));
            }
            return Err(remote(format!("HTTP {status}")));
        }
        serde_json::from_str(&text).map_err(remote)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, SessionError> {
        self.call(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> Result<Value, SessionError> {
        self.call(self.request(reqwest::Method::PUT, path).json(&body))
            .await
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, SessionError> {
        self.call(self.request(reqwest::Method::GET, path).query(query))
            .await
    }

    /// Refetches the JWKS (serialised; at most once per cooldown unless `force`).
    async fn refresh_keys(&self, force: bool) -> Result<(), SessionError> {
        let _guard = self.refetch.lock().await;
        let now = self.clock.now_ms();
        let last = self.fetched_at_ms.load(Ordering::Relaxed);
        if !force && last != 0 && now < last.saturating_add(JWKS_COOLDOWN_MS) {
            return Ok(());
        }
        let response = self
            .client
            .get(format!("{}/.well-known/jwks.json", self.base))
            .send()
            .await
            .map_err(remote)?;
        let text = response.text().await.map_err(remote)?;
        let keys = VerifyingKeySet::from_jwks_json(&text)?;
        let jwks: tessera::Jwks =
            serde_json::from_str(&text).map_err(|_| EngineError::Corrupt("JWKS is not valid"))?;
        let anonymous = AnonymousSessions::from_jwks(remote_anonymous_config(), &jwks)?;
        self.anonymous.store(Arc::new(anonymous));
        let withdrawn = self.keys.load().kids().any(|kid| !keys.contains(kid));
        if withdrawn {
            self.verified.clear();
        }
        self.keys.store(Arc::new(keys));
        self.fetched_at_ms.store(now.max(1), Ordering::Relaxed);
        Ok(())
    }

    /// The anonymous key ids currently held, current first.
    fn anonymous_kids(&self) -> Vec<String> {
        self.anonymous
            .load()
            .jwks()
            .into_iter()
            .map(|k| k.kid)
            .collect()
    }

    fn verify_locally(
        &self,
        token: &str,
    ) -> Result<Arc<tessera::AccessTokenClaims>, TryRefreshReason> {
        let now_ms = self.clock.now_ms();
        if let Some(claims) = self.verified.get(token, now_ms) {
            return Ok(claims);
        }
        let policy = VerifyPolicy {
            now_ms,
            max_lifetime_s: u64::MAX / 1000,
            ignore_time: false,
        };
        let claims = Arc::new(verify_access_token(token, &**self.keys.load(), &policy)?);
        self.verified.insert(token, Arc::clone(&claims));
        Ok(claims)
    }
}

fn status_of(v: &Value) -> &str {
    v.get("status").and_then(Value::as_str).unwrap_or_default()
}

fn string(v: &Value, key: &str) -> Result<String, SessionError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| remote(format!("missing field {key}")))
}

fn token_info(v: &Value) -> Result<TokenInfo, SessionError> {
    Ok(TokenInfo {
        token: string(v, "token")?,
        expiry: v.get("expiry").and_then(Value::as_u64).unwrap_or(0),
        created_time: v.get("createdTime").and_then(Value::as_u64).unwrap_or(0),
    })
}

fn summary(v: &Value) -> Result<SessionSummary, SessionError> {
    Ok(SessionSummary {
        handle: string(v, "handle")?,
        user_id: string(v, "userId")?,
        recipe_user_id: v
            .get("recipeUserId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(string(v, "userId")?),
        user_data_in_jwt: v
            .get("userDataInJWT")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        tenant_id: v
            .get("tenantId")
            .and_then(Value::as_str)
            .unwrap_or(tessera::PUBLIC)
            .to_owned(),
    })
}

fn tokens(v: &Value) -> Result<SessionTokens, SessionError> {
    Ok(SessionTokens {
        session: summary(&v["session"])?,
        access_token: token_info(&v["accessToken"])?,
        refresh_token: token_info(&v["refreshToken"])?,
        anti_csrf_token: v
            .get("antiCsrfToken")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Maps the core's non-OK statuses.
fn not_ok(v: &Value, unauthorised: UnauthorisedReason) -> SessionError {
    let message = v.get("message").and_then(Value::as_str).unwrap_or_default();
    match status_of(v) {
        "UNAUTHORISED" if message == UnauthorisedReason::AntiCsrfMismatch.to_string() => {
            SessionError::Unauthorised(UnauthorisedReason::AntiCsrfMismatch)
        }
        "UNAUTHORISED" => SessionError::Unauthorised(unauthorised),
        "TRY_REFRESH_TOKEN" => SessionError::TryRefreshToken(TryRefreshReason::InvalidToken),
        "TOKEN_THEFT_DETECTED" => SessionError::TokenTheft {
            session_handle: v["session"]["handle"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            user_id: v["session"]["userId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            recipe_user_id: v["session"]["recipeUserId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        },
        other => remote(format!("unexpected status {other:?}")),
    }
}

#[async_trait]
impl Core for RemoteCore {
    async fn create_session(&self, new: NewSession) -> Result<SessionTokens, SessionError> {
        let mut body = json!({
            "userId": new.user_id,
            "userDataInJWT": new.access_token_payload,
            "userDataInDatabase": new.session_data,
            "useDynamicSigningKey": !new.use_static_key,
            "enableAntiCsrf": new.enable_anti_csrf,
        });
        if let (Some(id), Value::Object(map)) = (&new.anonymous_id, &mut body) {
            // Tessera extension (A15); omitted otherwise, so any SuperTokens core accepts it.
            map.insert("anonymousId".into(), Value::String(id.clone()));
        }
        let v = self
            .post(&format!("/{}/recipe/session", new.tenant_id), body)
            .await?;
        match status_of(&v) {
            "OK" => tokens(&v),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist)),
        }
    }

    async fn verify_session(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Result<VerifiedSession, SessionError> {
        if self.fetched_at_ms.load(Ordering::Relaxed) == 0
            || self.clock.now_ms()
                > self
                    .fetched_at_ms
                    .load(Ordering::Relaxed)
                    .saturating_add(JWKS_MAX_AGE_MS)
        {
            self.refresh_keys(true).await?;
        }
        let claims = match self.verify_locally(access_token) {
            Err(TryRefreshReason::KeyNotFound) => {
                self.refresh_keys(false).await?;
                self.verify_locally(access_token)
            }
            other => other,
        }
        .map_err(SessionError::TryRefreshToken)?;
        if options.anti_csrf_check {
            let ok = tessera::token::access::anti_csrf_matches(
                claims.anti_csrf_token.as_deref(),
                options.anti_csrf_token,
            );
            if !ok {
                return Err(SessionError::TryRefreshToken(
                    TryRefreshReason::AntiCsrfFailed,
                ));
            }
        }
        if claims.parent_refresh_token_hash1.is_none() && !options.check_database {
            return Ok(VerifiedSession::from_claims(
                Arc::unwrap_or_clone(claims),
                None,
            ));
        }
        let mut body = json!({
            "accessToken": access_token,
            "doAntiCsrfCheck": options.anti_csrf_check,
            "enableAntiCsrf": options.anti_csrf_check,
            "checkDatabase": options.check_database,
        });
        if let Some(token) = options.anti_csrf_token {
            body["antiCsrfToken"] = Value::String(token.to_owned());
        }
        let v = self.post("/recipe/session/verify", body).await?;
        if status_of(&v) != "OK" {
            return Err(not_ok(&v, UnauthorisedReason::SessionEnded));
        }
        let new_token = match v.get("accessToken") {
            Some(t) if t.is_object() => Some(token_info(t)?),
            _ => None,
        };
        Ok(VerifiedSession {
            access_token_expiry: new_token
                .as_ref()
                .map(|t| t.expiry)
                .unwrap_or(claims.exp.saturating_mul(1000)),
            anti_csrf_token: claims.anti_csrf_token.clone(),
            session: summary(&v["session"])?,
            access_token: new_token,
        })
    }

    fn verify_session_local(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Option<Result<VerifiedSession, SessionError>> {
        self.verify_session_shared(access_token, options).map(|r| {
            r.map(|verified| match verified {
                Verified::Shared(claims) => {
                    VerifiedSession::from_claims(Arc::unwrap_or_clone(claims), None)
                }
                Verified::Owned(session) => session,
            })
        })
    }

    fn verify_session_shared(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Option<Result<Verified, SessionError>> {
        let fetched = self.fetched_at_ms.load(Ordering::Relaxed);
        if options.check_database
            || fetched == 0
            || self.clock.now_ms() > fetched.saturating_add(JWKS_MAX_AGE_MS)
        {
            return None;
        }
        let claims = match self.verify_locally(access_token) {
            Err(TryRefreshReason::KeyNotFound) => return None,
            Err(reason) => return Some(Err(SessionError::TryRefreshToken(reason))),
            Ok(claims) => claims,
        };
        if claims.parent_refresh_token_hash1.is_some() {
            return None;
        }
        if options.anti_csrf_check
            && !tessera::token::access::anti_csrf_matches(
                claims.anti_csrf_token.as_deref(),
                options.anti_csrf_token,
            )
        {
            return Some(Err(SessionError::TryRefreshToken(
                TryRefreshReason::AntiCsrfFailed,
            )));
        }
        Some(Ok(Verified::Shared(claims)))
    }

    async fn refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, SessionError> {
        let mut body = json!({
            "refreshToken": refresh_token,
            "enableAntiCsrf": options.enable_anti_csrf,
            "useDynamicSigningKey": !options.use_static_key.unwrap_or(false),
        });
        if let Some(token) = options.anti_csrf_token {
            body["antiCsrfToken"] = Value::String(token.to_owned());
        }
        let v = self.post("/recipe/session/refresh", body).await?;
        match status_of(&v) {
            "OK" => tokens(&v),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionMissingOrExpired)),
        }
    }

    async fn regenerate_access_token(
        &self,
        access_token: &str,
        payload: Option<Map<String, Value>>,
    ) -> Result<Regenerated, SessionError> {
        let mut body = json!({ "accessToken": access_token });
        if let Some(p) = payload {
            body["userDataInJWT"] = Value::Object(p);
        }
        let v = self.post("/recipe/session/regenerate", body).await?;
        if status_of(&v) != "OK" {
            return Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist));
        }
        Ok(Regenerated {
            session: summary(&v["session"])?,
            access_token: match v.get("accessToken") {
                Some(t) if t.is_object() => Some(token_info(t)?),
                _ => None,
            },
        })
    }

    async fn revoke_session(&self, handle: &str) -> Result<bool, SessionError> {
        let v = self
            .post(
                "/recipe/session/remove",
                json!({ "sessionHandles": [handle] }),
            )
            .await?;
        Ok(v["sessionHandlesRevoked"]
            .as_array()
            .is_some_and(|a| a.len() == 1))
    }

    async fn revoke_all_sessions_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        let (path, across) = match tenant_id {
            Some(t) => (format!("/{t}/recipe/session/remove"), false),
            None => ("/recipe/session/remove".to_owned(), true),
        };
        let v = self
            .post(
                &path,
                json!({ "userId": user_id, "revokeAcrossAllTenants": across }),
            )
            .await?;
        Ok(strings(&v["sessionHandlesRevoked"]))
    }

    async fn session_handles_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        let (path, across) = match tenant_id {
            Some(t) => (format!("/{t}/recipe/session/user"), "false"),
            None => ("/recipe/session/user".to_owned(), "true"),
        };
        let v = self
            .get(
                &path,
                &[("userId", user_id), ("fetchAcrossAllTenants", across)],
            )
            .await?;
        Ok(strings(&v["sessionHandles"]))
    }

    async fn get_session_info(&self, handle: &str) -> Result<SessionInfo, SessionError> {
        let v = self
            .get("/recipe/session", &[("sessionHandle", handle)])
            .await?;
        if status_of(&v) != "OK" {
            return Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist));
        }
        Ok(SessionInfo {
            session_handle: string(&v, "sessionHandle")?,
            user_id: string(&v, "userId")?,
            recipe_user_id: v["recipeUserId"].as_str().unwrap_or_default().to_owned(),
            session_data: v["userDataInDatabase"].clone(),
            access_token_payload: v["userDataInJWT"].as_object().cloned().unwrap_or_default(),
            expiry: v["expiry"].as_u64().unwrap_or(0),
            time_created: v["timeCreated"].as_u64().unwrap_or(0),
            tenant_id: v["tenantId"].as_str().unwrap_or(tessera::PUBLIC).to_owned(),
        })
    }

    async fn update_session_data(&self, handle: &str, data: &Value) -> Result<(), SessionError> {
        let v = self
            .put(
                "/recipe/session/data",
                json!({ "sessionHandle": handle, "userDataInDatabase": data }),
            )
            .await?;
        match status_of(&v) {
            "OK" => Ok(()),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist)),
        }
    }

    async fn update_access_token_payload(
        &self,
        handle: &str,
        payload: &Map<String, Value>,
    ) -> Result<(), SessionError> {
        let v = self
            .put(
                "/recipe/jwt/data",
                json!({ "sessionHandle": handle, "userDataInJWT": payload }),
            )
            .await?;
        match status_of(&v) {
            "OK" => Ok(()),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist)),
        }
    }

    fn verify_anonymous(&self, token: &str) -> Result<VerifiedAnonymous, AnonymousRejection> {
        self.anonymous.load().verify(token, self.clock.now_ms())
    }

    fn readable_anonymous_id(&self, token: &str) -> Option<String> {
        self.anonymous
            .load()
            .readable_anonymous_id(token, self.clock.now_ms())
    }

    fn access_token_anonymous_id(&self, token: &str) -> Option<String> {
        let policy = VerifyPolicy {
            now_ms: self.clock.now_ms(),
            max_lifetime_s: u64::MAX / 1000,
            ignore_time: true,
        };
        let claims = verify_access_token(token, &**self.keys.load(), &policy).ok()?;
        claims
            .user_claims
            .get(ANONYMOUS_ID_CLAIM)
            .and_then(Value::as_str)
            .filter(|id| plausible_anonymous_id(id))
            .map(str::to_owned)
    }

    async fn mint_anonymous(
        &self,
        request: MintAnonymous,
    ) -> Result<MintedAnonymous, SessionError> {
        let tenant = request.tenant_id.as_deref().unwrap_or(tessera::PUBLIC);
        let mut body = Map::new();
        body.insert("payload".into(), Value::Object(request.payload));
        body.insert(
            "enableAntiCsrf".into(),
            Value::Bool(request.enable_anti_csrf),
        );
        if let Some(id) = request.anonymous_id {
            body.insert("anonymousId".into(), Value::String(id));
        }
        if let Some(csrf) = request.anti_csrf_token {
            body.insert("antiCsrfToken".into(), Value::String(csrf));
        }
        let body = Value::Object(body);
        let v = self
            .post(&format!("/{tenant}/recipe/session/anonymous"), body)
            .await?;
        if status_of(&v) != "OK" {
            return Err(remote("anonymous mint refused"));
        }
        let token = v["anonymousToken"]["token"]
            .as_str()
            .ok_or_else(|| remote("anonymous mint: no token"))?
            .to_owned();
        // The claims come from verifying the token with the core's published key, so what the
        // SDK believes is exactly what later requests will verify.
        let now = self.clock.now_ms();
        let verified = match self.anonymous.load().verify(&token, now) {
            Ok(v) => v,
            Err(_) => {
                self.refresh_keys(true).await?;
                self.anonymous
                    .load()
                    .verify(&token, now)
                    .map_err(|_| remote("anonymous token from the core does not verify"))?
            }
        };
        Ok(MintedAnonymous {
            token,
            claims: (*verified.claims).clone(),
        })
    }

    async fn refresh_anonymous_keys(&self) -> bool {
        let before = self.anonymous_kids();
        self.refresh_keys(false).await.is_ok() && self.anonymous_kids() != before
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
