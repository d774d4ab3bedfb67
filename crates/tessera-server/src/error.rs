//! HTTP answers for failures: 4xx text bodies with the core's messages, business outcomes of
//! the session engine as HTTP 200 with a `status`, and a generic 500 that reveals nothing.
//!
//! Text bodies are `text/plain` with `X-Content-Type-Options: nosniff` (the Java core says
//! `text/html`; SDKs read any `text/*` as text), and never repeat a value the caller sent,
//! beyond ids already checked against `[a-z0-9-]` and the digits of a `cdi-version`
//! (SEC2-INFO).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tessera::SessionError;

/// `Content-Type` of JSON answers.
pub const JSON_TYPE: &str = "application/json; charset=UTF-8";
/// `Content-Type` of text answers.
pub const TEXT_TYPE: &str = "text/plain; charset=UTF-8";

/// A request that ends in a non-200 answer.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with the given text.
    BadRequest(String),
    /// 401 `Invalid API key`.
    InvalidApiKey,
    /// 403 with the given text.
    Forbidden(String),
    /// 404 `Not found`.
    NotFound,
    /// 405 `Method not supported`.
    MethodNotAllowed,
    /// 408: the request (headers to answer, body included) took longer than allowed.
    RequestTimeout,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: a JSON API got a body that does not say `application/json`.
    UnsupportedMediaType,
    /// 500 with a generic text; the cause is logged, not sent.
    Internal,
}

/// A text response with the core's content type.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = (status, body.into()).into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_TYPE));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A 200 JSON response with the core's content type.
pub fn json_ok(body: &Value) -> Response {
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(m) => text(StatusCode::BAD_REQUEST, m),
            ApiError::InvalidApiKey => text(StatusCode::UNAUTHORIZED, "Invalid API key"),
            ApiError::Forbidden(m) => text(StatusCode::FORBIDDEN, m),
            ApiError::NotFound => text(StatusCode::NOT_FOUND, "Not found"),
            ApiError::MethodNotAllowed => {
                text(StatusCode::METHOD_NOT_ALLOWED, "Method not supported")
            }
            ApiError::RequestTimeout => text(StatusCode::REQUEST_TIMEOUT, "Request timed out"),
            ApiError::PayloadTooLarge => {
                text(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
            }
            ApiError::UnsupportedMediaType => text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ),
            ApiError::Internal => text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Error"),
        }
    }
}

/// The answer for a session operation that did not succeed: business outcomes are 200 with a
/// `status`, input errors 400, engine failures 500 (logged without details in the body).
pub fn session_error(e: SessionError) -> Response {
    match outcome(e) {
        Ok(body) => json_ok(&body),
        Err(e) => e.into_response(),
    }
}

/// [`session_error`] with more fields in a business outcome's body; input and engine errors
/// are answered as usual.
pub fn session_error_with(e: SessionError, fields: Vec<(&str, Value)>) -> Response {
    match outcome(e) {
        Ok(mut body) => {
            for (field, value) in fields {
                body[field] = value;
            }
            json_ok(&body)
        }
        Err(e) => e.into_response(),
    }
}

/// The JSON body of a business outcome, or the error answer of anything else.
fn outcome(e: SessionError) -> Result<Value, ApiError> {
    match e {
        SessionError::TryRefreshToken(reason) => Ok(json!({
            "status": "TRY_REFRESH_TOKEN",
            "message": reason.to_string(),
        })),
        SessionError::Unauthorised(reason) => Ok(json!({
            "status": "UNAUTHORISED",
            "message": reason.to_string(),
        })),
        SessionError::TokenTheft {
            session_handle,
            user_id,
            recipe_user_id,
            ..
        } => Ok(json!({
            "status": "TOKEN_THEFT_DETECTED",
            "session": {
                "handle": session_handle,
                "userId": user_id,
                "recipeUserId": recipe_user_id,
            },
        })),
        SessionError::InvalidInput(reason) => Err(ApiError::BadRequest(reason.to_string())),
        // Storage failed (or an error this server does not know yet).
        cause => {
            tracing::error!(error = %cause, "session operation failed");
            Err(ApiError::Internal)
        }
    }
}

impl From<tessera::EngineError> for ApiError {
    fn from(cause: tessera::EngineError) -> Self {
        tracing::error!(error = %cause, "engine failure");
        ApiError::Internal
    }
}

impl From<tessera::StoreError> for ApiError {
    fn from(cause: tessera::StoreError) -> Self {
        tracing::error!(error = %cause, "storage failure");
        ApiError::Internal
    }
}
