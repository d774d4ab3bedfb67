//! What session operations take and return.

use serde::Serialize;
use serde_json::{Map, Value};

/// The default app and tenant id.
pub const PUBLIC: &str = "public";

/// A token with its times, as the core API reports them (epoch ms).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The token.
    pub token: String,
    /// Expiry, epoch ms (whole seconds for access tokens).
    pub expiry: u64,
    /// Creation, epoch ms (whole seconds for access tokens).
    pub created_time: u64,
}

impl std::fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are never printed whole.
        let head: String = self.token.chars().take(8).collect();
        f.debug_struct("TokenInfo")
            .field("token", &format_args!("{head}…"))
            .field("expiry", &self.expiry)
            .field("created_time", &self.created_time)
            .finish()
    }
}

/// The session object of the core API: `{handle, userId, recipeUserId, userDataInJWT, tenantId}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// Session handle.
    pub handle: String,
    /// Primary user id.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// Recipe user id.
    #[serde(rename = "recipeUserId")]
    pub recipe_user_id: String,
    /// Custom access-token claims.
    #[serde(rename = "userDataInJWT")]
    pub user_data_in_jwt: Map<String, Value>,
    /// Tenant id.
    #[serde(rename = "tenantId")]
    pub tenant_id: String,
}

/// Input to [`crate::SessionEngine::create_session`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// Tenant id (`public` by default).
    pub tenant_id: String,
    /// The user.
    pub user_id: String,
    /// Custom access-token claims; must not name a protected claim.
    pub access_token_payload: Map<String, Value>,
    /// Server-side session data.
    pub session_data: Value,
    /// Mint an anti-CSRF token (VIA_TOKEN mode).
    pub enable_anti_csrf: bool,
    /// Sign with the static key instead of the rotating dynamic keys.
    pub use_static_key: bool,
    /// The visitor's permanent anonymousId, carried into the access token as a protected
    /// claim (A6, A8, A15). The app cannot set or change it through the payload.
    pub anonymous_id: Option<String>,
}

impl NewSession {
    /// A session for `user_id` in the public tenant with empty payload and data.
    ///
    /// ```
    /// let s = tessera::NewSession::for_user("user-1");
    /// assert_eq!(s.tenant_id, "public");
    /// ```
    pub fn for_user(user_id: impl Into<String>) -> Self {
        Self {
            tenant_id: PUBLIC.into(),
            user_id: user_id.into(),
            access_token_payload: Map::new(),
            session_data: Value::Object(Map::new()),
            enable_anti_csrf: false,
            use_static_key: false,
            anonymous_id: None,
        }
    }
}

/// A created or refreshed session: the tokens to hand to the client. `Debug` shows the
/// tokens only as [`TokenInfo`] does and never the anti-CSRF token.
#[derive(Clone, PartialEq)]
pub struct SessionTokens {
    /// The session.
    pub session: SessionSummary,
    /// The new access token.
    pub access_token: TokenInfo,
    /// The new refresh token.
    pub refresh_token: TokenInfo,
    /// The anti-CSRF token, when enabled.
    pub anti_csrf_token: Option<String>,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("session", &self.session)
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field(
                "anti_csrf_token",
                &self.anti_csrf_token.as_ref().map(|_| ".."),
            )
            .finish()
    }
}

/// Options of [`crate::SessionEngine::verify_session`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// Read the session row: a revoked session is then rejected at once, and payload updates
    /// made by handle show up as a new access token.
    pub check_database: bool,
    /// Run the anti-CSRF check (the core's `enableAntiCsrf && doAntiCsrfCheck`).
    pub anti_csrf_check: bool,
    /// The anti-CSRF token the request carried.
    pub anti_csrf_token: Option<&'a str>,
}

/// A verified session. `Debug` never prints the anti-CSRF token.
#[derive(Clone, PartialEq)]
pub struct VerifiedSession {
    /// The session.
    pub session: SessionSummary,
    /// A replacement access token, when one was minted (promotion, payload change).
    pub access_token: Option<TokenInfo>,
    /// The anti-CSRF token of the session's access token, if any.
    pub anti_csrf_token: Option<String>,
    /// Expiry of the access token the client now holds, epoch ms.
    pub access_token_expiry: u64,
}

impl std::fmt::Debug for VerifiedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedSession")
            .field("session", &self.session)
            .field("access_token", &self.access_token)
            .field(
                "anti_csrf_token",
                &self.anti_csrf_token.as_ref().map(|_| ".."),
            )
            .field("access_token_expiry", &self.access_token_expiry)
            .finish()
    }
}

impl VerifiedSession {
    /// The session as a verified access token describes it.
    pub fn from_claims(claims: crate::AccessTokenClaims, access_token: Option<TokenInfo>) -> Self {
        Self {
            access_token_expiry: claims.exp.saturating_mul(1000),
            anti_csrf_token: claims.anti_csrf_token,
            session: SessionSummary {
                handle: claims.session_handle,
                user_id: claims.sub,
                recipe_user_id: claims.rsub,
                user_data_in_jwt: claims.user_claims,
                tenant_id: claims.tenant_id,
            },
            access_token,
        }
    }
}

/// Options of [`crate::SessionEngine::refresh_session`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RefreshOptions<'a> {
    /// The anti-CSRF token sent with the request.
    pub anti_csrf_token: Option<&'a str>,
    /// Anti-CSRF (VIA_TOKEN) is enabled: check the token and mint a new one.
    pub enable_anti_csrf: bool,
    /// Switch the session's key type; `None` keeps the stored one.
    pub use_static_key: Option<bool>,
}

/// Result of [`crate::SessionEngine::regenerate_access_token`].
#[derive(Debug, Clone, PartialEq)]
pub struct Regenerated {
    /// The session with its new payload.
    pub session: SessionSummary,
    /// The re-issued access token; `None` when the presented one had expired.
    pub access_token: Option<TokenInfo>,
}

/// A session row as the core API's `GET /recipe/session` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// Session handle.
    pub session_handle: String,
    /// Primary user id.
    pub user_id: String,
    /// Recipe user id.
    pub recipe_user_id: String,
    /// Session data.
    pub session_data: Value,
    /// Custom access-token claims.
    pub access_token_payload: Map<String, Value>,
    /// Session expiry, epoch ms.
    pub expiry: u64,
    /// Creation, epoch ms.
    pub time_created: u64,
    /// Tenant id.
    pub tenant_id: String,
}

/// The tenant a session handle belongs to: the suffix after `_`, or `public`.
///
/// ```
/// assert_eq!(tessera::tenant_of_handle("0b1e-…_acme"), "acme");
/// assert_eq!(tessera::tenant_of_handle("0b1e-…"), "public");
/// ```
pub fn tenant_of_handle(handle: &str) -> &str {
    match handle.split_once('_') {
        Some((_, tenant)) if !tenant.is_empty() => tenant,
        _ => PUBLIC,
    }
}

/// Longest session handle accepted (the core's column width).
const MAX_HANDLE_LEN: usize = 255;

/// True when `handle` could name a stored session: 1 to 255 bytes, no NUL (PostgreSQL text
/// cannot hold one). Anything else is answered "does not exist" without a query.
pub(crate) fn plausible_handle(handle: &str) -> bool {
    !handle.is_empty() && handle.len() <= MAX_HANDLE_LEN && !handle.contains('\0')
}
