//! Devices: the sessions a user can see and control (issue 15).
//!
//! The rules, in the order they apply:
//! 1. **Sign-in records the device**: the user agent (at most [`MAX_USER_AGENT_LEN`] bytes, cut
//!    at a character boundary, stored as given, never interpreted), the client IP (must parse
//!    as an IP address), and created = last active = signed in = now. With
//!    `sign_in_time_claim`, the access token carries the sign-in time as the protected claim
//!    `auth_time` (epoch seconds); off by default, because SuperTokens tokens have exactly
//!    the core's claim set (core SessionTest1) and SDK test suites check it.
//! 2. **Cap per user** (off by default): a sign-in that would give the user more than
//!    `max_sessions_per_user` live sessions either revokes the least recently active ones or
//!    is refused, as [`OverCap`] says.
//! 3. **Last active** moves only at refresh, at most once per `last_active_interval_ms`;
//!    verification never writes.
//! 4. **Idle timeout and absolute lifetime** (off by default) end a session at refresh and at
//!    every verify that reads the row, with the normal unauthorised answer; the row is deleted.
//! 5. **Listing**: the live sessions of one user in every tenant of the app, most recently
//!    active first, paged ([`DevicePage`], at most [`MAX_PAGE`] per page), the caller's marked.
//! 6. **Revoking one** only within the same user: a handle of another user is "not found".
//! 7. **Signing out the others**: every live session of the user but the current one.
//! 8. **Renewing the sign-in time** (after re-authentication) rewrites `signed_in_at` and
//!    re-issues the access token with the same expiry and lineage.

use super::SessionEngine;
use crate::error::{EngineError, InputError, SessionError, TryRefreshReason, UnauthorisedReason};
use crate::events::RevokeCause;
use crate::session::{plausible_handle, tenant_of_handle, Regenerated, SessionSummary};
use crate::store::{DeviceRow, SessionRow};
use crate::token::verify::verify_access_token;
use serde::Serialize;
use std::net::IpAddr;

/// Longest user agent kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_USER_AGENT_LEN: usize = 512;

/// Most sessions returned by one [`SessionEngine::list_devices`] call.
pub const MAX_PAGE: u32 = 100;

/// What a sign-in beyond the cap does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverCap {
    /// Revoke the least recently active sessions to make room (the default).
    #[default]
    RevokeLeastRecentlyActive,
    /// Refuse the sign-in ([`InputError::SessionLimitReached`]).
    RefuseSignIn,
}

/// Device, lifetime, cap and freshness settings of one app; everything is off by default.
/// Durations in milliseconds.
///
/// ```
/// let devices = tessera::DeviceConfig {
///     idle_timeout_ms: Some(30 * 60 * 1000),
///     max_sessions_per_user: Some(5),
///     ..Default::default()
/// };
/// devices.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceConfig {
    /// A session not refreshed for this long ends (`None`: never).
    pub idle_timeout_ms: Option<u64>,
    /// A session ends this long after it was created, however active (`None`: never).
    pub absolute_lifetime_ms: Option<u64>,
    /// Last-active is written at most once per this interval (0: at every refresh).
    pub last_active_interval_ms: u64,
    /// At most this many live sessions per user (`None`: no cap).
    pub max_sessions_per_user: Option<u32>,
    /// What a sign-in beyond the cap does.
    pub over_cap: OverCap,
    /// Put the sign-in time (`auth_time`) into access tokens (off by default: SuperTokens
    /// access tokens have exactly the core's claims; `tessera-axum` turns it on).
    pub sign_in_time_claim: bool,
}

impl DeviceConfig {
    /// Checks bounds; the message names the setting.
    ///
    /// # Errors
    /// [`EngineError::Config`] for a zero duration or cap, or an idle timeout not longer than
    /// the last-active interval (the session would end while active).
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::Config(m.to_owned()));
        if self.idle_timeout_ms == Some(0) || self.absolute_lifetime_ms == Some(0) {
            return bad("session idle timeout and absolute lifetime must be positive when set");
        }
        if self
            .idle_timeout_ms
            .is_some_and(|idle| idle <= self.last_active_interval_ms)
        {
            return bad("the session idle timeout must be longer than the last-active interval");
        }
        if self.max_sessions_per_user == Some(0) {
            return bad("max sessions per user must be at least 1 when set");
        }
        Ok(())
    }
}

/// The device a sign-in came from, as the caller saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The client IP (from the connection, or a forwarded header set by a trusted proxy).
    pub ip: Option<String>,
}

/// A page of [`SessionEngine::list_devices`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePage {
    /// Rows wanted (1 to [`MAX_PAGE`]; larger values are cut to it).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

impl Default for DevicePage {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
        }
    }
}

/// One session of a user as a device list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Session handle.
    pub handle: String,
    /// Tenant id.
    pub tenant_id: String,
    /// A short label derived from the user agent, e.g. "Chrome on Linux".
    pub label: String,
    /// The user agent seen at sign-in, as given (bounded).
    pub user_agent: Option<String>,
    /// The client IP seen at sign-in.
    pub ip: Option<String>,
    /// Session creation, epoch ms.
    pub created_at: u64,
    /// Last refresh (or creation), epoch ms.
    pub last_active_at: u64,
    /// Last sign-in or re-authentication, epoch ms.
    pub signed_in_at: u64,
    /// This is the caller's own session.
    pub current: bool,
}

/// A short human label for a user agent: "Chrome on Linux", "Safari on iPhone", "Firefox",
/// or "Unknown device", from the woothee dataset (no hand-written patterns).
///
/// ```
/// let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
///           Chrome/120.0.0.0 Safari/537.36";
/// assert_eq!(tessera::device_label(Some(ua)), "Chrome on Linux");
/// assert_eq!(tessera::device_label(None), "Unknown device");
/// ```
pub fn device_label(user_agent: Option<&str>) -> String {
    const UNKNOWN: &str = "UNKNOWN";
    let Some(parsed) = user_agent
        .filter(|ua| !ua.is_empty())
        .and_then(|ua| woothee::parser::Parser::new().parse(ua))
    else {
        return "Unknown device".into();
    };
    match (parsed.name, parsed.os) {
        (UNKNOWN, UNKNOWN) => "Unknown device".into(),
        (UNKNOWN, os) => os.to_owned(),
        (name, UNKNOWN) => name.to_owned(),
        (name, os) => format!("{name} on {os}"),
    }
}

/// True when the sign-in time in `claims` is at most `within_ms` before `now_ms`. A token
/// without the claim is not fresh.
///
/// ```
/// let mut claims: tessera::AccessTokenClaims = serde_json::from_value(serde_json::json!({
///     "sub": "u", "exp": 10, "iat": 1, "sessionHandle": "h", "refreshTokenHash1": "r",
///     "parentRefreshTokenHash1": null, "antiCsrfToken": null, "tId": "public", "rsub": "u",
///     "auth_time": 100
/// })).unwrap();
/// assert!(tessera::signed_in_within(&claims, 150_000, 100_000));
/// assert!(!tessera::signed_in_within(&claims, 401_000, 300_000));
/// claims.auth_time = None;
/// assert!(!tessera::signed_in_within(&claims, 100_000, u64::MAX));
/// ```
pub fn signed_in_within(claims: &crate::AccessTokenClaims, now_ms: u64, within_ms: u64) -> bool {
    claims
        .auth_time
        .is_some_and(|t| now_ms.saturating_sub(t.saturating_mul(1000)) <= within_ms)
}

/// Bounds and checks what a sign-in reported (rule 1).
pub(super) fn checked_device(device: DeviceInfo) -> Result<DeviceInfo, SessionError> {
    let ip = match device.ip {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<IpAddr>()
                .map_err(|_| {
                    SessionError::InvalidInput(InputError::Invalid(
                        "ip must be an IPv4 or IPv6 address".into(),
                    ))
                })?
                .to_string(),
        ),
    };
    let user_agent = device.user_agent.map(|mut ua| {
        if ua.len() > MAX_USER_AGENT_LEN {
            let mut cut = MAX_USER_AGENT_LEN;
            while !ua.is_char_boundary(cut) {
                cut -= 1;
            }
            ua.truncate(cut);
        }
        ua.replace('\0', "")
    });
    Ok(DeviceInfo { user_agent, ip })
}

impl SessionEngine {
    /// Rule 2: makes room for one more session of `user_id`, or refuses.
    pub(super) async fn make_room_for(&self, user_id: &str) -> Result<(), SessionError> {
        let Some(cap) = self.inner.devices.max_sessions_per_user else {
            return Ok(());
        };
        let now = self.now();
        let keep = cap - 1;
        let beyond = self
            .inner
            .store
            .list_devices(&self.inner.app_id, user_id, now, u32::MAX, keep)
            .await?;
        if beyond.is_empty() {
            return Ok(());
        }
        if self.inner.devices.over_cap == OverCap::RefuseSignIn {
            return Err(SessionError::InvalidInput(InputError::SessionLimitReached(
                cap,
            )));
        }
        let handles: Vec<(String, String)> = beyond
            .into_iter()
            .map(|l| (l.device.tenant_id, l.device.session_handle))
            .collect();
        let deleted = self
            .inner
            .store
            .delete_sessions(&self.inner.app_id, &handles)
            .await?;
        self.report_revoked(deleted, RevokeCause::Cap);
        Ok(())
    }

    /// Rule 1: the device row of a new session, inserted with it.
    pub(super) fn device_row(row: &SessionRow, device: DeviceInfo) -> DeviceRow {
        DeviceRow {
            app_id: row.app_id.clone(),
            tenant_id: row.tenant_id.clone(),
            session_handle: row.session_handle.clone(),
            user_agent: device.user_agent,
            ip: device.ip,
            created_at: row.created_at,
            last_active_at: row.created_at,
            signed_in_at: row.created_at,
        }
    }

    /// The sign-in time claim for a token minted now for a new session.
    pub(super) fn sign_in_claim(&self, signed_in_ms: u64) -> Option<u64> {
        self.inner
            .devices
            .sign_in_time_claim
            .then_some(signed_in_ms / 1000)
    }

    /// Rule 4: `row` unless the idle timeout or the absolute lifetime has ended it, in which
    /// case the session is deleted and `None` returned. Reads the device row only when an idle
    /// timeout is set.
    pub(super) async fn unless_lapsed(
        &self,
        row: Option<SessionRow>,
    ) -> Result<Option<SessionRow>, SessionError> {
        let Some(row) = row else { return Ok(None) };
        let config = &self.inner.devices;
        if config.idle_timeout_ms.is_none() && config.absolute_lifetime_ms.is_none() {
            return Ok(Some(row));
        }
        let now = self.now();
        let mut lapsed = config
            .absolute_lifetime_ms
            .is_some_and(|life| now >= row.created_at.saturating_add(life));
        if let (false, Some(idle)) = (lapsed, config.idle_timeout_ms) {
            let last_active = self
                .inner
                .store
                .get_device(&row.app_id, &row.tenant_id, &row.session_handle)
                .await?
                .map_or(row.created_at, |d| d.last_active_at);
            lapsed = now >= last_active.saturating_add(idle);
        }
        if !lapsed {
            return Ok(Some(row));
        }
        let deleted = self
            .inner
            .store
            .delete_sessions(
                &row.app_id,
                &[(row.tenant_id.clone(), row.session_handle.clone())],
            )
            .await?;
        self.report_revoked(deleted, RevokeCause::Lifetime);
        tracing::info!(session = %row.session_handle, "session lifetime ended; session revoked");
        Ok(None)
    }

    /// Rule 3: notes a refresh (last active, at most once per interval) and returns the
    /// sign-in time claim for the new access token.
    pub(super) async fn note_refresh(&self, row: &SessionRow) -> Result<Option<u64>, SessionError> {
        let now = self.now();
        let store = &self.inner.store;
        let device = store
            .get_device(&row.app_id, &row.tenant_id, &row.session_handle)
            .await?;
        let stale_before = now.saturating_sub(self.inner.devices.last_active_interval_ms);
        if device
            .as_ref()
            .is_some_and(|d| d.last_active_at <= stale_before && d.last_active_at < now)
        {
            store
                .touch_device(
                    &row.app_id,
                    &row.tenant_id,
                    &row.session_handle,
                    now,
                    stale_before,
                )
                .await?;
        }
        let signed_in = device.map_or(row.created_at, |d| d.signed_in_at);
        Ok(self.sign_in_claim(signed_in))
    }

    /// Lists the live sessions of `user_id` in every tenant of this app, most recently active
    /// first (rule 5), marking `current`. Sessions ended by the idle timeout or absolute
    /// lifetime are left out.
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine) -> Result<(), tessera::SessionError> {
    /// let devices = engine.list_devices("alice", None, Default::default()).await?;
    /// for d in &devices {
    ///     println!("{} {} last active {}", d.handle, d.label, d.last_active_at);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Engine`] when the store fails. An implausible user id lists nothing.
    pub async fn list_devices(
        &self,
        user_id: &str,
        current: Option<&str>,
        page: DevicePage,
    ) -> Result<Vec<Device>, SessionError> {
        if !plausible_handle(user_id) || page.limit == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let config = &self.inner.devices;
        let listed = self
            .inner
            .store
            .list_devices(
                &self.inner.app_id,
                user_id,
                now,
                page.limit.min(MAX_PAGE),
                page.offset,
            )
            .await?;
        Ok(listed
            .into_iter()
            .map(|l| l.device)
            .filter(|d| {
                let idle = config
                    .idle_timeout_ms
                    .is_some_and(|i| now >= d.last_active_at.saturating_add(i));
                let old = config
                    .absolute_lifetime_ms
                    .is_some_and(|a| now >= d.created_at.saturating_add(a));
                !idle && !old
            })
            .map(|d| Device {
                label: device_label(d.user_agent.as_deref()),
                current: current == Some(d.session_handle.as_str()),
                handle: d.session_handle,
                tenant_id: d.tenant_id,
                user_agent: d.user_agent,
                ip: d.ip,
                created_at: d.created_at,
                last_active_at: d.last_active_at,
                signed_in_at: d.signed_in_at,
            })
            .collect())
    }

    /// Revokes the session `handle` if it is a live session of `user_id` (rule 6); false
    /// ("not found") otherwise, also when it belongs to someone else.
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine, handle: &str) -> Result<(), tessera::SessionError> {
    /// if !engine.revoke_device("alice", handle).await? {
    ///     println!("no such session");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Engine`] when the store fails.
    pub async fn revoke_device(&self, user_id: &str, handle: &str) -> Result<bool, SessionError> {
        let Some(row) = self.live_row(handle).await? else {
            return Ok(false);
        };
        if row.user_id != user_id {
            return Ok(false);
        }
        let deleted = self
            .inner
            .store
            .delete_sessions(&row.app_id, &[(row.tenant_id, row.session_handle)])
            .await?;
        Ok(!self.report_revoked(deleted, RevokeCause::Device).is_empty())
    }

    /// Revokes every live session of the user of `current_handle` except that one (rule 7);
    /// returns the handles revoked. A current session that does not exist revokes nothing and
    /// answers unauthorised.
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine, mine: &str) -> Result<(), tessera::SessionError> {
    /// let revoked = engine.revoke_other_devices(mine).await?;
    /// println!("signed out {} other sessions", revoked.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Unauthorised`] when the current session does not exist;
    /// [`SessionError::Engine`] when the store fails.
    pub async fn revoke_other_devices(
        &self,
        current_handle: &str,
    ) -> Result<Vec<String>, SessionError> {
        let Some(current) = self.live_row(current_handle).await? else {
            return Err(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ));
        };
        let others: Vec<(String, String)> = self
            .inner
            .store
            .session_handles_for_user(&current.app_id, None, &current.user_id, self.now())
            .await?
            .into_iter()
            .filter(|(_, h)| *h != current.session_handle)
            .collect();
        let deleted = self
            .inner
            .store
            .delete_sessions(&current.app_id, &others)
            .await?;
        Ok(self.report_revoked(deleted, RevokeCause::Device))
    }

    /// After the user re-authenticated: sets the session's sign-in time to now and re-issues
    /// `access_token` with the new `auth_time`, the same expiry and lineage (rule 8).
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine, token: &str) -> Result<(), tessera::SessionError> {
    /// let renewed = engine.renew_sign_in_time(token).await?;
    /// let new_token = renewed.access_token.expect("token was not expired");
    /// # let _ = new_token; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::TryRefreshToken`] for a token that does not verify or has expired;
    /// [`SessionError::Unauthorised`] when its session is gone.
    pub async fn renew_sign_in_time(
        &self,
        access_token: &str,
    ) -> Result<Regenerated, SessionError> {
        let policy = self.verify_policy();
        let keys = self.inner.keys.load_full();
        let claims = match verify_access_token(access_token, &*keys, &policy) {
            Err(TryRefreshReason::KeyNotFound) if self.reload_for_unknown_kid().await? => {
                verify_access_token(access_token, &**self.inner.keys.load(), &policy)
            }
            other => other,
        }
        .map_err(SessionError::TryRefreshToken)?;
        let row = self
            .unless_lapsed(self.load_row(&claims).await?)
            .await?
            .filter(|r| r.expires_at > policy.now_ms)
            .ok_or(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ))?;
        let now = self.now();
        self.inner
            .store
            .set_signed_in_at(&row.app_id, &row.tenant_id, &row.session_handle, now)
            .await?;
        let new_claims = crate::AccessTokenClaims {
            iat: (now / 1000).min(claims.exp),
            auth_time: Some(now / 1000),
            ..claims
        };
        let token = self
            .mint_access_token(&new_claims, row.use_static_key)
            .await?;
        Ok(Regenerated {
            session: SessionSummary {
                handle: new_claims.session_handle,
                user_id: new_claims.sub,
                recipe_user_id: new_claims.rsub,
                user_data_in_jwt: new_claims.user_claims,
                tenant_id: new_claims.tenant_id,
            },
            access_token: Some(token),
        })
    }

    /// The row of a live session by handle (lifetimes applied), or `None`.
    async fn live_row(&self, handle: &str) -> Result<Option<SessionRow>, SessionError> {
        if !plausible_handle(handle) {
            return Ok(None);
        }
        let now = self.now();
        let row = self
            .inner
            .store
            .get_session(&self.inner.app_id, tenant_of_handle(handle), handle)
            .await?
            .filter(|r| r.expires_at > now);
        self.unless_lapsed(row).await
    }
}
