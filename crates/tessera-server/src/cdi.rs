//! The `cdi-version` header: which versions exist, and the core's rules for checking one.

use std::cmp::Ordering;

/// CDI versions this server speaks, oldest first. Session and JWT behaviour is that of CDI 5.x;
/// 4.0 differs only in details this server honours (optional `useDynamicSigningKey` on refresh,
/// no public-tenant-only checks).
/// 5.5 has no session change; 5.6 makes a database-checked verify stateless (see
/// `routes::session::verify`).
pub const SUPPORTED: &[&str] = &["4.0", "5.0", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6"];

/// A parsed `X.Y[.Z…]` version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdiVersion {
    text: String,
    parts: Vec<u32>,
}

impl CdiVersion {
    /// Parses `[0-9]+(\.[0-9]+)*`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let parts = text
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    p.parse::<u32>().ok()
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The numeric components.
    pub fn parts(&self) -> &[u32] {
        &self.parts
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for `major.minor` at or above the given one.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.cmp_parts(&[major, minor]) != Ordering::Less
    }

    fn cmp_parts(&self, other: &[u32]) -> Ordering {
        let n = self.parts.len().max(other.len());
        for i in 0..n {
            let a = self.parts.get(i).copied().unwrap_or(0);
            let b = other.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }

    fn cmp(&self, other: &CdiVersion) -> Ordering {
        self.cmp_parts(&other.parts)
    }
}

/// The version rules of one server.
#[derive(Debug, Clone)]
pub struct CdiPolicy {
    max: CdiVersion,
    min: Option<CdiVersion>,
}

impl CdiPolicy {
    /// A policy with an optional configured max and min.
    pub fn new(max: Option<CdiVersion>, min: Option<CdiVersion>) -> Self {
        let latest = SUPPORTED
            .last()
            .and_then(|v| CdiVersion::parse(v))
            .unwrap_or(CdiVersion {
                text: "5.6".into(),
                parts: vec![5, 6],
            });
        Self {
            max: max.unwrap_or(latest),
            min,
        }
    }

    /// The supported versions up to the max, for `/apiversion`.
    pub fn listed(&self) -> Vec<&'static str> {
        SUPPORTED
            .iter()
            .copied()
            .filter(|v| CdiVersion::parse(v).is_some_and(|p| p.cmp(&self.max) != Ordering::Greater))
            .collect()
    }

    /// Checks a request's header. `strict` APIs also need the version in the supported set.
    /// Returns the version to use, or the 400 text.
    pub fn check(&self, header: Option<&str>, strict: bool) -> Result<CdiVersion, String> {
        let Some(text) = header else {
            return Ok(self.max.clone());
        };
        let text = text.trim();
        let version = CdiVersion::parse(text).ok_or("cdi-version header is invalid")?;
        if version.cmp(&self.max) == Ordering::Greater {
            return Err(format!("cdi-version {text} not supported"));
        }
        if let Some(min) = &self.min {
            if version.cmp(min) == Ordering::Less {
                return Err(format!(
                    "cdi-version {text} is lower than the minimum allowed version {}",
                    min.as_str()
                ));
            }
        }
        if strict && !SUPPORTED.contains(&text) {
            return Err(format!("cdi-version {text} not supported"));
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules() {
        let p = CdiPolicy::new(None, CdiVersion::parse("4.0"));
        assert_eq!(p.check(None, true).unwrap().as_str(), "5.6");
        assert_eq!(p.check(Some("5.6"), true).unwrap().as_str(), "5.6");
        assert_eq!(p.check(Some("5.5"), true).unwrap().as_str(), "5.5");
        assert_eq!(p.check(Some("5.4"), true).unwrap().as_str(), "5.4");
        assert_eq!(
            p.check(Some("x"), false).unwrap_err(),
            "cdi-version header is invalid"
        );
        assert_eq!(
            p.check(Some("5.7"), false).unwrap_err(),
            "cdi-version 5.7 not supported"
        );
        assert_eq!(
            p.check(Some("5.4.0"), true).unwrap_err(),
            "cdi-version 5.4.0 not supported"
        );
        assert!(p.check(Some("5.4.0"), false).is_ok());
        assert_eq!(
            p.check(Some("3.0"), false).unwrap_err(),
            "cdi-version 3.0 is lower than the minimum allowed version 4.0"
        );
        assert!(p.listed().contains(&"5.4"));
        assert_eq!(p.listed().last(), Some(&"5.6"));
        let capped = CdiPolicy::new(CdiVersion::parse("5.0"), None);
        assert_eq!(capped.listed(), vec!["4.0", "5.0"]);
    }
}
