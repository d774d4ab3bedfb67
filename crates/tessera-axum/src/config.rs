//! The SDK's configuration: a builder whose `build` validates everything and refuses unsafe
//! combinations with a message that says what to change.

use crate::domains::{cross_site, is_local, Origin};
use std::fmt;

/// How tokens travel between the browser and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTransfer {
    /// HttpOnly cookies (`sAccessToken`, `sRefreshToken`).
    Cookie,
    /// Response headers `st-access-token`/`st-refresh-token`, then `Authorization: Bearer`.
    Header,
    /// Read either (header first); on sign-in follow the request's `st-auth-mode` (default).
    Any,
}

/// Anti-CSRF protection for cookie-carried tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AntiCsrfMode {
    /// No check (same-site deployments, where SameSite=Lax cookies are the defence).
    None,
    /// Non-GET requests must carry a `rid` header, which cross-site pages cannot add without a
    /// CORS preflight.
    ViaCustomHeader,
    /// A random token in the access token that the client echoes in `anti-csrf`.
    ViaToken,
}

/// The `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (requires `Secure`).
    None,
}

impl SameSite {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// A configuration problem found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tessera-axum configuration: {0}")]
pub struct ConfigError(pub String);

/// The resolved configuration (every automatic choice made).
#[derive(Clone)]
pub struct Config {
    pub(crate) api: Origin,
    pub(crate) website: Origin,
    pub(crate) api_base_path: String,
    pub(crate) refresh_path: String,
    pub(crate) signout_path: String,
    pub(crate) access_token_path: String,
    pub(crate) cookie_domain: Option<String>,
    pub(crate) older_cookie_domain: Option<String>,
    pub(crate) transfer: TokenTransfer,
    pub(crate) anti_csrf: AntiCsrfMode,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
    pub(crate) session_expired_status: u16,
    pub(crate) invalid_claim_status: u16,
    pub(crate) use_dynamic_signing_key: bool,
    pub(crate) check_database: bool,
    pub(crate) expose_access_token_in_cookie_mode: bool,
    pub(crate) anonymous: AnonymousOptions,
    pub(crate) dbsc: Option<DbscPaths>,
}

/// Device Bound Session Credentials (W3C webappsec-dbsc), opt-in per app with
/// [`ConfigBuilder::dbsc`]. Cookie mode only: in header mode nothing is offered.
///
/// ```
/// use tessera_axum::{Config, DbscConfig};
/// let config = Config::builder("https://api.example.com", "https://api.example.com")
///     .anonymous_sessions(false)
///     .dbsc(DbscConfig::default())
///     .build()
///     .unwrap();
/// assert_eq!(config.dbsc_refresh_path(), Some("/auth/session/refresh/dbsc"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbscConfig {
    include_site: bool,
}

impl DbscConfig {
    /// The bound session covers the whole site (`include_site`), not only the API origin:
    /// for a cookie shared across subdomains. Off by default.
    pub fn include_site(mut self, include: bool) -> Self {
        self.include_site = include;
        self
    }
}

/// The resolved DBSC routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DbscPaths {
    /// `POST {base}/session/dbsc/register`.
    pub(crate) register: String,
    /// `POST {refresh}/dbsc`: under the refresh cookie's path, so the browser sends it.
    pub(crate) refresh: String,
    pub(crate) include_site: bool,
}

/// Anonymous-session settings (see [`crate::anonymous`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnonymousOptions {
    /// A4: on by default.
    pub(crate) enabled: bool,
    /// B2: paths (prefixes) where no anonymous token is minted.
    pub(crate) exclude_prefixes: Vec<String>,
    /// B1: sign-out starts a new anonymousId.
    pub(crate) rotate_id_on_sign_out: bool,
    /// The anonymous cookie's name (`__Host-` prefixed when the cookie can carry it).
    pub(crate) cookie_name: &'static str,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_domain", &self.api.serialised)
            .field("website_domain", &self.website.serialised)
            .field("api_base_path", &self.api_base_path)
            .field("transfer", &self.transfer)
            .field("anti_csrf", &self.anti_csrf)
            .field("same_site", &self.same_site)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Starts a configuration for an API at `api_domain` used by a website at `website_domain`.
    ///
    /// ```
    /// let config = tessera_axum::Config::builder("http://localhost:8080", "http://localhost:8080")
    ///     .secure(true) // browsers accept Secure cookies on http://localhost
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.anti_csrf(), tessera_axum::AntiCsrfMode::None);
    /// assert_eq!(config.same_site(), tessera_axum::SameSite::Lax);
    /// ```
    pub fn builder(api_domain: &str, website_domain: &str) -> ConfigBuilder {
        ConfigBuilder {
            api_domain: api_domain.to_owned(),
            website_domain: website_domain.to_owned(),
            api_base_path: "/auth".into(),
            access_token_path: "/".into(),
            cookie_domain: None,
            older_cookie_domain: None,
            transfer: TokenTransfer::Any,
            anti_csrf: None,
            same_site: None,
            secure: None,
            session_expired_status: 401,
            invalid_claim_status: 403,
            use_dynamic_signing_key: true,
            check_database: false,
            expose_access_token_in_cookie_mode: false,
            anonymous_enabled: true,
            anonymous_exclude: Vec::new(),
            rotate_anonymous_id_on_sign_out: false,
            allow_plantable_anonymous_cookie: false,
            dbsc: None,
        }
    }

    /// The DBSC refresh route, when DBSC is on.
    pub fn dbsc_refresh_path(&self) -> Option<&str> {
        self.dbsc.as_ref().map(|d| d.refresh.as_str())
    }

    /// The DBSC registration route, when DBSC is on.
    pub fn dbsc_registration_path(&self) -> Option<&str> {
        self.dbsc.as_ref().map(|d| d.register.as_str())
    }

    /// True when every visitor without a session gets an anonymous one (A4).
    pub fn anonymous_sessions(&self) -> bool {
        self.anonymous.enabled
    }

    /// The name of the anonymous-token cookie: `__Host-sAnonymousToken` when cookies are
    /// `Secure` and host-only, `sAnonymousToken` otherwise (plain-http development).
    pub fn anonymous_cookie_name(&self) -> &'static str {
        self.anonymous.cookie_name
    }

    /// True when anonymous tokens are minted on requests to `path` (B2).
    pub fn anonymous_mints_on(&self, path: &str) -> bool {
        self.anonymous.enabled
            && !self
                .anonymous
                .exclude_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }

    /// B1: whether sign-out starts a new anonymousId.
    pub fn rotates_anonymous_id_on_sign_out(&self) -> bool {
        self.anonymous.rotate_id_on_sign_out
    }

    /// The website's origin, normalised (`scheme://host[:port]`).
    pub fn website_origin(&self) -> &str {
        &self.website.serialised
    }

    /// The anti-CSRF mode in force.
    pub fn anti_csrf(&self) -> AntiCsrfMode {
        self.anti_csrf
    }

    /// The SameSite attribute in force.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// Whether cookies are `Secure`.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// `{api_base_path}/session/refresh`.
    pub fn refresh_path(&self) -> &str {
        &self.refresh_path
    }

    /// `{api_base_path}/signout`.
    pub fn signout_path(&self) -> &str {
        &self.signout_path
    }

    /// The `iss` claim put into new sessions: API domain + base path.
    pub fn issuer(&self) -> String {
        format!("{}{}", self.api.serialised, self.api_base_path)
    }

    /// The transfer method setting.
    pub fn transfer(&self) -> TokenTransfer {
        self.transfer
    }

    /// The status code for "try refresh token" / "unauthorised".
    pub fn session_expired_status(&self) -> u16 {
        self.session_expired_status
    }

    /// The status code for failed claim validation.
    pub fn invalid_claim_status(&self) -> u16 {
        self.invalid_claim_status
    }
}

/// Builds a [`Config`]. Unset choices are made automatically from the two domains.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    api_domain: String,
    website_domain: String,
    api_base_path: String,
    access_token_path: String,
    cookie_domain: Option<String>,
    older_cookie_domain: Option<String>,
    transfer: TokenTransfer,
    anti_csrf: Option<AntiCsrfMode>,
    same_site: Option<SameSite>,
    secure: Option<bool>,
    session_expired_status: u16,
    invalid_claim_status: u16,
    use_dynamic_signing_key: bool,
    check_database: bool,
    expose_access_token_in_cookie_mode: bool,
    anonymous_enabled: bool,
    anonymous_exclude: Vec<String>,
    rotate_anonymous_id_on_sign_out: bool,
    allow_plantable_anonymous_cookie: bool,
    dbsc: Option<DbscConfig>,
}

impl ConfigBuilder {
    /// Turns on Device Bound Session Credentials (issue 14): sign-in offers the browser a
    /// `Secure-Session-Registration`, and a session whose browser registers a device key is
    /// refreshed only with a proof from that key. Browsers without DBSC, and header mode,
    /// work as before. See `docs/dbsc.md`.
    pub fn dbsc(mut self, dbsc: DbscConfig) -> Self {
        self.dbsc = Some(dbsc);
        self
    }

    /// Where the SDK's routes live (default `/auth`).
    pub fn api_base_path(mut self, path: &str) -> Self {
        self.api_base_path = path.to_owned();
        self
    }

    /// `Domain` of the session cookies (default: host-only).
    pub fn cookie_domain(mut self, domain: &str) -> Self {
        self.cookie_domain = Some(domain.to_owned());
        self
    }

    /// A previous cookie domain whose duplicate cookies the refresh route clears.
    pub fn older_cookie_domain(mut self, domain: &str) -> Self {
        self.older_cookie_domain = Some(domain.to_owned());
        self
    }

    /// Restrict or choose the token transfer method (default [`TokenTransfer::Any`]).
    pub fn token_transfer(mut self, transfer: TokenTransfer) -> Self {
        self.transfer = transfer;
        self
    }

    /// Force an anti-CSRF mode instead of the automatic choice.
    pub fn anti_csrf(mut self, mode: AntiCsrfMode) -> Self {
        self.anti_csrf = Some(mode);
        self
    }

    /// Force the SameSite attribute instead of the automatic choice.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }

    /// Force the Secure attribute instead of "API domain is https".
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = Some(secure);
        self
    }

    /// Status for try-refresh and unauthorised (default 401).
    pub fn session_expired_status(mut self, status: u16) -> Self {
        self.session_expired_status = status;
        self
    }

    /// Status for failed claims (default 403).
    pub fn invalid_claim_status(mut self, status: u16) -> Self {
        self.invalid_claim_status = status;
        self
    }

    /// Sign with the rotating dynamic keys (default) or the static key. A token signed with
    /// the other kind is answered with try-refresh, so switching re-signs sessions at their
    /// next refresh.
    pub fn use_dynamic_signing_key(mut self, dynamic: bool) -> Self {
        self.use_dynamic_signing_key = dynamic;
        self
    }

    /// Check the database on every verification by default (revocation takes effect at once).
    pub fn check_database(mut self, check: bool) -> Self {
        self.check_database = check;
        self
    }

    /// Also send `st-access-token` in cookie mode (for apps that forward the JWT).
    pub fn expose_access_token_in_cookie_mode(mut self, expose: bool) -> Self {
        self.expose_access_token_in_cookie_mode = expose;
        self
    }

    /// Anonymous sessions on (default) or off (A4). Turning them off makes the SDK clear any
    /// anonymous token it receives, draining existing anonymous sessions (A18).
    pub fn anonymous_sessions(mut self, enabled: bool) -> Self {
        self.anonymous_enabled = enabled;
        self
    }

    /// Mints no anonymous token on paths starting with `prefix` (health checks, static assets:
    /// their responses then carry no `Set-Cookie` and stay cacheable) (B2). Requests there
    /// still see an anonymous session a visitor already has.
    pub fn anonymous_exclude_path_prefix(mut self, prefix: &str) -> Self {
        self.anonymous_exclude.push(prefix.to_owned());
        self
    }

    /// Sign-out starts a new anonymousId instead of keeping the visitor's (B1; for shared
    /// devices). Off by default.
    pub fn rotate_anonymous_id_on_sign_out(mut self, rotate: bool) -> Self {
        self.rotate_anonymous_id_on_sign_out = rotate;
        self
    }

    /// Accepts an anonymous-session cookie that is not `__Host-` (no `Secure`, or a cookie
    /// domain), which [`Self::build`] otherwise refuses (SEC2-H2). Without the prefix, a page on
    /// a sibling subdomain, or any plain-http page of the site (a network attacker can forge
    /// one), can plant its own anonymous token in the visitor's browser and so fix the
    /// visitor's anonymousId: it then sees the guest data the visitor adds, and what the app
    /// moves into the account at sign-in unless the app empties the guest copy as it moves it
    /// (see [`crate::Tessera::with_sign_in_hook`]). Acceptable for local development over plain
    /// http (browsers also accept `secure(true)` on `http://localhost`) or where no other
    /// host of the site is untrusted.
    ///
    /// ```
    /// let config = tessera_axum::Config::builder("http://localhost:8080", "http://localhost:8080")
    ///     .allow_plantable_anonymous_cookie(true)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.anonymous_cookie_name(), "sAnonymousToken");
    /// ```
    pub fn allow_plantable_anonymous_cookie(mut self, allow: bool) -> Self {
        self.allow_plantable_anonymous_cookie = allow;
        self
    }

    /// Validates and resolves the automatic choices.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] that says what to change: malformed domains or paths, equal status
    /// codes, `SameSite=None` cookies that are not `Secure`, anti-CSRF `NONE` with
    /// `SameSite=None`, and anonymous sessions in a cookie that cannot be `__Host-` (unless
    /// [`Self::allow_plantable_anonymous_cookie`]).
    pub fn build(self) -> Result<Config, ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let api =
            Origin::parse(&self.api_domain).map_err(|e| ConfigError(format!("apiDomain {e}")))?;
        let website = Origin::parse(&self.website_domain)
            .map_err(|e| ConfigError(format!("websiteDomain {e}")))?;
        let base = normalise_path(&self.api_base_path);
        if base.is_empty() {
            return err("api_base_path must not be empty or '/' (use e.g. /auth)".into());
        }
        if self.session_expired_status == self.invalid_claim_status {
            return err("session_expired_status and invalid_claim_status must be different".into());
        }
        for status in [self.session_expired_status, self.invalid_claim_status] {
            if !(400..500).contains(&status) {
                return err(format!("status {status} must be a 4xx code"));
            }
        }
        let cross = cross_site(&api, &website).map_err(ConfigError)?;
        let same_site =
            self.same_site
                .unwrap_or(if cross { SameSite::None } else { SameSite::Lax });
        let secure = self.secure.unwrap_or_else(|| api.is_https());
        let anti_csrf = self.anti_csrf.unwrap_or(if same_site == SameSite::None {
            AntiCsrfMode::ViaCustomHeader
        } else {
            AntiCsrfMode::None
        });
        let both_local = is_local(&api.host) && is_local(&website.host);
        let cookies_possible = self.transfer != TokenTransfer::Header;
        if cookies_possible && same_site == SameSite::None && !secure && !both_local {
            return err(
                "SameSite=None cookies must be Secure: serve the API over https (apiDomain \
                 https://…), or use token_transfer(TokenTransfer::Header), or put the API and \
                 the website on the same site"
                    .into(),
            );
        }
        if cookies_possible && same_site == SameSite::None && anti_csrf == AntiCsrfMode::None {
            return err(
                "anti-CSRF NONE with SameSite=None lets any site send authenticated requests: \
                 use AntiCsrfMode::ViaCustomHeader or ViaToken, or SameSite Lax/Strict"
                    .into(),
            );
        }
        let cookie_domain = self
            .cookie_domain
            .as_deref()
            .map(normalise_cookie_domain)
            .transpose()?;
        let older_cookie_domain = self
            .older_cookie_domain
            .as_deref()
            .map(normalise_cookie_domain)
            .transpose()?;
        let host_prefixed = secure && cookie_domain.is_none();
        if self.anonymous_enabled
            && cookies_possible
            && !host_prefixed
            && !self.allow_plantable_anonymous_cookie
        {
            return err(
                "anonymous sessions in cookies need a __Host- cookie (Secure, no cookie domain); \
                 without one a sibling subdomain or a plain-http page can plant a visitor's \
                 anonymousId. Serve the API over https or set secure(true) (browsers accept it \
                 on http://localhost), remove cookie_domain, use \
                 token_transfer(TokenTransfer::Header), turn anonymous_sessions(false), or \
                 accept the risk with allow_plantable_anonymous_cookie(true)"
                    .into(),
            );
        }
        let anonymous = AnonymousOptions {
            enabled: self.anonymous_enabled,
            exclude_prefixes: self.anonymous_exclude.clone(),
            rotate_id_on_sign_out: self.rotate_anonymous_id_on_sign_out,
            cookie_name: if host_prefixed {
                "__Host-sAnonymousToken"
            } else {
                "sAnonymousToken"
            },
        };
        let access_token_path = match normalise_path(&self.access_token_path) {
            p if p.is_empty() => "/".to_owned(),
            p => p,
        };
        let dbsc = self.dbsc.as_ref().map(|d| DbscPaths {
            register: format!("{base}/session/dbsc/register"),
            refresh: format!("{base}/session/refresh/dbsc"),
            include_site: d.include_site,
        });
        Ok(Config {
            dbsc,
            refresh_path: format!("{base}/session/refresh"),
            signout_path: format!("{base}/signout"),
            api_base_path: base,
            access_token_path,
            api,
            website,
            cookie_domain,
            older_cookie_domain,
            transfer: self.transfer,
            anti_csrf,
            same_site,
            secure,
            session_expired_status: self.session_expired_status,
            invalid_claim_status: self.invalid_claim_status,
            use_dynamic_signing_key: self.use_dynamic_signing_key,
            check_database: self.check_database,
            expose_access_token_in_cookie_mode: self.expose_access_token_in_cookie_mode,
            anonymous,
        })
    }
}

/// `auth/` → `/auth`; `/` → `` (empty).
fn normalise_path(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// Trim, lower-case, keep a leading dot, refuse anything that is not a host name.
fn normalise_cookie_domain(input: &str) -> Result<String, ConfigError> {
    let lowered = input.trim().to_ascii_lowercase();
    let had_dot = lowered.starts_with('.');
    let bare = lowered.trim_start_matches('.');
    let origin = Origin::parse(bare)
        .map_err(|_| ConfigError(format!("cookie domain {input:?} is not a valid host")))?;
    if is_local(&origin.host) || !had_dot {
        Ok(origin.host)
    } else {
        Ok(format!(".{}", origin.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(api: &str, web: &str) -> Result<Config, ConfigError> {
        Config::builder(api, web)
            .allow_plantable_anonymous_cookie(true)
            .build()
    }

    #[test]
    fn automatic_choices_follow_the_domains() {
        let c = cfg("http://localhost:8080", "http://localhost:8080").unwrap();
        assert_eq!(
            (c.same_site, c.secure, c.anti_csrf),
            (SameSite::Lax, false, AntiCsrfMode::None)
        );
        let c = cfg("https://api.example.com", "https://www.example.com").unwrap();
        assert_eq!(
            (c.same_site, c.secure, c.anti_csrf),
            (SameSite::Lax, true, AntiCsrfMode::None)
        );
        let c = cfg("https://api.example.com", "https://app.other.com").unwrap();
        assert_eq!(
            (c.same_site, c.secure, c.anti_csrf),
            (SameSite::None, true, AntiCsrfMode::ViaCustomHeader)
        );
        assert_eq!(c.refresh_path(), "/auth/session/refresh");
        assert_eq!(c.issuer(), "https://api.example.com/auth");
    }

    #[test]
    fn unsafe_combinations_are_refused_with_advice() {
        let e = cfg("http://api.example.com", "http://app.other.com").unwrap_err();
        assert!(e.0.contains("must be Secure"), "{e}");
        let ok = Config::builder("http://api.example.com", "http://app.other.com")
            .token_transfer(TokenTransfer::Header)
            .build();
        assert!(ok.is_ok(), "header mode has no cookies to protect");
        let e = Config::builder("https://api.example.com", "https://app.other.com")
            .anti_csrf(AntiCsrfMode::None)
            .build()
            .unwrap_err();
        assert!(e.0.contains("anti-CSRF NONE with SameSite=None"), "{e}");
        let e = Config::builder("http://localhost", "http://localhost")
            .session_expired_status(403)
            .build()
            .unwrap_err();
        assert!(e.0.contains("must be different"));
        assert!(Config::builder("http://localhost", "http://localhost")
            .api_base_path("/")
            .build()
            .is_err());
    }

    #[test]
    fn cookie_domains_are_normalised() {
        assert_eq!(
            normalise_cookie_domain(" .Example.com ").unwrap(),
            ".example.com"
        );
        assert_eq!(
            normalise_cookie_domain("example.com").unwrap(),
            "example.com"
        );
        assert_eq!(normalise_cookie_domain(".localhost").unwrap(), "localhost");
        assert!(normalise_cookie_domain("").is_err());
    }
}
