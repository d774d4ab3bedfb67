//! The `/recipe/session*` family: create, verify, refresh, regenerate, read, remove, list and
//! update session data.

use super::Ctx;
use crate::error::{json_ok, session_error, session_error_with, ApiError};
use axum::response::Response;
use serde_json::{json, Value};
use tessera::{
    MintAnonymous, MintError, NewSession, RefreshOptions, SessionError, SessionTokens, TheftReason,
    UnauthorisedReason, VerifyOptions,
};

/// The CDI 5.6 `accessTokenValidity` override (ms) of create and refresh; ignored below 5.6.
fn validity_override(ctx: &Ctx, input: &crate::input::JsonInput) -> Result<Option<i64>, ApiError> {
    if ctx.cdi.at_least(5, 6) && input.has("accessTokenValidity") {
        Ok(Some(input.long("accessTokenValidity")?))
    } else {
        Ok(None)
    }
}

pub(super) fn tokens_body(t: &SessionTokens) -> Value {
    let mut body = json!({
        "status": "OK",
        "session": t.session,
        "accessToken": t.access_token,
        "refreshToken": t.refresh_token,
    });
    if let (Some(csrf), Value::Object(map)) = (&t.anti_csrf_token, &mut body) {
        map.insert("antiCsrfToken".into(), Value::String(csrf.clone()));
    }
    body
}

/// `POST /<tenant>/recipe/session`.
pub(super) async fn create(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let user_id = input.string("userId")?;
    let enable_anti_csrf = input.bool("enableAntiCsrf")?;
    let user_data_in_jwt = input.object("userDataInJWT")?;
    let user_data_in_database = input.object("userDataInDatabase")?;
    let use_dynamic = input.opt_bool("useDynamicSigningKey")?.unwrap_or(true);
    // Tessera extension: the visitor's anonymousId, carried into the access token (A15).
    let anonymous_id = input.opt_string("anonymousId")?;
    // Tessera extension (issue 15): the device the SDK saw, `{"userAgent", "ip"}`, optional.
    let device = device_of(input.opt_object("device")?)?;
    let validity = validity_override(ctx, &input)?;
    let new = NewSession {
        anonymous_id,
        tenant_id: ctx.tenant_id.clone(),
        user_id,
        access_token_payload: user_data_in_jwt,
        session_data: Value::Object(user_data_in_database),
        enable_anti_csrf,
        use_static_key: !use_dynamic,
    };
    Ok(
        match ctx
            .app
            .engine
            .create_session_on_device_with_validity(new, device, validity)
            .await
        {
            Ok(t) => json_ok(&tokens_body(&t)),
            Err(e) => session_error(e),
        },
    )
}

/// The `device` extension field of create: string `userAgent` and `ip`, both optional.
fn device_of(
    device: Option<serde_json::Map<String, Value>>,
) -> Result<tessera::DeviceInfo, ApiError> {
    let Some(device) = device else {
        return Ok(tessera::DeviceInfo::default());
    };
    let field = |name: &str| match device.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::BadRequest(format!(
            "Field name 'device.{name}' is invalid in JSON input"
        ))),
    };
    Ok(tessera::DeviceInfo {
        user_agent: field("userAgent")?,
        ip: field("ip")?,
    })
}

/// `POST /<tenant>/recipe/session/anonymous` (Tessera extension, B5): mints an anonymous token
/// with the core's anonymous key. No database access. Body: `anonymousId` (keep this visitor
/// id), `payload` (≤ 1 KiB), `enableAntiCsrf`, `antiCsrfToken` (keep this one), all optional.
pub(super) fn mint_anonymous(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let request = MintAnonymous {
        anonymous_id: input.opt_string("anonymousId")?,
        tenant_id: Some(ctx.tenant_id.clone()),
        payload: input.opt_object("payload")?.unwrap_or_default(),
        anti_csrf_token: input.opt_string("antiCsrfToken")?,
        enable_anti_csrf: input.opt_bool("enableAntiCsrf")?.unwrap_or(false),
    };
    match ctx.app.engine.mint_anonymous(request) {
        Ok(minted) => {
            let mut body = json!({
                "status": "OK",
                "anonymousId": minted.claims.anonymous_id,
                "anonymousToken": {
                    "token": minted.token,
                    "expiry": minted.claims.exp.saturating_mul(1000),
                    "createdTime": minted.claims.iat.saturating_mul(1000),
                },
            });
            if let (Some(csrf), Value::Object(map)) = (&minted.claims.anti_csrf_token, &mut body) {
                map.insert("antiCsrfToken".into(), Value::String(csrf.clone()));
            }
            Ok(json_ok(&body))
        }
        Err(MintError::InvalidPayload(message)) => Err(ApiError::BadRequest(message)),
        Err(e) => {
            tracing::error!(error = %e, "anonymous mint failed");
            Err(ApiError::Internal)
        }
    }
}

/// `POST /recipe/session/verify`.
pub(super) async fn verify(ctx: &Ctx) -> Result<Response, ApiError> {
    if ctx.cdi.at_least(5, 6) {
        ctx.require_public_tenant()?;
    }
    let input = ctx.json()?;
    let access_token = input.string("accessToken")?;
    let anti_csrf_token = input.opt_string("antiCsrfToken")?;
    let do_anti_csrf_check = input.bool("doAntiCsrfCheck")?;
    let enable_anti_csrf = input.bool("enableAntiCsrf")?;
    let check_database = input.bool("checkDatabase")?;
    let options = VerifyOptions {
        check_database,
        anti_csrf_check: do_anti_csrf_check && enable_anti_csrf,
        anti_csrf_token: anti_csrf_token.as_deref(),
    };
    if ctx.cdi.at_least(5, 6) {
        return verify_stateless(ctx, &access_token, options).await;
    }
    Ok(
        match ctx.app.engine.verify_session(&access_token, options).await {
            Ok(v) => {
                let mut body = json!({"status": "OK", "session": v.session});
                if let (Some(token), Value::Object(map)) = (v.access_token, &mut body) {
                    map.insert("accessToken".into(), json!(token));
                }
                json_ok(&body)
            }
            Err(e) => session_error(e),
        },
    )
}

/// `POST /recipe/session/verify` at CDI 5.6: public tenant only (403), never writes, never
/// mints; `payloadUpdateAvailable` with `checkDatabase`.
async fn verify_stateless(
    ctx: &Ctx,
    access_token: &str,
    options: VerifyOptions<'_>,
) -> Result<Response, ApiError> {
    Ok(
        match ctx
            .app
            .engine
            .verify_session_stateless(access_token, options)
            .await
        {
            Ok(v) => {
                let mut body = json!({"status": "OK", "session": v.session.session});
                if let (Some(available), Value::Object(map)) =
                    (v.payload_update_available, &mut body)
                {
                    map.insert("payloadUpdateAvailable".into(), Value::Bool(available));
                }
                json_ok(&body)
            }
            Err(e) => session_error(e),
        },
    )
}

/// `POST /recipe/session/refresh`.
///
/// Tessera extension (SEC2-H2): an `UNAUTHORISED` (other than an anti-CSRF mismatch) or
/// `TOKEN_THEFT_DETECTED` answer also carries `anonymousId` when the presented refresh token is
/// genuine and was minted for a session with one. Only the holder of the refresh token can
/// learn it this way, so an SDK may keep the visitor's anonymousId when the session ends,
/// without being able to decrypt refresh tokens itself. SuperTokens SDKs ignore the field.
pub(super) async fn refresh(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let refresh_token = input.string("refreshToken")?;
    let anti_csrf_token = input.opt_string("antiCsrfToken")?;
    let enable_anti_csrf = input.bool("enableAntiCsrf")?;
    let use_dynamic = if ctx.cdi.at_least(5, 0) {
        Some(input.bool("useDynamicSigningKey")?)
    } else {
        input.opt_bool("useDynamicSigningKey")?
    };
    let validity = validity_override(ctx, &input)?;
    let options = RefreshOptions {
        anti_csrf_token: anti_csrf_token.as_deref(),
        enable_anti_csrf,
        use_static_key: use_dynamic.map(|d| !d),
    };
    Ok(
        match ctx
            .app
            .engine
            .refresh_session_with_validity(&refresh_token, options, validity)
            .await
        {
            Ok(t) => json_ok(&tokens_body(&t)),
            Err(e @ (SessionError::Unauthorised(_) | SessionError::TokenTheft { .. }))
                if !matches!(
                    e,
                    SessionError::Unauthorised(UnauthorisedReason::AntiCsrfMismatch)
                ) =>
            {
                let mut fields = Vec::new();
                let mut e = e;
                if let (SessionError::TokenTheft { reason, .. }, true) =
                    (&e, ctx.cdi.at_least(5, 6))
                {
                    // CDI 5.6: which kind of reuse (the session is revoked either way).
                    fields.push(("recentTokenReuseSubtype", json!(reason.as_str())));
                    // `recent_token_reuse_behaviour = UNAUTHORISED`: a recent token's reuse
                    // is answered as an ended session, not as theft.
                    if ctx.app.settings.recent_token_reuse_unauthorised
                        && *reason != TheftReason::StaleLineage
                    {
                        e = SessionError::Unauthorised(UnauthorisedReason::SessionEnded);
                    }
                }
                if let Some(id) = ctx.app.engine.refresh_token_anonymous_id(&refresh_token) {
                    fields.push(("anonymousId", Value::String(id)));
                }
                session_error_with(e, fields)
            }
            Err(e) => session_error(e),
        },
    )
}

/// `POST /recipe/session/regenerate`.
pub(super) async fn regenerate(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let access_token = input.string("accessToken")?;
    let payload = input.opt_object("userDataInJWT")?;
    Ok(
        match ctx
            .app
            .engine
            .regenerate_access_token(&access_token, payload)
            .await
        {
            Ok(r) => {
                let mut body = json!({"status": "OK", "session": r.session});
                if let (Some(token), Value::Object(map)) = (r.access_token, &mut body) {
                    map.insert("accessToken".into(), json!(token));
                }
                json_ok(&body)
            }
            Err(e) => session_error(e),
        },
    )
}

/// `GET /recipe/session?sessionHandle=`.
pub(super) async fn info(ctx: &Ctx) -> Result<Response, ApiError> {
    let handle = ctx.query.required("sessionHandle")?;
    Ok(match ctx.app.engine.get_session_info(handle).await {
        Ok(i) => json_ok(&json!({
            "status": "OK",
            "sessionHandle": i.session_handle,
            "userId": i.user_id,
            "recipeUserId": i.recipe_user_id,
            "userDataInDatabase": i.session_data,
            "userDataInJWT": i.access_token_payload,
            "expiry": i.expiry,
            "timeCreated": i.time_created,
            "tenantId": i.tenant_id,
        })),
        Err(e) => session_error(e),
    })
}

/// `POST /[<tenant>/]recipe/session/remove`.
pub(super) async fn remove(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let user_id = input.opt_string("userId")?;
    let handles = input.opt_string_array("sessionHandles")?;
    let across = input.opt_bool("revokeAcrossAllTenants")?;
    let linked = input.opt_bool("revokeSessionsForLinkedAccounts")?;
    let revoked = match (user_id, handles) {
        (Some(user_id), None) => {
            let across = across.unwrap_or(true);
            let tenant = if across {
                ctx.require_public_tenant()?;
                None
            } else {
                Some(ctx.tenant_id.as_str())
            };
            ctx.app
                .engine
                .revoke_all_sessions_for_user(&user_id, tenant)
                .await
        }
        (None, Some(handles)) => {
            if across.is_some() {
                return Err(ApiError::BadRequest(
                    "Invalid JSON input - revokeAcrossAllTenants can only be set if userId is set"
                        .into(),
                ));
            }
            if linked.is_some() {
                return Err(ApiError::BadRequest(
                    "Invalid JSON input - revokeSessionsForLinkedAccounts can only be set if \
                     userId is set"
                        .into(),
                ));
            }
            ctx.app.engine.revoke_sessions(&handles).await
        }
        _ => {
            return Err(ApiError::BadRequest(
                "Invalid JSON input - use one of userId or sessionHandles array".into(),
            ))
        }
    };
    Ok(match revoked {
        Ok(handles) => json_ok(&json!({"status": "OK", "sessionHandlesRevoked": handles})),
        Err(e) => session_error(e),
    })
}

/// Most handles `GET /recipe/session/user` lists: a user's newest live sessions (SEC2-INFO).
/// Revoking by `userId` still revokes every one of them.
pub const MAX_LISTED_SESSIONS: usize = 1_000;

/// `GET /[<tenant>/]recipe/session/user?userId=`: the handles of the user's newest
/// [`MAX_LISTED_SESSIONS`] live sessions, oldest first.
pub(super) async fn user(ctx: &Ctx) -> Result<Response, ApiError> {
    let user_id = ctx.query.required("userId")?;
    let across = ctx
        .query
        .opt("fetchAcrossAllTenants")
        .map(|v| v.eq_ignore_ascii_case("true"))
        .unwrap_or(true);
    let tenant = if across {
        ctx.require_public_tenant()?;
        None
    } else {
        Some(ctx.tenant_id.as_str())
    };
    Ok(
        match ctx
            .app
            .engine
            .session_handles_for_user(user_id, tenant)
            .await
        {
            Ok(mut handles) => {
                if handles.len() > MAX_LISTED_SESSIONS {
                    tracing::warn!(
                        live = handles.len(),
                        listed = MAX_LISTED_SESSIONS,
                        "a user's session list was cut to the newest sessions"
                    );
                    handles.drain(..handles.len() - MAX_LISTED_SESSIONS);
                }
                json_ok(&json!({"status": "OK", "sessionHandles": handles}))
            }
            Err(e) => session_error(e),
        },
    )
}

/// `PUT /recipe/session/data`.
pub(super) async fn put_data(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let handle = input.string("sessionHandle")?;
    let data = input.object("userDataInDatabase")?;
    Ok(
        match ctx
            .app
            .engine
            .update_session_data(&handle, &Value::Object(data))
            .await
        {
            Ok(()) => json_ok(&json!({"status": "OK"})),
            Err(e) => session_error(e),
        },
    )
}

/// `GET /recipe/session/data?sessionHandle=` (deprecated).
pub(super) async fn get_data(ctx: &Ctx) -> Result<Response, ApiError> {
    let handle = ctx.query.required("sessionHandle")?;
    Ok(match ctx.app.engine.get_session_info(handle).await {
        Ok(i) => json_ok(&json!({"status": "OK", "userDataInDatabase": i.session_data})),
        Err(e) => session_error(e),
    })
}
