//! Sites and schemes of the configured domains: what decides the automatic SameSite, Secure and
//! anti-CSRF choices.

/// A normalised origin: scheme and host (port dropped for site comparisons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host name or IP literal.
    pub host: String,
    /// `scheme://host[:port]` as given, normalised.
    pub serialised: String,
}

impl Origin {
    /// Parses `https://api.example.com`, `http://localhost:3000`, or a bare host (which gets
    /// `http://` for localhost/IP and `https://` otherwise, as the SuperTokens SDKs do).
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim().to_ascii_lowercase();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, r)) => (s.to_owned(), r.to_owned()),
            None => {
                let host = trimmed.split(':').next().unwrap_or_default();
                let scheme = if is_local(host) { "http" } else { "https" };
                (scheme.to_owned(), trimmed.clone())
            }
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("{input:?}: the scheme must be http or https"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.trim_end_matches('/');
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default().to_owned()
        } else {
            authority.split(':').next().unwrap_or_default().to_owned()
        };
        if host.is_empty() {
            return Err(format!("{input:?}: no host"));
        }
        Ok(Self {
            serialised: format!("{scheme}://{authority}"),
            scheme,
            host,
        })
    }

    /// True for `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// The site: `localhost` for localhost and IP addresses, else the registrable domain
    /// (eTLD+1, private suffixes included).
    pub fn site(&self) -> Result<String, String> {
        if is_local(&self.host) {
            return Ok("localhost".into());
        }
        match psl::domain_str(&self.host) {
            Some(d) => Ok(d.to_owned()),
            None if self.host.ends_with(".local") => Ok(self.host.clone()),
            None => Err(format!(
                "{}: cannot find the registrable domain; check apiDomain and websiteDomain",
                self.host
            )),
        }
    }
}

/// localhost, `localhost.*` and IP literals all count as one local site.
pub fn is_local(host: &str) -> bool {
    host.starts_with("localhost") || host.parse::<std::net::IpAddr>().is_ok()
}

/// True when the two origins are cross-site for cookies: different sites or different schemes.
pub fn cross_site(api: &Origin, website: &Origin) -> Result<bool, String> {
    Ok(api.scheme != website.scheme || api.site()? != website.site()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Origin {
        Origin::parse(s).unwrap()
    }

    #[test]
    fn sites_follow_the_verified_table() {
        // browser-protocol.md §5.1
        assert!(!cross_site(&o("http://localhost:8080"), &o("http://localhost:8080")).unwrap());
        assert!(!cross_site(&o("http://localhost:8084"), &o("http://127.0.0.1:3000")).unwrap());
        assert!(!cross_site(&o("https://api.example.com"), &o("https://www.example.com")).unwrap());
        assert!(cross_site(&o("https://api.example.com"), &o("https://app.other.com")).unwrap());
        assert!(cross_site(&o("http://api.example.com"), &o("http://app.other.com")).unwrap());
        assert!(cross_site(&o("http://example.com"), &o("https://example.com")).unwrap());
        // Private suffixes: two GitHub Pages sites are different sites.
        assert!(cross_site(&o("https://a.github.io"), &o("https://b.github.io")).unwrap());
    }

    #[test]
    fn parsing_normalises() {
        assert_eq!(o("API.Example.com/").serialised, "https://api.example.com");
        assert_eq!(o("localhost:3000").serialised, "http://localhost:3000");
        assert_eq!(o("http://[::1]:8080").host, "::1");
        assert!(Origin::parse("ftp://x").is_err());
        assert!(Origin::parse("http://").is_err());
    }
}
