//! The core's path prefixes: every API path `P` is also reachable as `/<tenant>P`,
//! `/appid-<app>P` and `/appid-<app>/<tenant>P`. Matching is case-insensitive and a trailing `/`
//! is allowed.
//!
//! A tenant id is 1 to [`MAX_TENANT_ID_LEN`] bytes of `[a-z0-9-]` and never starts with
//! `appid-` (it would read as an app prefix, SEC2-L6). A segment in the tenant's place in front
//! of a known API that breaks these rules is a 400, never another tenant or app; the core's
//! own segments (`recipe`, `config`, `users`, `hello`) are never tenants (404).
//!
//! ```
//! use tessera_server::paths::{resolve, PathError};
//! let known = |p: &str| p == "/recipe/session";
//! let r = resolve("/appid-shop/Acme/recipe/session", "", known).unwrap();
//! assert_eq!((r.app_id.as_str(), r.tenant_id.as_str()), ("shop", "acme"));
//! assert_eq!(resolve("/appid-shop/appid-x/recipe/session", "", known), Err(PathError::BadTenant));
//! assert_eq!(resolve("/nope/nope", "", known), Err(PathError::NotFound));
//! ```

use tessera::PUBLIC;

/// A request path split into app, tenant and API path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// App id (`public` by default).
    pub app_id: String,
    /// Tenant id (`public` by default).
    pub tenant_id: String,
    /// True when the path named a tenant explicitly.
    pub tenant_in_path: bool,
    /// The API path, lower-cased, without prefixes or trailing `/` (`""` for the root).
    pub api: String,
}

/// Longest tenant id accepted, in bytes (the SDK's remote client uses the same bound).
pub const MAX_TENANT_ID_LEN: usize = 64;

/// Why a path names no API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// No API there (404).
    NotFound,
    /// A known API behind a malformed tenant id (400).
    BadTenant,
}

/// True for a well-formed tenant id (already lower-cased).
pub fn is_tenant_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TENANT_ID_LEN && is_id(s) && !s.starts_with("appid-")
}

/// Segments that are never tenants.
const NOT_TENANTS: &[&str] = &["recipe", "config", "users", "hello"];

fn is_id(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Splits `path` after removing `base_path`. `known` says whether an API path exists.
///
/// # Errors
///
/// [`PathError::NotFound`] when no API matches, [`PathError::BadTenant`] when one would but the
/// tenant segment is malformed.
pub fn resolve(
    path: &str,
    base_path: &str,
    known: impl Fn(&str) -> bool,
) -> Result<ResolvedPath, PathError> {
    resolve_parts(path, base_path, known).unwrap_or(Err(PathError::NotFound))
}

fn resolve_parts(
    path: &str,
    base_path: &str,
    known: impl Fn(&str) -> bool,
) -> Option<Result<ResolvedPath, PathError>> {
    let lower = path.to_ascii_lowercase();
    let rest = if base_path.is_empty() {
        lower.as_str()
    } else {
        let r = lower.strip_prefix(base_path)?;
        if !(r.is_empty() || r.starts_with('/')) {
            return None;
        }
        r
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.ends_with('/') {
        return None;
    }
    let (app_id, rest) = match rest.strip_prefix("/appid-") {
        Some(after) => {
            let (app, tail) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            if !is_id(app) {
                return None;
            }
            let app = if app.is_empty() { PUBLIC } else { app };
            (app.to_owned(), tail)
        }
        None => (PUBLIC.to_owned(), rest),
    };
    if rest.is_empty() || known(rest) {
        return Some(Ok(ResolvedPath {
            app_id,
            tenant_id: PUBLIC.into(),
            tenant_in_path: false,
            api: rest.to_owned(),
        }));
    }
    let after = rest.strip_prefix('/')?;
    let (tenant, tail) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    if NOT_TENANTS.contains(&tenant) || !(tail.is_empty() || known(tail)) {
        return None;
    }
    if !is_tenant_id(tenant) {
        return (!tail.is_empty()).then_some(Err(PathError::BadTenant));
    }
    Some(Ok(ResolvedPath {
        app_id,
        tenant_id: tenant.to_owned(),
        tenant_in_path: true,
        api: tail.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(p: &str) -> bool {
        matches!(p, "/recipe/session" | "/hello" | "/apiversion")
    }

    fn r(p: &str) -> Result<(String, String, String), PathError> {
        resolve(p, "", known).map(|r| (r.app_id, r.tenant_id, r.api))
    }

    fn t(a: &str, t: &str, p: &str) -> Result<(String, String, String), PathError> {
        Ok((a.into(), t.into(), p.into()))
    }

    const NF: Result<(String, String, String), PathError> = Err(PathError::NotFound);
    const NF_PATH: Result<ResolvedPath, PathError> = Err(PathError::NotFound);
    const BAD: Result<(String, String, String), PathError> = Err(PathError::BadTenant);

    #[test]
    fn prefixes() {
        assert_eq!(
            r("/recipe/session"),
            t("public", "public", "/recipe/session")
        );
        assert_eq!(
            r("/Recipe/Session/"),
            t("public", "public", "/recipe/session")
        );
        assert_eq!(
            r("/acme/recipe/session"),
            t("public", "acme", "/recipe/session")
        );
        assert_eq!(
            r("/appid-x1/recipe/session"),
            t("x1", "public", "/recipe/session")
        );
        assert_eq!(
            r("/appid-X1/t-2/recipe/session"),
            t("x1", "t-2", "/recipe/session")
        );
        assert_eq!(r("/appid-public/hello"), t("public", "public", "/hello"));
        assert_eq!(r("/apiversion"), t("public", "public", "/apiversion"));
        assert_eq!(r("/"), t("public", "public", ""));
        assert_eq!(r("/acme"), t("public", "acme", ""));
        assert_eq!(r("/appid-a"), t("a", "public", ""));
        assert_eq!(r("/nope/nope"), NF);
        assert_eq!(r("/recipe/nope"), NF);
        assert_eq!(r("/a_b/recipe/session"), BAD);
        assert_eq!(r("/a_b"), NF);
        assert_eq!(r("/a_b/nope"), NF);
        assert_eq!(r("/appid-a/appid-b/recipe/session"), BAD);
        assert_eq!(r("/appid-a/appid-/hello"), BAD);
        assert_eq!(r(&format!("/{}/hello", "t".repeat(65))), BAD);
        let longest = "t".repeat(64);
        assert_eq!(
            r(&format!("/{longest}/hello")),
            t("public", &longest, "/hello")
        );
        assert_eq!(r("/hello/recipe/session"), NF);
        assert_eq!(r("/recipe//"), NF);
        assert_eq!(
            resolve("/auth/hello", "/auth", known).map(|r| r.api),
            Ok("/hello".into())
        );
        assert_eq!(resolve("/hello", "/auth", known), NF_PATH);
        assert_eq!(resolve("/authx/hello", "/auth", known), NF_PATH);
    }
}
