//! Session errors as HTTP responses: try-refresh (401), unauthorised (401), token theft (401),
//! invalid claims (403), with the exact bodies the browser SDK expects. Clearing cookies and
//! headers is scheduled when the error is raised, so it happens even when the app overrides
//! the response.

use crate::claims::ClaimError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use std::sync::Arc;

/// Overrides the response of a rejection; return `None` to keep the default.
pub type ErrorHandler = Arc<dyn Fn(&SessionRejection) -> Option<Response> + Send + Sync>;

/// How an SDK handle answers its rejections: the configured statuses and the app's handler.
#[derive(Clone)]
pub(crate) struct Answering {
    pub(crate) expired_status: u16,
    pub(crate) invalid_status: u16,
    pub(crate) handler: Option<ErrorHandler>,
}

/// What went wrong. More kinds may come: match with a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The access token is expired or invalid, or failed anti-CSRF: the client should refresh.
    TryRefreshToken,
    /// No usable session: sign in again.
    Unauthorised,
    /// A rotated-out refresh token was reused; the session was revoked.
    TokenTheft {
        /// The revoked session.
        session_handle: String,
        /// Its user.
        user_id: String,
    },
    /// Claim validators failed.
    InvalidClaims(Vec<ClaimError>),
    /// The core or store failed; nothing about the session is implied.
    Internal,
    /// The extractor was used without [`crate::SessionLayer`].
    LayerMissing,
}

/// A rejected request. Implements `IntoResponse`; the app may override the response per kind
/// with [`crate::Tessera::with_error_handler`].
#[derive(Clone)]
pub struct SessionRejection {
    pub(crate) kind: RejectionKind,
    /// `None` without an SDK handle (no layer): the protocol's defaults.
    pub(crate) answering: Option<Answering>,
}

impl std::fmt::Debug for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SessionRejection").field(&self.kind).finish()
    }
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &self.kind {
            RejectionKind::TryRefreshToken => "try refresh token",
            RejectionKind::Unauthorised => "unauthorised",
            RejectionKind::TokenTheft { .. } => "token theft detected",
            RejectionKind::InvalidClaims(_) => "invalid claim",
            RejectionKind::Internal => "internal error",
            RejectionKind::LayerMissing => "session layer missing",
        })
    }
}

impl std::error::Error for SessionRejection {}

impl SessionRejection {
    /// What went wrong.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// The protocol's default response for this rejection.
    pub fn default_response(&self) -> Response {
        let (expired, invalid) = self
            .answering
            .as_ref()
            .map(|a| (a.expired_status, a.invalid_status))
            .unwrap_or((401, 403));
        let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::UNAUTHORIZED);
        let (code, body) = match &self.kind {
            RejectionKind::TryRefreshToken => (
                status(expired),
                serde_json::json!({"message": "try refresh token"}),
            ),
            RejectionKind::Unauthorised => (
                status(expired),
                serde_json::json!({"message": "unauthorised"}),
            ),
            RejectionKind::TokenTheft { .. } => (
                status(expired),
                serde_json::json!({"message": "token theft detected"}),
            ),
            RejectionKind::InvalidClaims(errors) => (
                status(invalid),
                serde_json::json!({"message": "invalid claim", "claimValidationErrors": errors}),
            ),
            RejectionKind::Internal | RejectionKind::LayerMissing => (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"message": "internal error"}),
            ),
        };
        json_response(code, &body)
    }
}

/// A JSON response with `Content-Type: application/json; charset=utf-8`.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        if let Some(handler) = self.answering.as_ref().and_then(|a| a.handler.as_ref()) {
            if let Some(response) = handler(&self) {
                return response;
            }
        }
        self.default_response()
    }
}
