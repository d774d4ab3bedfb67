//! The core's path prefixes: every API path `P` is also reachable as `/<tenant>P`,
//! `/appid-<app>P` and `/appid-<app>/<tenant>P`. Matching is case-insensitive and a trailing `/`
//! is allowed.

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

/// Segments that are never tenants.
const NOT_TENANTS: &[&str] = &["recipe", "config", "users", "hello"];

fn is_id(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Splits `path` after removing `base_path`. `known` says whether an API path exists;
/// `None` means no API matches (404).
pub fn resolve(path: &str, base_path: &str, known: impl Fn(&str) -> bool) -> Option<ResolvedPath> {
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
        return Some(ResolvedPath {
            app_id,
            tenant_id: PUBLIC.into(),
            tenant_in_path: false,
            api: rest.to_owned(),
        });
    }
    let after = rest.strip_prefix('/')?;
    let (tenant, tail) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    if tenant.is_empty() || !is_id(tenant) || NOT_TENANTS.contains(&tenant) {
        return None;
    }
    if tail.is_empty() || known(tail) {
        return Some(ResolvedPath {
            app_id,
            tenant_id: tenant.to_owned(),
            tenant_in_path: true,
            api: tail.to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(p: &str) -> bool {
        matches!(p, "/recipe/session" | "/hello" | "/apiversion")
    }

    fn r(p: &str) -> Option<(String, String, String)> {
        resolve(p, "", known).map(|r| (r.app_id, r.tenant_id, r.api))
    }

    fn t(a: &str, t: &str, p: &str) -> Option<(String, String, String)> {
        Some((a.into(), t.into(), p.into()))
    }

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
        assert_eq!(r("/nope/nope"), None);
        assert_eq!(r("/recipe/nope"), None);
        assert_eq!(r("/a_b/recipe/session"), None);
        assert_eq!(r("/recipe//"), None);
        assert_eq!(
            resolve("/auth/hello", "/auth", known).map(|r| r.api),
            Some("/hello".into())
        );
        assert_eq!(resolve("/hello", "/auth", known), None);
        assert_eq!(resolve("/authx/hello", "/auth", known), None);
    }
}
