//! The per-request context the layer puts in the request's extensions for the extractors: the
//! SDK handle, the response's change sink, the request's anonymous session as the layer found
//! or minted it, and what the layer's one read pass found in the headers.

use crate::changes::ChangeSink;
use crate::error::{RejectionKind, SessionRejection};
use crate::session::AnonymousSession;
use crate::tessera::Tessera;
use crate::transfer::read::RequestTokens;
use http::request::Parts;

/// What the layer puts in every request's extensions.
#[derive(Clone)]
pub(crate) struct RequestContext {
    pub(crate) tessera: Tessera,
    pub(crate) sink: ChangeSink,
    /// The request's anonymous session, as the layer found or minted it.
    pub(crate) anonymous: AnonymousState,
    /// The layer's one read pass over the request's headers.
    pub(crate) tokens: RequestTokens,
}

/// The request's context, or the "no layer" rejection.
pub(crate) fn context(parts: &Parts) -> Result<&RequestContext, SessionRejection> {
    parts
        .extensions
        .get::<RequestContext>()
        .ok_or(SessionRejection {
            kind: RejectionKind::LayerMissing,
            answering: None,
        })
}

/// What the layer found out about the request's anonymous session.
#[derive(Clone, Debug, Default)]
pub(crate) enum AnonymousState {
    /// No anonymous session (a signed-in request, the feature off, or an excluded path).
    #[default]
    None,
    /// The visitor's (possibly just minted) anonymous session.
    Present(AnonymousSession),
    /// A genuine AnT, but this state-changing request failed the anti-CSRF check: it is not
    /// usable here, and it is not replaced either (a cross-site request cannot reset the
    /// visitor's identity, CSRF-17).
    AntiCsrfFailed,
}

impl RequestContext {
    /// The anonymous session the request had when it reached the app, for sign-in (A3, B3).
    pub(crate) fn guest(&self) -> Option<&AnonymousSession> {
        match &self.anonymous {
            AnonymousState::Present(s) => Some(s),
            _ => None,
        }
    }
}
