//! Session errors as HTTP responses: try-refresh (401), unauthorised (401), token theft (401),
//! invalid claims (403), with the exact bodies the browser SDK expects. Clearing cookies and
//! headers is scheduled when the error is raised, so it happens even when the app overrides
//! the response.

use crate::claims::ClaimError;
use crate::Tessera;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

/// What went wrong.
#[derive(Debug, Clone, PartialEq)]
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
/// with [`Tessera::with_error_handler`].
#[derive(Clone)]
pub struct SessionRejection {
    pub(crate) kind: RejectionKind,
    pub(crate) tessera: Option<Tessera>,
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
    pub(crate) fn new(tessera: &Tessera, kind: RejectionKind) -> Self {
        Self {
            kind,
            tessera: Some(tessera.clone()),
        }
    }

    /// The invalid-claims rejection (403 `{"message":"invalid claim","claimValidationErrors":…}`
    /// by default) for claim checks a handler runs itself, e.g. validators that apply to one
    /// route only. The status and any error handler come from `tessera`.
    ///
    /// ```
    /// use tessera_axum::{ClaimError, RejectionKind, SessionRejection, Tessera};
    /// # fn demo(tessera: &Tessera) {
    /// let errors = vec![ClaimError { id: "is-admin".into(), reason: None }];
    /// let rejection = SessionRejection::invalid_claims(tessera, errors);
    /// assert!(matches!(rejection.kind(), RejectionKind::InvalidClaims(_)));
    /// # }
    /// ```
    pub fn invalid_claims(tessera: &Tessera, errors: Vec<ClaimError>) -> Self {
        Self::new(tessera, RejectionKind::InvalidClaims(errors))
    }

    /// What went wrong.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// The protocol's default response for this rejection.
    pub fn default_response(&self) -> Response {
        let (expired, invalid) = self
            .tessera
            .as_ref()
            .map(|t| {
                (
                    t.config().session_expired_status,
                    t.config().invalid_claim_status,
                )
            })
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
        if let Some(handler) = self.tessera.as_ref().and_then(|t| t.error_handler()) {
            if let Some(response) = handler(&self) {
                return response;
            }
        }
        self.default_response()
    }
}
