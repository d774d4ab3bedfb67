//! Every extractor of the SDK: [`Session`] (required), `Option<Session>` (optional),
//! [`AnySession`] (signed in or a guest) and [`SignIn`] (to create sessions). Each reads the
//! context the layer left in the request; none parses a header again.

use crate::context::{context, AnonymousState, RequestContext};
use crate::error::{RejectionKind, SessionRejection};
use crate::session::{AnySession, Session};
use crate::signin::SignIn;
use crate::verify::{get_session, VerifyRequest};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

/// The request's session as the layer's context gives it (`required`: a missing session is a
/// rejection rather than `None`).
async fn verify(
    parts: &Parts,
    ctx: &RequestContext,
    required: bool,
) -> Result<Option<Session>, SessionRejection> {
    let request = VerifyRequest::default();
    get_session(
        &ctx.tessera,
        &ctx.sink,
        &parts.method,
        &parts.headers,
        &ctx.tokens,
        required,
        request,
    )
    .await
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        let found = verify(parts, ctx, true).await?;
        found.ok_or_else(|| SessionRejection::new(&ctx.tessera, RejectionKind::Unauthorised))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let ctx = context(parts)?;
        verify(parts, ctx, false).await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AnySession {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        let tessera = &ctx.tessera;
        if ctx.tokens.has_access_token(tessera.config().transfer) {
            let found = verify(parts, ctx, false).await?;
            if let Some(session) = found {
                return Ok(Self::Authenticated(session));
            }
        }
        match &ctx.anonymous {
            AnonymousState::Present(session) => Ok(Self::Anonymous(session.clone())),
            AnonymousState::AntiCsrfFailed => Err(SessionRejection::new(
                tessera,
                RejectionKind::TryRefreshToken,
            )),
            AnonymousState::None => {
                Err(SessionRejection::new(tessera, RejectionKind::Unauthorised))
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignIn {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Self {
            ctx: context(parts)?.clone(),
            headers: parts.headers.clone(),
            peer,
        })
    }
}
