//! [`RemoteCore`]: the SDK talking to a `tessera serve` (or any SuperTokens core, CDI 5.4) over
//! HTTP. Access tokens are verified locally against the core's JWKS (cached, refetched on an
//! unknown `kid` at most once per cooldown); the core is called only when the protocol needs
//! it — a token's first use after a refresh, a database check, or any write.
//!
//! The connection (SEC2-M3): `https://` with rustls (the system's root certificates, plus any
//! given with [`RemoteCoreBuilder::add_root_certificate_pem`]); plain `http://` only to a
//! loopback address, unless the app opts in with [`RemoteCoreBuilder::allow_insecure_http`].
//! No redirects are followed.
//!
//! The keys (SEC2-L3, SEC2-L7): access-token keys from `/.well-known/jwks.json`, anonymous-token
//! keys from `/.well-known/anonymous-jwks.json` (a core without that URL has none). A key set
//! past its refresh interval is refetched in the background while the last good set keeps
//! serving (for up to a day); after a failed fetch the next attempt waits a cool-down, so an
//! unreachable core costs one attempt per cool-down, not one per request.

use crate::core::{ends_session, RefreshFailure, SessionCore, Verified};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera::{
    check_session, plausible_anonymous_id, verify_access_token, AnonymousConfig,
    AnonymousRejection, AnonymousSessions, ChallengeRejection, Clock, DbscBinding, DbscError,
    EngineError, InputError, MintAnonymous, MintedAnonymous, NewSession, ProofRejection,
    RefreshOptions, Regenerated, SessionCheck, SessionError, SessionInfo, SessionSummary,
    SessionTokens, SystemClock, TokenInfo, TryRefreshReason, UnauthorisedReason, VerifiedAnonymous,
    VerifiedSession, VerifyOptions, VerifyPolicy, VerifyingKeySet,
};

/// The CDI version spoken.
const CDI_VERSION: &str = "5.4";
/// After a successful fetch, an unknown `kid` refetches at most this often (JWT-08).
const JWKS_COOLDOWN_MS: u64 = 500;
/// After a failed fetch, the next attempt waits this long (SEC2-L7).
const JWKS_FAILURE_COOLDOWN_MS: u64 = 10_000;
/// A key set is refetched at least this often by default: a key the core stops publishing (an
/// operator key replaced after a leak, SEC2-H1) stops verifying here within this time. One small
/// background request per minute; supertokens-node's default is 4 h.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// While fetches fail, the last good key set serves for at most this long after it was
/// fetched; then verification fails closed (ROB-12).
const JWKS_STALE_LIMIT_MS: u64 = 24 * 3600 * 1000;
/// Longest wait for one call to the core (default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A session core reached over HTTP.
///
/// ```no_run
/// # fn demo() -> Result<(), tessera::EngineError> {
/// // Loopback: plain http is fine.
/// let local = tessera_axum::RemoteCore::new("http://127.0.0.1:3567", None)?;
/// // Anywhere else: https, here with a private CA.
/// let remote = tessera_axum::RemoteCore::builder("https://core.internal:3567")
///     .api_key("…")
///     .add_root_certificate_pem(std::fs::read("core-ca.pem").unwrap())
///     .build()?;
/// # Ok(()) }
/// ```
pub struct RemoteCore {
    base: String,
    api_key: Option<String>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    keys: Arc<KeySource>,
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

/// Builds a [`RemoteCore`]: the core's URL, its API key, TLS roots, and the opt-in for plain
/// http to a non-loopback host.
#[derive(Clone)]
pub struct RemoteCoreBuilder {
    connection_uri: String,
    api_key: Option<String>,
    root_certificates: Vec<Vec<u8>>,
    allow_insecure_http: bool,
    request_timeout: Duration,
    jwks_refresh_interval: Duration,
}

impl std::fmt::Debug for RemoteCoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCoreBuilder")
            .field("connection_uri", &self.connection_uri)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

impl RemoteCoreBuilder {
    /// The core's API key (sent as `api-key` on every call but the JWKS).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Also trusts the CA certificate(s) in `pem` (PEM, one or more `CERTIFICATE` blocks) for
    /// the core's TLS certificate, beside the system's roots: for a core behind a private CA.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Allows a plain `http://` URL to a host that is not loopback. Off by default, and
    /// [`Self::build`] refuses such a URL: the API key, every token and the JWKS would cross
    /// the network in clear, and anyone on the path could read sessions or inject signing keys.
    /// Turn it on only where the network itself is trusted and encrypted (e.g. a service mesh
    /// that adds TLS between pods).
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// How long one call to the core may take (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often the key sets are refetched at the latest (default 60 s, so a key the core
    /// retires stops verifying within a minute; supertokens-node's `jwksRefreshIntervalSec` is
    /// 4 h). An unknown `kid` refetches sooner.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh_interval = interval;
        self
    }

    /// Checks the URL and builds the client.
    ///
    /// # Errors
    ///
    /// [`EngineError::Config`] for a URL that is not `http(s)://host…`, for plain `http://` to
    /// a host that is not loopback (unless [`Self::allow_insecure_http`]), and for a root
    /// certificate that does not parse.
    pub fn build(self) -> Result<RemoteCore, EngineError> {
        let config = |m: String| EngineError::Config(format!("remote core: {m}"));
        let url = reqwest::Url::parse(self.connection_uri.trim())
            .map_err(|_| config("the connection URI must be an absolute http(s) URL".into()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| config("the connection URI has no host".into()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(config(format!("unsupported scheme {other:?}: use https"))),
        };
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            return Err(config(
                "the connection URI must not carry credentials or a query (use api_key)".into(),
            ));
        }
        if !https && !is_loopback(host) && !self.allow_insecure_http {
            return Err(config(format!(
                "plain http to {host} would send the API key, tokens and signing keys in clear: \
                 use an https:// URL, or opt in with allow_insecure_http(true) on a network \
                 that is encrypted by other means"
            )));
        }
        let mut client = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .tls_built_in_root_certs(https)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.request_timeout);
        for pem in &self.root_certificates {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| config("a root certificate is not valid PEM".into()))?;
            if certs.is_empty() {
                return Err(config("a root certificate PEM holds no certificate".into()));
            }
            for cert in certs {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client
            .build()
            .map_err(|e| config(format!("HTTP client: {e}")))?;
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(RemoteCore {
            keys: Arc::new(KeySource::new(
                client.clone(),
                &base,
                self.jwks_refresh_interval,
            )),
            base,
            api_key: self.api_key,
            client,
            clock: Arc::new(SystemClock),
        })
    }
}

/// `localhost` or a loopback address (`host` as a URL writes it: `[::1]` for IPv6).
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A tenant id as it may appear in a core URL path (SEC2-L6): `[a-z0-9-]`, 1 to 64 bytes, not
/// one of the core's own path segments, and not starting with `appid-`, which would address
/// another app.
fn tenant_segment(tenant: &str) -> Result<&str, SessionError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !tenant.starts_with("appid-")
        && !matches!(tenant, "recipe" | "config" | "users" | "hello");
    if ok {
        Ok(tenant)
    } else {
        Err(SessionError::InvalidInput(InputError::Invalid(
            "tenantId must be 1-64 characters of [a-z0-9-], must not start with 'appid-' and \
             must not be a reserved path segment"
                .into(),
        )))
    }
}

impl RemoteCore {
    /// A core at `connection_uri` (e.g. `https://core.internal:3567` or `…/appid-myapp`), with
    /// an optional API key; see [`Self::builder`] for the other settings.
    ///
    /// # Errors
    ///
    /// As [`RemoteCoreBuilder::build`]: plain `http://` is refused unless the host is loopback.
    pub fn new(connection_uri: &str, api_key: Option<String>) -> Result<Self, EngineError> {
        let mut builder = Self::builder(connection_uri);
        builder.api_key = api_key;
        builder.build()
    }

    /// Starts building a core client for `connection_uri`.
    pub fn builder(connection_uri: &str) -> RemoteCoreBuilder {
        RemoteCoreBuilder {
            connection_uri: connection_uri.to_owned(),
            api_key: None,
            root_certificates: Vec::new(),
            allow_insecure_http: false,
            request_timeout: REQUEST_TIMEOUT,
            jwks_refresh_interval: JWKS_REFRESH_INTERVAL,
        }
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

    /// Makes sure a usable key set is held before a verification: a set past its refresh
    /// interval is refetched in the background while it keeps serving; with none usable, this
    /// waits for a fetch (which fails at once during a failure cool-down).
    async fn ensure_keys(&self) -> Result<(), SessionError> {
        let now = self.clock.now_ms();
        if !self.keys.due(now) {
            return Ok(());
        }
        if self.keys.usable(now) {
            self.keys.refresh_in_background(&self.clock);
            return Ok(());
        }
        self.keys.refresh(&self.clock, Refetch::Due).await.map(drop)
    }

    fn verify_locally(
        &self,
        token: &str,
    ) -> Result<Arc<tessera::AccessTokenClaims>, TryRefreshReason> {
        let now_ms = self.clock.now_ms();
        if let Some(claims) = self.keys.verified.get(token, now_ms) {
            return Ok(claims);
        }
        let policy = VerifyPolicy {
            now_ms,
            max_lifetime_s: u64::MAX / 1000,
            ignore_time: false,
        };
        let claims = Arc::new(verify_access_token(
            token,
            &**self.keys.access.load(),
            &policy,
        )?);
        self.keys.verified.insert(token, Arc::clone(&claims));
        Ok(claims)
    }
}

/// Why the key sets are refetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refetch {
    /// The held set is past its refresh interval (or none is held).
    Due,
    /// A token named a `kid` not held.
    UnknownKid,
}

/// The core's published keys as this SDK holds them, and their refetching: one fetch at a
/// time, at most once per cool-down, in the background while a usable set is held (SEC2-L7).
struct KeySource {
    client: reqwest::Client,
    jwks_url: String,
    anonymous_jwks_url: String,
    refresh_interval_ms: u64,
    access: ArcSwap<VerifyingKeySet>,
    anonymous: ArcSwap<AnonymousSessions>,
    verified: tessera::VerifiedTokenCache,
    /// Last successful fetch (ms); 0: never.
    fetched_at_ms: AtomicU64,
    /// Last attempt, successful or not (ms); 0: never.
    attempted_at_ms: AtomicU64,
    /// The last attempt failed.
    failing: AtomicBool,
    /// Held while a fetch runs.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

impl KeySource {
    fn new(client: reqwest::Client, base: &str, refresh_interval: Duration) -> Self {
        Self {
            client,
            jwks_url: format!("{base}/.well-known/jwks.json"),
            anonymous_jwks_url: format!("{base}/.well-known/anonymous-jwks.json"),
            refresh_interval_ms: u64::try_from(refresh_interval.as_millis()).unwrap_or(u64::MAX),
            access: ArcSwap::from_pointee(VerifyingKeySet::default()),
            anonymous: ArcSwap::from_pointee(AnonymousSessions::empty(remote_anonymous_config())),
            verified: tessera::VerifiedTokenCache::new(10_000),
            fetched_at_ms: AtomicU64::new(0),
            attempted_at_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// True when the held set is past its refresh interval, or none is held.
    fn due(&self, now: u64) -> bool {
        let fetched = self.fetched_at_ms.load(Ordering::Relaxed);
        fetched == 0 || now > fetched.saturating_add(self.refresh_interval_ms)
    }

    /// True when a set is held and not past the stale limit.
    fn usable(&self, now: u64) -> bool {
        let fetched = self.fetched_at_ms.load(Ordering::Relaxed);
        fetched != 0 && now <= fetched.saturating_add(JWKS_STALE_LIMIT_MS)
    }

    /// True when the cool-down after the last attempt has passed.
    fn may_attempt(&self, now: u64) -> bool {
        let last = self.attempted_at_ms.load(Ordering::Relaxed);
        let cooldown = if self.failing.load(Ordering::Relaxed) {
            JWKS_FAILURE_COOLDOWN_MS
        } else {
            JWKS_COOLDOWN_MS
        };
        last == 0 || now >= last.saturating_add(cooldown)
    }

    /// Refetches unless another fetch made it needless or the cool-down forbids it; true when
    /// a fetch happened and succeeded. Waits for a fetch already running.
    async fn refresh(&self, clock: &Arc<dyn Clock>, why: Refetch) -> Result<bool, SessionError> {
        let _guard = self.fetching.lock().await;
        let now = clock.now_ms();
        if why == Refetch::Due && !self.due(now) {
            return Ok(false);
        }
        if !self.may_attempt(now) {
            return if self.failing.load(Ordering::Relaxed) && !self.usable(now) {
                Err(remote("the core's key sets are unavailable (cooling down)"))
            } else {
                Ok(false)
            };
        }
        self.fetch(now).await.map(|()| true)
    }

    /// Starts a refetch in the background unless one is running or cooling down; the held
    /// set keeps serving meanwhile.
    fn refresh_in_background(self: &Arc<Self>, clock: &Arc<dyn Clock>) {
        let now = clock.now_ms();
        if !self.may_attempt(now) {
            return;
        }
        let Ok(guard) = Arc::clone(&self.fetching).try_lock_owned() else {
            return; // a fetch is running
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let keys = Arc::clone(self);
        let clock = Arc::clone(clock);
        runtime.spawn(async move {
            let _guard = guard;
            let now = clock.now_ms();
            if keys.due(now) && keys.may_attempt(now) {
                // A failure is recorded (cool-down) and logged; the held set keeps serving.
                let _ = keys.fetch(now).await;
            }
        });
    }

    /// Fetches both key sets; called with `fetching` held.
    async fn fetch(&self, now: u64) -> Result<(), SessionError> {
        self.attempted_at_ms.store(now.max(1), Ordering::Relaxed);
        match self.fetch_sets().await {
            Ok((access, anonymous)) => {
                self.anonymous.store(Arc::new(anonymous));
                let withdrawn = self.access.load().kids().any(|kid| !access.contains(kid));
                if withdrawn {
                    self.verified.clear();
                }
                self.access.store(Arc::new(access));
                self.fetched_at_ms.store(now.max(1), Ordering::Relaxed);
                self.failing.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.failing.store(true, Ordering::Relaxed);
                tracing::warn!(error = %e, "fetching the core's key sets failed; keeping the last good set");
                Err(e)
            }
        }
    }

    async fn fetch_sets(&self) -> Result<(VerifyingKeySet, AnonymousSessions), SessionError> {
        let response = self
            .client
            .get(&self.jwks_url)
            .send()
            .await
            .map_err(remote)?;
        if !response.status().is_success() {
            return Err(remote(format!("JWKS: HTTP {}", response.status())));
        }
        let text = response.text().await.map_err(remote)?;
        let access = VerifyingKeySet::from_jwks_json(&text)?;
        // Anonymous keys have a URL of their own (a core without it publishes none).
        let response = self
            .client
            .get(&self.anonymous_jwks_url)
            .send()
            .await
            .map_err(remote)?;
        let anonymous = match response.status() {
            reqwest::StatusCode::NOT_FOUND => AnonymousSessions::empty(remote_anonymous_config()),
            status if status.is_success() => {
                let text = response.text().await.map_err(remote)?;
                let jwks: tessera::Jwks = serde_json::from_str(&text)
                    .map_err(|_| EngineError::Corrupt("anonymous JWKS is not valid"))?;
                AnonymousSessions::from_jwks(remote_anonymous_config(), &jwks)?
            }
            status => return Err(remote(format!("anonymous JWKS: HTTP {status}"))),
        };
        Ok((access, anonymous))
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
        "UNAUTHORISED" if message == UnauthorisedReason::DeviceBound.to_string() => {
            SessionError::Unauthorised(UnauthorisedReason::DeviceBound)
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
            reason: v["recentTokenReuseSubtype"]
                .as_str()
                .and_then(tessera::TheftReason::parse)
                .unwrap_or(tessera::TheftReason::StaleLineage),
        },
        other => remote(format!("unexpected status {other:?}")),
    }
}

impl RemoteCore {
    /// `POST /<tenant>/recipe/session`. The Tessera extension fields (`anonymousId`, A15;
    /// `device`, issue 15) are sent only when set, so any SuperTokens core accepts the rest.
    async fn create(
        &self,
        new: NewSession,
        device: Option<tessera::DeviceInfo>,
    ) -> Result<SessionTokens, SessionError> {
        let mut body = json!({
            "userId": new.user_id,
            "userDataInJWT": new.access_token_payload,
            "userDataInDatabase": new.session_data,
            "useDynamicSigningKey": !new.use_static_key,
            "enableAntiCsrf": new.enable_anti_csrf,
        });
        if let Value::Object(map) = &mut body {
            if let Some(id) = &new.anonymous_id {
                map.insert("anonymousId".into(), Value::String(id.clone()));
            }
            if let Some(device) = device {
                map.insert(
                    "device".into(),
                    json!({"userAgent": device.user_agent, "ip": device.ip}),
                );
            }
        }
        let tenant = tenant_segment(&new.tenant_id)?;
        let v = self
            .post(&format!("/{tenant}/recipe/session"), body)
            .await?;
        match status_of(&v) {
            "OK" => tokens(&v),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist)),
        }
    }
}

/// A binding as the DBSC extension endpoints answer it.
fn dbsc_binding(v: &Value) -> Result<DbscBinding, SessionError> {
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                SessionError::Engine(EngineError::Remote(format!(
                    "the core answered a device binding without {k}"
                )))
            })
    };
    Ok(DbscBinding {
        app_id: String::new(),
        tenant_id: text("tenantId")?,
        session_handle: text("sessionHandle")?,
        dbsc_session_id: text("sessionIdentifier")?,
        jwk_thumbprint: text("thumbprint")?,
        public_jwk: text("jwk")?,
        algorithm: text("algorithm")?,
        bound_at: v.get("boundAt").and_then(Value::as_u64).unwrap_or_default(),
    })
}

/// Maps a DBSC extension refusal.
fn dbsc_refusal(v: &Value) -> DbscError {
    let reason = v.get("reason").and_then(Value::as_str).unwrap_or_default();
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match status_of(v) {
        "PROOF_REFUSED" => {
            DbscError::Proof(ProofRejection::from_code(reason).unwrap_or(ProofRejection::Malformed))
        }
        "CHALLENGE_REFUSED" => DbscError::Challenge(
            ChallengeRejection::from_code(reason).unwrap_or(ChallengeRejection::Invalid),
        ),
        "CHALLENGE" => DbscError::NeedsChallenge {
            challenge: text("challenge"),
            dbsc_session_id: text("sessionIdentifier"),
        },
        "NOT_BOUND" => DbscError::NotBound,
        "ALREADY_BOUND" => DbscError::AlreadyBound,
        "SESSION_GONE" => DbscError::SessionGone,
        _ => DbscError::Session(not_ok(v, UnauthorisedReason::SessionMissingOrExpired)),
    }
}

#[async_trait]
impl SessionCore for RemoteCore {
    async fn create_session(&self, new: NewSession) -> Result<SessionTokens, SessionError> {
        self.create(new, None).await
    }

    async fn verify_session(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Result<VerifiedSession, SessionError> {
        self.ensure_keys().await?;
        let claims = match self.verify_locally(access_token) {
            Err(TryRefreshReason::KeyNotFound) => {
                self.keys.refresh(&self.clock, Refetch::UnknownKid).await?;
                self.verify_locally(access_token)
            }
            other => other,
        }
        .map_err(SessionError::TryRefreshToken)?;
        if check_session(&claims, options)? == SessionCheck::TokenSuffices {
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
    ) -> Option<Result<Verified, SessionError>> {
        let now = self.clock.now_ms();
        if options.check_database || !self.keys.usable(now) {
            // Rule 3 of `check_session` before the token: this path never asks the core.
            return None;
        }
        if self.keys.due(now) {
            // The held set keeps serving while a fresh one is fetched (SEC2-L7).
            self.keys.refresh_in_background(&self.clock);
        }
        let claims = match self.verify_locally(access_token) {
            Err(TryRefreshReason::KeyNotFound) => return None,
            Err(reason) => return Some(Err(SessionError::TryRefreshToken(reason))),
            Ok(claims) => claims,
        };
        match check_session(&claims, options) {
            Ok(SessionCheck::TokenSuffices) => Some(Ok(Verified::Cached(claims))),
            Ok(SessionCheck::NeedsRow) => None,
            Err(e) => Some(Err(e)),
        }
    }

    async fn refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, SessionError> {
        self.refresh_session_or_anonymous_id(refresh_token, options)
            .await
            .map_err(|f| f.error)
    }

    async fn refresh_session_or_anonymous_id(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, RefreshFailure> {
        let failure = |error| RefreshFailure {
            error,
            anonymous_id: None,
        };
        let mut body = json!({
            "refreshToken": refresh_token,
            "enableAntiCsrf": options.enable_anti_csrf,
            "useDynamicSigningKey": !options.use_static_key.unwrap_or(false),
        });
        if let Some(token) = options.anti_csrf_token {
            body["antiCsrfToken"] = Value::String(token.to_owned());
        }
        let v = self
            .post("/recipe/session/refresh", body)
            .await
            .map_err(failure)?;
        if status_of(&v) == "OK" {
            return tokens(&v).map_err(failure);
        }
        let error = not_ok(&v, UnauthorisedReason::SessionMissingOrExpired);
        // Tessera extension: the id the refresh token carries (SEC2-H2).
        let anonymous_id = ends_session(&error)
            .then(|| v.get("anonymousId").and_then(Value::as_str))
            .flatten()
            .filter(|id| plausible_anonymous_id(id))
            .map(str::to_owned);
        Err(RefreshFailure {
            error,
            anonymous_id,
        })
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
            Some(t) => (
                format!("/{}/recipe/session/remove", tenant_segment(t)?),
                false,
            ),
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

    async fn create_session_on_device(
        &self,
        new: NewSession,
        device: tessera::DeviceInfo,
    ) -> Result<SessionTokens, SessionError> {
        let device = (device != tessera::DeviceInfo::default()).then_some(device);
        self.create(new, device).await
    }

    async fn list_devices(
        &self,
        user_id: &str,
        current: Option<&str>,
        page: tessera::DevicePage,
    ) -> Result<Vec<tessera::Device>, SessionError> {
        let (limit, offset) = (page.limit.to_string(), page.offset.to_string());
        let mut query = vec![("userId", user_id), ("limit", &limit), ("offset", &offset)];
        if let Some(current) = current {
            query.push(("currentSessionHandle", current));
        }
        let v = self.get("/recipe/session/devices", &query).await?;
        if status_of(&v) != "OK" {
            return Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist));
        }
        serde_json::from_value(v["devices"].clone()).map_err(|_| {
            SessionError::Engine(tessera::EngineError::Remote(
                "the core answered devices in an unknown form".into(),
            ))
        })
    }

    async fn dbsc_challenge(&self, tenant_id: &str, handle: &str) -> Result<String, SessionError> {
        let v = self
            .post(
                "/recipe/session/dbsc/challenge",
                json!({"tenantId": tenant_id, "sessionHandle": handle}),
            )
            .await?;
        match (status_of(&v), v.get("challenge").and_then(Value::as_str)) {
            ("OK", Some(c)) => Ok(c.to_owned()),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist)),
        }
    }

    async fn dbsc_register(
        &self,
        tenant_id: &str,
        handle: &str,
        proof: &str,
    ) -> Result<DbscBinding, DbscError> {
        let v = self
            .post(
                "/recipe/session/dbsc/bind",
                json!({"tenantId": tenant_id, "sessionHandle": handle, "proof": proof}),
            )
            .await?;
        match status_of(&v) {
            "OK" => Ok(dbsc_binding(&v["binding"])?),
            _ => Err(dbsc_refusal(&v)),
        }
    }

    async fn dbsc_register_guest(
        &self,
        anonymous_id: &str,
        proof: &str,
        expires_at: u64,
    ) -> Result<DbscBinding, DbscError> {
        let v = self
            .post(
                "/recipe/session/dbsc/bind-guest",
                json!({"anonymousId": anonymous_id, "proof": proof, "expiresAt": expires_at}),
            )
            .await?;
        match status_of(&v) {
            "OK" => Ok(dbsc_binding(&v["binding"])?),
            _ => Err(dbsc_refusal(&v)),
        }
    }

    async fn dbsc_carry_guest(
        &self,
        anonymous_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<DbscBinding>, SessionError> {
        let v = self
            .post(
                "/recipe/session/dbsc/carry-guest",
                json!({"anonymousId": anonymous_id, "tenantId": tenant_id, "sessionHandle": handle}),
            )
            .await?;
        match (status_of(&v), v.get("binding")) {
            ("OK", Some(Value::Null) | None) => Ok(None),
            ("OK", Some(b)) => Ok(Some(dbsc_binding(b)?)),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist)),
        }
    }

    async fn dbsc_refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
        proof: Option<&str>,
    ) -> Result<(SessionTokens, DbscBinding), DbscError> {
        let mut body = json!({
            "refreshToken": refresh_token,
            "useDynamicSigningKey": !options.use_static_key.unwrap_or(false),
        });
        if let Some(proof) = proof {
            body["proof"] = Value::String(proof.to_owned());
        }
        let v = self.post("/recipe/session/dbsc/refresh", body).await?;
        match status_of(&v) {
            "OK" => Ok((tokens(&v)?, dbsc_binding(&v["binding"])?)),
            _ => Err(dbsc_refusal(&v)),
        }
    }

    async fn revoke_device(&self, user_id: &str, handle: &str) -> Result<bool, SessionError> {
        let v = self
            .post(
                "/recipe/session/devices/revoke",
                json!({"userId": user_id, "sessionHandle": handle}),
            )
            .await?;
        Ok(status_of(&v) == "OK")
    }

    async fn revoke_other_devices(
        &self,
        current_handle: &str,
    ) -> Result<Vec<String>, SessionError> {
        let v = self
            .post(
                "/recipe/session/devices/revoke-others",
                json!({"sessionHandle": current_handle}),
            )
            .await?;
        match status_of(&v) {
            "OK" => Ok(strings(&v["sessionHandlesRevoked"])),
            _ => Err(not_ok(&v, UnauthorisedReason::SessionDoesNotExist)),
        }
    }

    async fn session_handles_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        let (path, across) = match tenant_id {
            Some(t) => (
                format!("/{}/recipe/session/user", tenant_segment(t)?),
                "false",
            ),
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
        self.keys
            .anonymous
            .load()
            .verify(token, self.clock.now_ms())
    }

    fn readable_anonymous_id(&self, token: &str) -> Option<String> {
        self.keys
            .anonymous
            .load()
            .readable_anonymous_id(token, self.clock.now_ms())
    }

    async fn mint_anonymous(
        &self,
        request: MintAnonymous,
    ) -> Result<MintedAnonymous, SessionError> {
        let tenant = tenant_segment(request.tenant_id.as_deref().unwrap_or(tessera::PUBLIC))?;
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
        let verified = match self.keys.anonymous.load().verify(&token, now) {
            Ok(v) => v,
            Err(_) => {
                self.keys.refresh(&self.clock, Refetch::UnknownKid).await?;
                self.keys
                    .anonymous
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
        let before = self.keys.anonymous_kids();
        let refreshed = self.keys.refresh(&self.clock, Refetch::UnknownKid).await;
        refreshed.is_ok() && self.keys.anonymous_kids() != before
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
