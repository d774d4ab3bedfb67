//! Tessera extension endpoints (issue 15): a user's sessions with their devices, revoking one
//! of them, and signing out everywhere else. SuperTokens SDKs do not call these; apps call
//! them over HTTP like any core API (API key, `cdi-version` and tenant rules apply).
//!
//! - `GET /recipe/session/devices?userId=&currentSessionHandle=&limit=&offset=`: the user's
//!   live sessions in every tenant of the app, most recently active first, at most 100 per
//!   page (`limit` default 50); `nextOffset` is set while more may follow.
//! - `POST /recipe/session/devices/revoke` `{userId, sessionHandle}`: `OK` when that session
//!   of that user was revoked; `NOT_FOUND` for anything else, a handle of another user too.
//! - `POST /recipe/session/devices/revoke-others` `{sessionHandle}`: revokes every other
//!   session of that session's user; `UNAUTHORISED` when the session itself is gone.

use super::Ctx;
use crate::error::{json_ok, session_error, ApiError};
use axum::response::Response;
use serde_json::json;
use tessera::{DevicePage, MAX_PAGE};

/// A numeric query parameter, or the 400 naming it.
fn number(ctx: &Ctx, field: &str, default: u32) -> Result<u32, ApiError> {
    match ctx.query.opt(field) {
        None => Ok(default),
        Some(text) => text.parse::<u32>().map_err(|_| {
            ApiError::BadRequest(format!("Field name '{field}' is invalid in GET request"))
        }),
    }
}

/// `GET /recipe/session/devices`.
pub(super) async fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let user_id = ctx.query.required("userId")?;
    let current = ctx.query.opt("currentSessionHandle");
    let limit = number(ctx, "limit", 50)?;
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "Field name 'limit' must be between 1 and {MAX_PAGE}"
        )));
    }
    let offset = number(ctx, "offset", 0)?;
    let page = DevicePage { limit, offset };
    Ok(
        match ctx.app.engine.list_devices(user_id, current, page).await {
            Ok(devices) => {
                let next = (devices.len() == limit as usize).then(|| offset.saturating_add(limit));
                json_ok(&json!({"status": "OK", "devices": devices, "nextOffset": next}))
            }
            Err(e) => session_error(e),
        },
    )
}

/// `POST /recipe/session/devices/revoke`.
pub(super) async fn revoke(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let user_id = input.string("userId")?;
    let handle = input.string("sessionHandle")?;
    Ok(
        match ctx.app.engine.revoke_device(&user_id, &handle).await {
            Ok(true) => json_ok(&json!({"status": "OK"})),
            Ok(false) => json_ok(&json!({"status": "NOT_FOUND"})),
            Err(e) => session_error(e),
        },
    )
}

/// `POST /recipe/session/devices/revoke-others`.
pub(super) async fn revoke_others(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let handle = input.string("sessionHandle")?;
    Ok(match ctx.app.engine.revoke_other_devices(&handle).await {
        Ok(handles) => json_ok(&json!({"status": "OK", "sessionHandlesRevoked": handles})),
        Err(e) => session_error(e),
    })
}
