//! Tessera extension endpoints for Device Bound Session Credentials (issue 14), so an SDK on
//! a remote core (`RemoteCore`) can bind sessions: the binding lives with the session in the
//! core's database. API key, `cdi-version` and tenant rules apply as for every core API.
//! `tenantId` in a body defaults to the path's tenant. See `docs/dbsc.md`.
//!
//! - `POST /recipe/session/dbsc/challenge` `{sessionHandle, tenantId?}` or `{anonymousId}`:
//!   `{status: OK, challenge}` (stateless; valid 5 minutes, once).
//! - `POST /recipe/session/dbsc/bind` `{sessionHandle, tenantId?, proof}`: verifies the
//!   `dbsc+jwt` registration proof and binds its key: `{status: OK, binding}`.
//! - `POST /recipe/session/dbsc/bind-guest` `{anonymousId, proof, expiresAt}`.
//! - `POST /recipe/session/dbsc/carry-guest` `{anonymousId, sessionHandle, tenantId?}`:
//!   `{status: OK, binding}` (`binding` null when the guest was not bound).
//! - `GET /recipe/session/dbsc/get?sessionHandle=&tenantId=`: `{status: OK, binding}`.
//! - `POST /recipe/session/dbsc/refresh` `{refreshToken, useDynamicSigningKey?, proof?}`: the
//!   refresh of `/recipe/session/refresh` behind the proof: `OK` with the tokens and
//!   `binding`; `CHALLENGE` `{challenge, sessionIdentifier}` when no proof was sent.
//!
//! Refusals are `{status, reason}` with status `PROOF_REFUSED`, `CHALLENGE_REFUSED`
//! (reason: a stable code), `ALREADY_BOUND`, `NOT_BOUND` or `SESSION_GONE`; session outcomes
//! (`UNAUTHORISED`, `TOKEN_THEFT_DETECTED`) as the refresh API answers them.

use super::Ctx;
use crate::error::{json_ok, session_error, ApiError};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tessera::{DbscBinding, DbscError, RefreshOptions};

fn binding_json(b: &DbscBinding) -> Value {
    json!({
        "tenantId": b.tenant_id,
        "sessionHandle": b.session_handle,
        "sessionIdentifier": b.dbsc_session_id,
        "thumbprint": b.jwk_thumbprint,
        "jwk": b.public_jwk,
        "algorithm": b.algorithm,
        "boundAt": b.bound_at,
    })
}

fn refused(e: DbscError) -> Response {
    match e {
        DbscError::Proof(r) => json_ok(&json!({"status": "PROOF_REFUSED", "reason": r.code()})),
        DbscError::Challenge(r) => {
            json_ok(&json!({"status": "CHALLENGE_REFUSED", "reason": r.code()}))
        }
        DbscError::NeedsChallenge {
            challenge,
            dbsc_session_id,
        } => json_ok(&json!({
            "status": "CHALLENGE",
            "challenge": challenge,
            "sessionIdentifier": dbsc_session_id,
        })),
        DbscError::NotBound => json_ok(&json!({"status": "NOT_BOUND"})),
        DbscError::AlreadyBound => json_ok(&json!({"status": "ALREADY_BOUND"})),
        DbscError::SessionGone => json_ok(&json!({"status": "SESSION_GONE"})),
        DbscError::Session(e) => session_error(e),
        other => {
            tracing::error!(error = %other, "device-bound operation failed");
            ApiError::Internal.into_response()
        }
    }
}

fn tenant(ctx: &Ctx, input: &crate::input::JsonInput) -> Result<String, ApiError> {
    Ok(input
        .opt_string("tenantId")?
        .unwrap_or_else(|| ctx.tenant_id.clone()))
}

/// `POST /recipe/session/dbsc/challenge`.
pub(super) async fn challenge(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let engine = &ctx.app.engine;
    let challenge = match input.opt_string("anonymousId")? {
        Some(id) => engine.dbsc_guest_challenge(&id),
        None => engine.dbsc_challenge(&tenant(ctx, &input)?, &input.string("sessionHandle")?),
    };
    Ok(match challenge {
        Ok(c) => json_ok(&json!({"status": "OK", "challenge": c})),
        Err(e) => session_error(e.into()),
    })
}

/// `POST /recipe/session/dbsc/bind`.
pub(super) async fn bind(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let (tenant, handle) = (tenant(ctx, &input)?, input.string("sessionHandle")?);
    let proof = input.string("proof")?;
    Ok(
        match ctx.app.engine.dbsc_register(&tenant, &handle, &proof).await {
            Ok(b) => json_ok(&json!({"status": "OK", "binding": binding_json(&b)})),
            Err(e) => refused(e),
        },
    )
}

/// `POST /recipe/session/dbsc/bind-guest`.
pub(super) async fn bind_guest(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let id = input.string("anonymousId")?;
    let proof = input.string("proof")?;
    let expires_at = u64::try_from(input.long("expiresAt")?).map_err(|_| {
        ApiError::BadRequest("Field name 'expiresAt' is invalid in JSON input".into())
    })?;
    Ok(
        match ctx
            .app
            .engine
            .dbsc_register_guest(&id, &proof, expires_at)
            .await
        {
            Ok(b) => json_ok(&json!({"status": "OK", "binding": binding_json(&b)})),
            Err(e) => refused(e),
        },
    )
}

/// `POST /recipe/session/dbsc/carry-guest`.
pub(super) async fn carry_guest(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let id = input.string("anonymousId")?;
    let (tenant, handle) = (tenant(ctx, &input)?, input.string("sessionHandle")?);
    Ok(
        match ctx.app.engine.dbsc_carry_guest(&id, &tenant, &handle).await {
            Ok(b) => json_ok(&json!({"status": "OK", "binding": b.as_ref().map(binding_json)})),
            Err(e) => session_error(e.into()),
        },
    )
}

/// `GET /recipe/session/dbsc/get`.
pub(super) async fn get(ctx: &Ctx) -> Result<Response, ApiError> {
    let handle = ctx.query.required("sessionHandle")?;
    let tenant = ctx.query.opt("tenantId").unwrap_or(&ctx.tenant_id);
    Ok(match ctx.app.engine.dbsc_binding(tenant, handle).await {
        Ok(b) => json_ok(&json!({"status": "OK", "binding": b.as_ref().map(binding_json)})),
        Err(e) => session_error(e.into()),
    })
}

/// `POST /recipe/session/dbsc/refresh`.
pub(super) async fn refresh(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let refresh_token = input.string("refreshToken")?;
    let proof = input.opt_string("proof")?;
    let use_dynamic = input.opt_bool("useDynamicSigningKey")?;
    let options = RefreshOptions {
        anti_csrf_token: None,
        enable_anti_csrf: false,
        use_static_key: use_dynamic.map(|d| !d),
    };
    Ok(
        match ctx
            .app
            .engine
            .dbsc_refresh_session(&refresh_token, options, proof.as_deref())
            .await
        {
            Ok((t, b)) => {
                let mut body = super::session::tokens_body(&t);
                body["binding"] = binding_json(&b);
                json_ok(&body)
            }
            Err(e) => refused(e),
        },
    )
}
