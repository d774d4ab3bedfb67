//! Cookie and header names of the protocol.

/// Access-token cookie.
pub const ACCESS_COOKIE: &str = "sAccessToken";
/// Refresh-token cookie (path: the refresh route).
pub const REFRESH_COOKIE: &str = "sRefreshToken";
/// Legacy cookie, only ever cleared.
pub const LEGACY_ID_REFRESH_COOKIE: &str = "sIdRefreshToken";
/// Access token in header mode.
pub const ACCESS_HEADER: &str = "st-access-token";
/// Refresh token in header mode.
pub const REFRESH_HEADER: &str = "st-refresh-token";
/// Session state for the browser SDK.
pub const FRONT_TOKEN: &str = "front-token";
/// Anti-CSRF token (VIA_TOKEN).
pub const ANTI_CSRF: &str = "anti-csrf";
/// Transfer mode requested by the browser SDK.
pub const AUTH_MODE: &str = "st-auth-mode";
/// Custom header for VIA_CUSTOM_HEADER.
pub const RID: &str = "rid";
