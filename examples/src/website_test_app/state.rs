//! website-test-app: the SDK instance that `/test/setup/st` swaps in, the suite's counters, and
//! small request helpers.

use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tessera_axum::{
    AntiCsrfMode, Config, RejectionKind, RemoteCore, SessionRejection, Tessera, TokenTransfer,
};

/// One initialisation of the SDK (what node's `SuperTokens.init` sets up).
pub(crate) struct Live {
    pub(crate) tessera: Tessera,
    pub(crate) core_url: String,
    pub(crate) anti_csrf: bool,
    pub(crate) jwt: bool,
}

/// The suite's counters (reset by `POST /beforeeach`).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) refresh_called: AtomicU64,
    pub(crate) refresh_attempted: AtomicU64,
    pub(crate) get_session_called: AtomicU64,
}

/// What every SDK instance is built from, fixed at start-up.
pub(crate) struct Settings {
    pub(crate) api_domain: String,
    pub(crate) website_domain: String,
    /// `TRANSFER_METHOD` (`cookie`/`header`), read once at start-up.
    pub(crate) forced_transfer: Option<TokenTransfer>,
}

impl Settings {
    /// A fresh SDK instance over the core at `core_url`, as `/test/setup/st` describes it.
    pub(crate) fn build(&self, core_url: &str, anti_csrf: bool, jwt: bool) -> Result<Live, String> {
        // The supertokens-website suite tests the SuperTokens protocol as it is: no
        // anonymous sessions.
        let mut builder = Config::builder(&self.api_domain, &self.website_domain)
            .anonymous_sessions(false)
            .anti_csrf(if anti_csrf {
                AntiCsrfMode::ViaToken
            } else {
                AntiCsrfMode::None
            })
            .expose_access_token_in_cookie_mode(jwt);
        if let Some(transfer) = self.forced_transfer {
            builder = builder.token_transfer(transfer);
        }
        let config = builder.build().map_err(|e| e.to_string())?;
        let core = RemoteCore::new(core_url, None).map_err(|e| e.to_string())?;
        let tessera = Tessera::new(config, Arc::new(core)).with_error_handler(Arc::new(
            |rejection: &SessionRejection| match rejection.kind() {
                // The suite's `onUnauthorised` override. Clearing has already been scheduled.
                RejectionKind::Unauthorised => {
                    Some(json_status(StatusCode::UNAUTHORIZED, json!({})))
                }
                _ => None,
            },
        ));
        Ok(Live {
            tessera,
            core_url: core_url.to_owned(),
            anti_csrf,
            jwt,
        })
    }
}

/// Shared by every handler.
pub(crate) struct App {
    pub(crate) settings: Settings,
    pub(crate) default_core_url: String,
    pub(crate) static_dir: PathBuf,
    pub(crate) angular_dir: Option<PathBuf>,
    pub(crate) live: ArcSwap<Live>,
    pub(crate) counters: Counters,
    pub(crate) http: reqwest::Client,
}

pub(crate) type Shared = Arc<App>;

impl App {
    /// Builds and swaps in a new SDK instance. Synchronous: the suite does not wait for
    /// `/test/setup/st` before its next request, so nothing here may await.
    pub(crate) fn reinitialise(&self, core_url: &str, anti_csrf: bool, jwt: bool) -> Response {
        match self.settings.build(core_url, anti_csrf, jwt) {
            Ok(live) => {
                self.live.store(Arc::new(live));
                StatusCode::OK.into_response()
            }
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

pub(crate) fn json_status(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A request body as a JSON object, whatever its content type (the suite's servers parse JSON
/// leniently); an empty body is `{}`.
pub(crate) struct JsonObject(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err((StatusCode::BAD_REQUEST, "expected a JSON object body").into_response()),
        }
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn bool_field(body: &Map<String, Value>, key: &str) -> bool {
    body.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Keys the suite's `/update-jwt` leaves alone (its server's `isProtectedPropName`).
pub(crate) const SUITE_PROTECTED: &[&str] = &[
    "sub",
    "iat",
    "exp",
    "sessionHandle",
    "parentRefreshTokenHash1",
    "refreshTokenHash1",
    "antiCsrfToken",
];
