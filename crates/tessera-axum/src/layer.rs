//! The tower layer: serves the refresh and sign-out routes, gives extractors their context, and
//! writes the collected token changes into every response.

use crate::changes::ChangeSink;
use crate::routes;
use crate::session::RequestContext;
use crate::Tessera;
use axum::body::Body;
use axum::response::Response;
use http::{Method, Request};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Adds sessions to an axum router: `router.layer(tessera.layer())`.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    tessera: Tessera,
}

impl SessionLayer {
    /// The layer for `tessera`.
    pub fn new(tessera: Tessera) -> Self {
        Self { tessera }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            tessera: self.tessera.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around the app.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    tessera: Tessera,
}

impl<S> Service<Request<Body>> for SessionService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tessera = self.tessera.clone();
        Box::pin(async move {
            let sink = ChangeSink::default();
            let config = tessera.config();
            let path = request.uri().path();
            let is_post = request.method() == Method::POST;
            let mut response = if is_post && path == config.refresh_path() {
                routes::refresh(&tessera, &sink, request.headers()).await
            } else if is_post && path == config.signout_path() {
                routes::signout(&tessera, &sink, request.method(), request.headers()).await
            } else {
                request.extensions_mut().insert(RequestContext {
                    tessera: tessera.clone(),
                    sink: sink.clone(),
                });
                inner.call(request).await?
            };
            let changes = sink.take();
            if !changes.is_empty() {
                changes.apply(response.headers_mut());
            }
            Ok(response)
        })
    }
}
