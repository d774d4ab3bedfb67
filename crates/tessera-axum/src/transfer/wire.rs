//! Where tokens travel ([`TokenLocation`]) and the percent coding of cookie values.

/// Where a token came from, or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLocation {
    /// Cookies.
    Cookie,
    /// Headers.
    Header,
}

impl TokenLocation {
    /// The other transfer method.
    pub(crate) fn other(self) -> Self {
        match self {
            Self::Cookie => Self::Header,
            Self::Header => Self::Cookie,
        }
    }
}

/// Percent-encodes a cookie value like JavaScript's `encodeURIComponent`.
///
/// ```
/// assert_eq!(tessera_axum::transfer::percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
/// ```
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes of a cookie value; malformed escapes are kept as they are.
///
/// ```
/// assert_eq!(tessera_axum::transfer::percent_decode("a%2Bb%zz"), "a+b%zz");
/// ```
pub fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips_refresh_tokens() {
        let rt = "ab+/cd==.0f.V2";
        let enc = percent_encode(rt);
        assert_eq!(enc, "ab%2B%2Fcd%3D%3D.0f.V2");
        assert_eq!(percent_decode(&enc), rt);
        assert_eq!(
            percent_decode("%zz%4"),
            "%zz%4",
            "malformed escapes are kept"
        );
        assert_eq!(percent_decode("%41"), "A");
    }
}
