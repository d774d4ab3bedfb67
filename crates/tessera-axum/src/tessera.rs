//! [`Tessera`]: the SDK handle — configuration, the core, claim validators and error overrides.

use crate::claims::{ClaimError, ClaimValidator};
use crate::config::Config;
use crate::core::SessionCore;
use crate::error::{Answering, ErrorHandler, RejectionKind, SessionRejection};
use crate::transfer::read::KidMemo;
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The SDK handle. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use axum::{routing::get, Router};
/// use tessera_axum::{Config, Session, Tessera};
///
/// let engine = tessera::SessionEngine::builder(Arc::new(
///     tessera::SqliteStore::open("sessions.db").await?,
/// ))
/// .build()
/// .await?;
/// let config = Config::builder("http://localhost:3001", "http://localhost:3000")
///     .secure(true) // browsers accept Secure cookies on http://localhost
///     .build()?;
/// let tessera = Tessera::new(config, Arc::new(engine));
/// let app: Router = Router::new()
///     .route("/me", get(|session: Session| async move { session.user_id().to_owned() }))
///     .layer(tessera.layer());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tessera(Arc<Inner>);

struct Inner {
    config: Config,
    core: Arc<dyn SessionCore>,
    validators: Vec<Arc<dyn ClaimValidator>>,
    error_handler: Option<ErrorHandler>,
    sign_in_hook: Option<SignInHook>,
    kid_memo: KidMemo,
    trusted_proxies: Arc<[std::net::IpAddr]>,
    limiter: Option<Arc<crate::limit::ClientLimiter>>,
}

/// What the sign-in hook receives: who is signing in and, as plain data, the anonymous
/// session they had (A3, B3). The app decides what to copy; see [`crate::anonymous`] for why
/// copied guest data must then be removed from the guest's scope.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SigningIn {
    /// The user the new session is for.
    pub user_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The visitor's anonymous session, if the request had one.
    pub anonymous: Option<Guest>,
}

/// The anonymous session a visitor had when signing in: its id, tenant and payload, read when
/// the request reached the layer (or as the app last set it in this request).
#[derive(Debug, Clone)]
pub struct Guest {
    anonymous_id: String,
    tenant_id: String,
    payload: Map<String, Value>,
}

impl Guest {
    pub(crate) fn new(
        anonymous_id: String,
        tenant_id: String,
        payload: Map<String, Value>,
    ) -> Self {
        Self {
            anonymous_id,
            tenant_id,
            payload,
        }
    }

    /// The visitor's permanent anonymousId (A6): the new session keeps it.
    pub fn anonymous_id(&self) -> &str {
        &self.anonymous_id
    }

    /// The guest's tenant.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The guest's payload (untrusted: anyone holding the anonymous token set it).
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }
}

/// Runs on every path that creates a signed-in session ([`crate::SignIn::create`] and
/// [`crate::SignIn::create_in_tenant`]), before the session exists; an error aborts the
/// sign-in with that rejection.
pub type SignInHook = Arc<
    dyn Fn(SigningIn) -> Pin<Box<dyn Future<Output = Result<(), SessionRejection>> + Send>>
        + Send
        + Sync,
>;

impl Tessera {
    /// A handle over `core` (a [`tessera::SessionEngine`] or a [`crate::RemoteCore`]).
    pub fn new(config: Config, core: Arc<dyn SessionCore>) -> Self {
        Self(Arc::new(Inner {
            config,
            core,
            validators: Vec::new(),
            error_handler: None,
            sign_in_hook: None,
            kid_memo: KidMemo::default(),
            trusted_proxies: Arc::from(Vec::new()),
            limiter: None,
        }))
    }

    fn edit(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            config: shared.config.clone(),
            core: Arc::clone(&shared.core),
            validators: shared.validators.clone(),
            error_handler: shared.error_handler.clone(),
            sign_in_hook: shared.sign_in_hook.clone(),
            kid_memo: KidMemo::default(),
            trusted_proxies: Arc::clone(&shared.trusted_proxies),
            limiter: shared.limiter.clone(),
        });
        f(&mut inner);
        Self(Arc::new(inner))
    }

    /// Adds a claim validator run on every verified session (except sign-out).
    pub fn with_claim_validator(self, validator: Arc<dyn ClaimValidator>) -> Self {
        self.edit(|i| i.validators.push(validator))
    }

    /// Sets the hook every sign-in runs first, with the visitor's anonymous session (B3).
    ///
    /// **Move, then empty.** The anonymousId stays the same across sign-in (A6), so anyone who
    /// holds the same anonymous token keeps reaching the guest scope after the visitor signs
    /// in. That someone exists when the token was planted — possible only where the anonymous
    /// cookie is not `__Host-` (see [`crate::ConfigBuilder::allow_plantable_anonymous_cookie`])
    /// — or copied on a shared device. The residual risk: the planter sees what the visitor
    /// adds as a guest before signing in. To keep it at that, the hook must move guest data
    /// into the user and empty the guest's copy in the same step, so nothing the account holds
    /// is reachable through the anonymousId afterwards, and treat the guest data as untrusted
    /// input (validate it like a request body; never take roles or redirects from it).
    ///
    /// ```no_run
    /// # fn demo(tessera: tessera_axum::Tessera) {
    /// use std::sync::Arc;
    /// let tessera = tessera.with_sign_in_hook(Arc::new(|sign_in: tessera_axum::SigningIn| {
    ///     Box::pin(async move {
    ///         if let Some(guest) = sign_in.anonymous {
    ///             println!("{} was guest {}", sign_in.user_id, guest.anonymous_id());
    ///         }
    ///         Ok(())
    ///     })
    /// }));
    /// # }
    /// ```
    pub fn with_sign_in_hook(self, hook: SignInHook) -> Self {
        self.edit(|i| i.sign_in_hook = Some(hook))
    }

    /// The reverse proxies whose `X-Forwarded-For` is believed when recording a sign-in's
    /// client IP (see [`crate::devices::client_ip`]). None by default: the connection's peer
    /// address is recorded and the header ignored.
    pub fn with_trusted_proxies(self, proxies: Vec<std::net::IpAddr>) -> Self {
        let proxies: Vec<_> = proxies.into_iter().map(|p| p.to_canonical()).collect();
        self.edit(|i| i.trusted_proxies = Arc::from(proxies))
    }

    /// Per-client-IP rate limits for anonymous mints and the refresh route (see
    /// [`crate::limit`]); off by default. The client IP follows
    /// [`Self::with_trusted_proxies`].
    pub fn with_client_limits(self, limits: crate::limit::ClientLimits) -> Self {
        let limiter = crate::limit::ClientLimiter::new(limits).map(Arc::new);
        self.edit(|i| i.limiter = limiter)
    }

    pub(crate) fn limiter(&self) -> Option<&crate::limit::ClientLimiter> {
        self.0.limiter.as_deref()
    }

    pub(crate) fn trusted_proxies(&self) -> &[std::net::IpAddr] {
        &self.0.trusted_proxies
    }

    /// Overrides error responses. Token clearing still happens.
    pub fn with_error_handler(self, handler: ErrorHandler) -> Self {
        self.edit(|i| i.error_handler = Some(handler))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The core.
    pub fn core(&self) -> &Arc<dyn SessionCore> {
        &self.0.core
    }

    pub(crate) fn validators(&self) -> &[Arc<dyn ClaimValidator>] {
        &self.0.validators
    }

    pub(crate) fn sign_in_hook(&self) -> Option<&SignInHook> {
        self.0.sign_in_hook.as_ref()
    }

    /// How this handle answers its rejections.
    pub(crate) fn answering(&self) -> Answering {
        let config = &self.0.config;
        Answering {
            expired_status: config.session_expired_status,
            invalid_status: config.invalid_claim_status,
            handler: self.0.error_handler.clone(),
        }
    }

    /// Remembers the last access-token header and whether its `kid` is a dynamic key.
    pub(crate) fn kid_memo(&self) -> &KidMemo {
        &self.0.kid_memo
    }
}

impl std::fmt::Debug for Tessera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tessera")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl SessionRejection {
    pub(crate) fn new(tessera: &Tessera, kind: RejectionKind) -> Self {
        Self {
            kind,
            answering: Some(tessera.answering()),
        }
    }

    /// The invalid-claims rejection (403 `{"message":"invalid claim","claimValidationErrors":…}`
    /// by default) for claim checks a handler runs itself, e.g. validators that apply to one
    /// route only. The status and any error handler come from `tessera`.
    ///
    /// ```
    /// use tessera_axum::{ClaimError, RejectionKind, SessionRejection, Tessera};
    /// # fn demo(tessera: &Tessera) {
    /// let errors = vec![ClaimError { id: "is-admin".into(), reason: None }];
    /// let rejection = SessionRejection::invalid_claims(tessera, errors);
    /// assert!(matches!(rejection.kind(), RejectionKind::InvalidClaims(_)));
    /// # }
    /// ```
    pub fn invalid_claims(tessera: &Tessera, errors: Vec<ClaimError>) -> Self {
        Self::new(tessera, RejectionKind::InvalidClaims(errors))
    }
}
