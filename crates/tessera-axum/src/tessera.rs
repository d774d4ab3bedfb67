//! [`Tessera`]: the SDK handle — configuration, the core, claim validators and error overrides.

use crate::claims::ClaimValidator;
use crate::config::Config;
use crate::core::Core;
use crate::error::SessionRejection;
use crate::layer::SessionLayer;
use axum::response::Response;
use std::sync::Arc;

/// Overrides the response of a rejection; return `None` to keep the default.
pub type ErrorHandler = Arc<dyn Fn(&SessionRejection) -> Option<Response> + Send + Sync>;

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
/// let config = Config::builder("http://localhost:3001", "http://localhost:3000").build()?;
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
    core: Arc<dyn Core>,
    validators: Vec<Arc<dyn ClaimValidator>>,
    error_handler: Option<ErrorHandler>,
}

impl Tessera {
    /// A handle over `core` (a [`tessera::SessionEngine`] or a [`crate::RemoteCore`]).
    pub fn new(config: Config, core: Arc<dyn Core>) -> Self {
        Self(Arc::new(Inner {
            config,
            core,
            validators: Vec::new(),
            error_handler: None,
        }))
    }

    fn edit(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            config: shared.config.clone(),
            core: Arc::clone(&shared.core),
            validators: shared.validators.clone(),
            error_handler: shared.error_handler.clone(),
        });
        f(&mut inner);
        Self(Arc::new(inner))
    }

    /// Adds a claim validator run on every verified session (except sign-out).
    pub fn with_claim_validator(self, validator: Arc<dyn ClaimValidator>) -> Self {
        self.edit(|i| i.validators.push(validator))
    }

    /// Overrides error responses. Token clearing still happens.
    pub fn with_error_handler(self, handler: ErrorHandler) -> Self {
        self.edit(|i| i.error_handler = Some(handler))
    }

    /// The tower layer that serves the refresh and sign-out routes and makes the extractors
    /// work.
    pub fn layer(&self) -> SessionLayer {
        SessionLayer::new(self.clone())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The core.
    pub fn core(&self) -> &Arc<dyn Core> {
        &self.0.core
    }

    pub(crate) fn validators(&self) -> &[Arc<dyn ClaimValidator>] {
        &self.0.validators
    }

    pub(crate) fn error_handler(&self) -> Option<&ErrorHandler> {
        self.0.error_handler.as_ref()
    }
}

impl std::fmt::Debug for Tessera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tessera")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}
