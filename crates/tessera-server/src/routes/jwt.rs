//! The JWT recipe: `POST /recipe/jwt` and the access-token payload by handle
//! (`/recipe/jwt/data`).

use super::Ctx;
use crate::error::{json_ok, session_error, ApiError};
use axum::response::Response;
use serde_json::{json, Value};

/// `PUT /recipe/jwt/data`: replaces the stored custom claims; mints nothing.
pub(super) async fn put_data(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let handle = input.string("sessionHandle")?;
    let payload = input.object("userDataInJWT")?;
    Ok(
        match ctx
            .app
            .engine
            .update_access_token_payload(&handle, &payload)
            .await
        {
            Ok(()) => json_ok(&json!({"status": "OK"})),
            Err(e) => session_error(e),
        },
    )
}

/// `GET /recipe/jwt/data?sessionHandle=` (deprecated).
pub(super) async fn get_data(ctx: &Ctx) -> Result<Response, ApiError> {
    let handle = ctx.query.required("sessionHandle")?;
    Ok(match ctx.app.engine.get_session_info(handle).await {
        Ok(i) => json_ok(&json!({"status": "OK", "userDataInJWT": i.access_token_payload})),
        Err(e) => session_error(e),
    })
}

/// `POST /recipe/jwt`: signs a payload with the app's static key (or the dynamic one).
pub(super) async fn create(ctx: &Ctx) -> Result<Response, ApiError> {
    let input = ctx.json()?;
    let algorithm = input.string("algorithm")?;
    let jwks_domain = input.string("jwksDomain")?;
    let payload = input.object("payload")?;
    let validity = input.long("validity")?;
    let use_static = input.opt_bool("useStaticSigningKey")?.unwrap_or(true);
    if validity <= 0 {
        return Err(ApiError::BadRequest(
            "validity must be greater than or equal to 0".into(),
        ));
    }
    if !algorithm.eq_ignore_ascii_case("RS256") {
        return Ok(json_ok(&json!({"status": "UNSUPPORTED_ALGORITHM_ERROR"})));
    }
    let validity = u64::try_from(validity).unwrap_or(0);
    Ok(
        match ctx
            .app
            .engine
            .create_jwt(payload, validity, &jwks_domain, use_static)
            .await
        {
            Ok(jwt) => json_ok(&json!({"status": "OK", "jwt": Value::String(jwt)})),
            Err(e) => session_error(e),
        },
    )
}
