//! Sign-in: [`SignIn`], the tool a sign-in handler uses to create a session. It hands the
//! visitor's anonymous session to the sign-in hook as plain data, keeps the visitor's
//! anonymousId in the new session (A6, A15), removes the anonymous token and offers DBSC.

use crate::changes::ChangeSink;
use crate::config::AntiCsrfMode;
use crate::context::RequestContext;
use crate::error::SessionRejection;
use crate::session::{engine_error, AnonymousSession, Identity, Session};
use crate::tessera::{Guest, SigningIn, Tessera};
use crate::transfer::read;
use crate::transfer::write;
use crate::transfer::{names, TokenLocation};
use serde_json::{Map, Value};
use tessera::protocol::ANONYMOUS_ID_CLAIM;
use tessera::NewSession;

/// Creates sessions (sign-in). Tokens go out in the transfer method the browser asked for
/// (`st-auth-mode`), with the front-token and, under VIA_TOKEN in cookie mode, `anti-csrf`.
///
/// ```no_run
/// use tessera_axum::{SignIn, SessionRejection};
/// async fn login(sign_in: SignIn) -> Result<&'static str, SessionRejection> {
///     sign_in.create("user-1", serde_json::Map::new(), serde_json::json!({})).await?;
///     Ok("signed in")
/// }
/// ```
#[derive(Clone)]
pub struct SignIn {
    pub(crate) ctx: RequestContext,
    pub(crate) headers: http::HeaderMap,
    pub(crate) peer: Option<std::net::IpAddr>,
}

impl SignIn {
    /// The SDK handle.
    pub fn tessera(&self) -> &Tessera {
        &self.ctx.tessera
    }

    /// The visitor's anonymous session, if the request had one: what sign-in code reads to
    /// move guest data into the new session (A3). The sign-in hook gets it too (B3).
    pub fn anonymous(&self) -> Option<AnonymousSession> {
        self.ctx.guest().cloned()
    }

    /// Creates a session for `user_id` in the public tenant: the tokens go into this response
    /// (see [`SignIn`]), the sign-in hook runs first, and the visitor keeps their anonymousId.
    ///
    /// ```no_run
    /// # async fn demo(sign_in: tessera_axum::SignIn) -> Result<(), tessera_axum::SessionRejection> {
    /// let session = sign_in.create("user-1", serde_json::Map::new(), serde_json::json!({})).await?;
    /// assert_eq!(session.user_id(), "user-1");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The sign-in hook's rejection, if it refuses; internal when the core fails (a store
    /// outage) or refuses the input (logged).
    pub async fn create(
        &self,
        user_id: &str,
        payload: Map<String, Value>,
        data: Value,
    ) -> Result<Session, SessionRejection> {
        self.create_in_tenant(tessera::PUBLIC, user_id, payload, data)
            .await
    }

    /// Creates a session in a tenant (see [`Self::create`]).
    ///
    /// ```no_run
    /// # async fn demo(sign_in: tessera_axum::SignIn) -> Result<(), tessera_axum::SessionRejection> {
    /// sign_in
    ///     .create_in_tenant("acme", "user-1", serde_json::Map::new(), serde_json::json!({}))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Self::create`].
    pub async fn create_in_tenant(
        &self,
        tenant_id: &str,
        user_id: &str,
        mut payload: Map<String, Value>,
        data: Value,
    ) -> Result<Session, SessionRejection> {
        let tessera = &self.ctx.tessera;
        let config = tessera.config();
        let location = read::output_location(config.transfer, self.ctx.tokens.auth_mode);
        for key in tessera::protocol::PROTECTED_CLAIMS {
            payload.remove(*key);
        }
        payload.remove(ANONYMOUS_ID_CLAIM);
        // A3, B3: the app sees the anonymous session before the signed-in one exists; A6, A15:
        // the visitor keeps their anonymousId (a new one if they had none).
        let guest = self.anonymous();
        let anonymous_id = if config.anonymous_sessions() {
            match &guest {
                Some(g) => Some(g.anonymous_id().to_owned()),
                None => Some(
                    tessera::new_anonymous_id()
                        .map_err(|e| engine_error(tessera, &self.ctx.sink, e.into(), location))?,
                ),
            }
        } else {
            None
        };
        if let Some(hook) = tessera.sign_in_hook() {
            hook(SigningIn {
                user_id: user_id.to_owned(),
                tenant_id: tenant_id.to_owned(),
                anonymous: guest.as_ref().map(|g| {
                    Guest::new(
                        g.anonymous_id().to_owned(),
                        g.tenant_id().to_owned(),
                        g.payload().clone(),
                    )
                }),
            })
            .await?;
        }
        payload
            .entry("iss")
            .or_insert_with(|| Value::String(config.issuer()));
        let new = NewSession {
            anonymous_id,
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
            access_token_payload: payload,
            session_data: data,
            enable_anti_csrf: config.anti_csrf == AntiCsrfMode::ViaToken
                && location == TokenLocation::Cookie,
            use_static_key: !config.use_dynamic_signing_key,
        };
        // Issue 15: the device of this sign-in, recorded by the SDK itself.
        let device = tessera::DeviceInfo {
            user_agent: crate::devices::user_agent(&self.headers),
            ip: crate::devices::client_ip(self.peer, &self.headers, tessera.trusted_proxies())
                .map(|ip| ip.to_string()),
        };
        let created = tessera
            .core()
            .create_session_on_device(new, device)
            .await
            .map_err(|e| engine_error(tessera, &self.ctx.sink, e, location))?;
        let tokens = &self.ctx.tokens;
        let had_cookie_token = tokens.has_access_cookie();
        let had_header_token = tokens.has_bearer();
        let had_anonymous_cookie = tokens.anonymous_cookie(&self.headers).is_present();
        self.ctx.sink.with(|c| {
            match location {
                TokenLocation::Cookie if had_header_token => {
                    write::clear(c, config, TokenLocation::Header)
                }
                TokenLocation::Header if had_cookie_token => {
                    write::clear(c, config, TokenLocation::Cookie)
                }
                _ => {}
            }
            if guest.is_some() || had_anonymous_cookie {
                write::clear_anonymous(c, config, false);
            }
            write::write_access_token(c, config, location, user_id, &created.access_token);
            write::write_refresh_token(c, config, location, &created.refresh_token);
            if let Some(csrf) = &created.anti_csrf_token {
                c.set_header(names::ANTI_CSRF, Some(csrf), true);
            }
        });
        // Issue 14: a bound guest stays bound; anyone else is offered registration.
        offer_dbsc(
            tessera,
            &self.ctx.sink,
            location,
            guest.as_ref().map(|g| g.anonymous_id()),
            &created,
        )
        .await;
        Ok(Session::new(
            tessera.clone(),
            self.ctx.sink.clone(),
            location,
            Identity::from(created.session),
            created.access_token.token.into(),
        ))
    }
}

/// Issue 14, sign-in in cookie mode: a bound guest's key is carried to the new session (its cookie
/// then expires with its token); otherwise the browser is offered registration.
async fn offer_dbsc(
    tessera: &Tessera,
    sink: &ChangeSink,
    location: TokenLocation,
    guest: Option<&str>,
    created: &tessera::SessionTokens,
) {
    let config = tessera.config();
    let Some(paths) = &config.dbsc else { return };
    if location != TokenLocation::Cookie {
        return;
    }
    let (tenant, handle) = (&created.session.tenant_id, &created.session.handle);
    if let Some(guest) = guest {
        match tessera.core().dbsc_carry_guest(guest, tenant, handle).await {
            Ok(Some(_)) => {
                sink.with(|c| write::write_bound_access_token(c, config, &created.access_token));
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "device-bound guest could not be carried"),
        }
    }
    match tessera.core().dbsc_challenge(tenant, handle).await {
        Ok(challenge) => sink.with(|c| write::offer_dbsc_registration(c, paths, &challenge)),
        Err(e) => tracing::error!(error = %e, "no device-bound registration offered"),
    }
}
