//! The tower layer: serves the refresh and sign-out routes, gives extractors their context, and
//! writes the collected token changes into every response.

use crate::anonymous;
use crate::changes::ChangeSink;
use crate::context::RequestContext;
use crate::dbsc;
use crate::routes;
use crate::tessera::Tessera;
use crate::transfer::read::RequestTokens;
use axum::body::Body;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use http::{Method, Request};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Adds sessions to an axum router: `router.layer(tessera.layer())`.
#[derive(Clone, Debug)]
#[must_use = "a layer does nothing until it wraps a router: `router.layer(tessera.layer())`"]
pub struct SessionLayer {
    tessera: Tessera,
}

impl SessionLayer {
    /// The layer for `tessera` (the same as [`Tessera::layer`]).
    pub fn new(tessera: Tessera) -> Self {
        Self { tessera }
    }
}

impl Tessera {
    /// The tower layer that serves the refresh and sign-out routes and makes the extractors
    /// work. [`Tessera::wrap`] puts it once around a whole router, for less work per request.
    ///
    /// ```no_run
    /// # fn demo(tessera: tessera_axum::Tessera) {
    /// use axum::{routing::get, Router};
    /// let app: Router = Router::new()
    ///     .route("/me", get(|s: tessera_axum::Session| async move { s.user_id().to_owned() }))
    ///     .layer(tessera.layer());
    /// # }
    /// ```
    pub fn layer(&self) -> SessionLayer {
        SessionLayer::new(self.clone())
    }

    /// The same sessions as [`Tessera::layer`], put once around the whole router rather than
    /// on each of its routes, and ready for `axum::serve`.
    ///
    /// `Router::layer` wraps every route in the layer, so axum boxes and clones the layer per
    /// request; wrapped once, a request pays for the layer alone (about 860 fewer instructions
    /// per request, `docs/layer-profile.md`). Routes, fallback and the SDK's own routes
    /// (refresh, sign-out, DBSC) behave the same either way.
    ///
    /// ```no_run
    /// # async fn demo(tessera: tessera_axum::Tessera) -> Result<(), Box<dyn std::error::Error>> {
    /// use axum::{routing::get, Router, ServiceExt as _};
    /// use tower::Layer as _;
    /// let router = Router::new()
    ///     .route("/me", get(|s: tessera_axum::Session| async move { s.user_id().to_owned() }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    /// axum::serve(listener, tessera.wrap(router.clone())).await?;
    ///
    /// // Another layer outside it (CORS here), and the peer address for the rate limits:
    /// let cors = tessera_axum::cors::layer(tessera.config())?;
    /// let app = cors.layer(tessera.wrap(router));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    /// axum::serve(
    ///     listener,
    ///     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub fn wrap(&self, router: Router) -> SessionService<Router> {
        // `with_state` turns every handler into a route now, not once per request.
        self.layer().layer(router.with_state(()))
    }
}

/// `axum::serve(listener, tessera.wrap(router))`: every connection gets a clone.
impl<L: Listener> Service<IncomingStream<'_, L>> for SessionService<Router> {
    type Response = Self;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _stream: IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(self.clone()))
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
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let sink = ChangeSink::default();
        let tessera = &self.tessera;
        let config = tessera.config();
        let path = request.uri().path();
        let is_post = request.method() == Method::POST;
        let is_refresh = is_post && path == config.refresh_path();
        // The one read pass over the request's headers (cookies, Authorization, st-auth-mode,
        // rid): the routes and the extractors all use it.
        let (mut tokens, seen) = RequestTokens::read_seeing(
            request.headers(),
            config.anonymous_cookie_name(),
            tessera.kid_memo(),
        );
        if let Some(limited) = tessera
            .limiter()
            .filter(|l| is_refresh && l.limits_refresh())
            .and_then(|l| {
                l.check_refresh(peer(&request), request.headers(), tessera.trusted_proxies())
            })
        {
            return ResponseFuture {
                kind: Kind::Route {
                    future: Box::pin(std::future::ready(limited)),
                },
                sink,
            };
        }
        let kind = if is_refresh {
            let (tessera, route_sink) = (tessera.clone(), sink.clone());
            Kind::Route {
                future: Box::pin(async move {
                    routes::refresh(&tessera, &route_sink, request.headers(), &tokens).await
                }),
            }
        } else if is_post && config.dbsc_registration_path() == Some(path) {
            let (tessera, route_sink) = (tessera.clone(), sink.clone());
            Kind::Route {
                future: Box::pin(async move {
                    dbsc::register(&tessera, &route_sink, request.headers(), &tokens).await
                }),
            }
        } else if is_post && config.dbsc_refresh_path() == Some(path) {
            let (tessera, route_sink) = (tessera.clone(), sink.clone());
            Kind::Route {
                future: Box::pin(async move {
                    dbsc::refresh(&tessera, &route_sink, request.headers(), &tokens).await
                }),
            }
        } else if is_post && path == config.signout_path() {
            let (tessera, route_sink) = (tessera.clone(), sink.clone());
            Kind::Route {
                future: Box::pin(async move {
                    routes::signout(
                        &tessera,
                        &route_sink,
                        request.method(),
                        request.headers(),
                        &tokens,
                    )
                    .await
                }),
            }
        } else {
            // The access-token cookie, looked up in the verified-token cache while its bytes
            // are still borrowed: a hit is neither checked as UTF-8 nor copied. (The SDK's own
            // routes above read it from its place in the headers.)
            tokens.settle_access(seen.access, |token| {
                tessera.core().cached_access_token(token)
            });
            // The anonymous middleware (A7): decided without I/O; only a remote mint (or a
            // key refetch) takes the async path.
            let plan = anonymous::plan(
                tessera,
                &sink,
                request.method(),
                path,
                request.headers(),
                &tokens,
                seen.guest,
            );
            if let Some(limited) = tessera
                .limiter()
                .filter(|l| l.limits_mints() && anonymous::mints(&plan))
                .and_then(|l| {
                    l.check_mint(peer(&request), request.headers(), tessera.trusted_proxies())
                })
            {
                return ResponseFuture {
                    kind: Kind::Route {
                        future: Box::pin(std::future::ready(limited)),
                    },
                    sink,
                };
            }
            match anonymous::run_now(tessera, &sink, plan) {
                Ok(state) => {
                    request.extensions_mut().insert(RequestContext {
                        tessera: tessera.clone(),
                        sink: sink.clone(),
                        anonymous: state,
                        tokens,
                    });
                    // The service driven to readiness is called now: no clone of it.
                    Kind::Inner {
                        future: self.inner.call(request),
                    }
                }
                Err(later) => {
                    // The service driven to readiness is called later: it moves into the
                    // future and a clone takes its place.
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    let (tessera, route_sink) = (tessera.clone(), sink.clone());
                    Kind::Route {
                        future: Box::pin(async move {
                            let state = anonymous::run_later(
                                &tessera,
                                &route_sink,
                                later,
                                request.method(),
                                request.uri().path(),
                                request.headers(),
                                &tokens,
                            )
                            .await;
                            request.extensions_mut().insert(RequestContext {
                                tessera,
                                sink: route_sink,
                                anonymous: state,
                                tokens,
                            });
                            match inner.call(request).await {
                                Ok(response) => response,
                                Err(never) => match never {},
                            }
                        }),
                    }
                }
            }
        };
        ResponseFuture { kind, sink }
    }
}

/// The connection's peer address, when the app serves with connect info.
fn peer(request: &Request<Body>) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

pin_project! {
    /// The response future of [`SessionService`]: the app's (or one of the SDK's routes'),
    /// then the token changes collected meanwhile written into the response.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        sink: ChangeSink,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Route { future: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.kind.project() {
            KindProj::Inner { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            KindProj::Route { future } => match future.as_mut().poll(cx) {
                Poll::Ready(response) => response,
                Poll::Pending => return Poll::Pending,
            },
        };
        // The one place where the request's token changes reach the response.
        this.sink.apply_to(response.headers_mut());
        Poll::Ready(Ok(response))
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
