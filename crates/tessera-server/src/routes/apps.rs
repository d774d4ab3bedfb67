//! Apps: `PUT /recipe/multitenancy/app/v2` creates an app or updates its core config;
//! `POST /recipe/multitenancy/app/remove` removes one.

use super::Ctx;
use crate::audit::{AuditKind, Record};
use crate::error::{json_ok, ApiError};
use axum::response::Response;
use serde_json::json;
use tessera::PUBLIC;

/// Longest app id (the core's column width).
const MAX_APP_ID_LEN: usize = 64;

/// `PUT /recipe/multitenancy/app/v2 {appId, coreConfig?}` → `{status:"OK", createdNew}`.
/// Only the public app may create apps.
pub(super) async fn create_or_update(ctx: &Ctx) -> Result<Response, ApiError> {
    if ctx.app_id != PUBLIC {
        return Err(ApiError::Forbidden(
            "Only the public appId can create or update apps".into(),
        ));
    }
    let input = ctx.json()?;
    let app_id = input.string("appId")?.trim().to_ascii_lowercase();
    if app_id.is_empty()
        || app_id.len() > MAX_APP_ID_LEN
        || !app_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::BadRequest(
            "appId can only contain letters, numbers and hyphens".into(),
        ));
    }
    if app_id.starts_with("appid-") {
        return Err(ApiError::BadRequest(
            "appId must not start with 'appid-'".into(),
        ));
    }
    let core_config = input.opt_object("coreConfig")?;
    let created = ctx
        .state
        .registry
        .create_or_update(&app_id, core_config.as_ref())
        .await?;
    if created {
        ctx.state
            .audit
            .record(Record::new(AuditKind::AppCreated).app(&app_id));
    }
    Ok(json_ok(&json!({"status": "OK", "createdNew": created})))
}

/// `POST /recipe/multitenancy/app/remove {appId}` → `{status:"OK", didExist}`.
pub(super) async fn remove(ctx: &Ctx) -> Result<Response, ApiError> {
    if ctx.app_id != PUBLIC {
        return Err(ApiError::Forbidden(
            "Only the public appId can remove apps".into(),
        ));
    }
    let input = ctx.json()?;
    let app_id = input.string("appId")?.trim().to_ascii_lowercase();
    if app_id == PUBLIC {
        return Err(ApiError::Forbidden("Cannot delete public app".into()));
    }
    let existed = ctx.state.registry.remove(&app_id).await?;
    if existed {
        ctx.state
            .audit
            .record(Record::new(AuditKind::AppRemoved).app(&app_id));
    }
    Ok(json_ok(&json!({"status": "OK", "didExist": existed})))
}
