//! Response changes collected while a request is handled (new tokens after a promotion, cleared
//! cookies before an error handler runs) and applied by the layer to whatever response the app
//! returns.

use http::header::{HeaderMap, HeaderName, HeaderValue, ACCESS_CONTROL_EXPOSE_HEADERS, SET_COOKIE};
use std::sync::{Arc, Mutex, PoisonError};

/// Pending header and cookie changes.
#[derive(Debug, Default, Clone)]
pub(crate) struct ResponseChanges {
    cookies: Vec<(String, String)>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
    expose: Vec<&'static str>,
}

impl ResponseChanges {
    /// Sets a cookie; a later change to the same name replaces an earlier one.
    pub(crate) fn set_cookie(&mut self, name: &str, set_cookie: String) {
        self.cookies.retain(|(n, _)| n != name);
        self.cookies.push((name.to_owned(), set_cookie));
    }

    /// Sets (or, with `None`, removes) a header and lists it in
    /// `Access-Control-Expose-Headers` when `expose` is true.
    pub(crate) fn set_header(&mut self, name: &'static str, value: Option<&str>, expose: bool) {
        let header = HeaderName::from_static(name);
        self.headers.retain(|(n, _)| n != header);
        let value = value.and_then(|v| HeaderValue::from_str(v).ok());
        self.headers.push((header, value));
        if expose && !self.expose.contains(&name) {
            self.expose.push(name);
        }
    }

    /// Writes the changes into `headers`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for (_, cookie) in &self.cookies {
            if let Ok(v) = HeaderValue::from_str(cookie) {
                headers.append(SET_COOKIE, v);
            }
        }
        for (name, value) in &self.headers {
            match value {
                Some(v) => {
                    headers.insert(name.clone(), v.clone());
                }
                None => {
                    headers.remove(name);
                }
            }
        }
        if !self.expose.is_empty() {
            let mut current = headers
                .get(ACCESS_CONTROL_EXPOSE_HEADERS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            for name in &self.expose {
                if !current.contains(name) {
                    if !current.is_empty() {
                        current.push_str(", ");
                    }
                    current.push_str(name);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&current) {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
            }
        }
        if !self.cookies.is_empty() || self.headers.iter().any(|(_, v)| v.is_some()) {
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
        }
    }

    /// True when nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.cookies.is_empty() && self.headers.is_empty()
    }
}

/// Shared by the layer and the extractors of one request.
#[derive(Debug, Default, Clone)]
pub(crate) struct ChangeSink(Arc<Mutex<Pending>>);

/// What the sink holds: the response changes, and the access tokens that replaced a
/// [`crate::Session`]'s own in this request (by session id), which outlive the response.
#[derive(Debug, Default)]
struct Pending {
    changes: ResponseChanges,
    session_tokens: Vec<(u64, Arc<str>)>,
}

impl ChangeSink {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut ResponseChanges) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard.changes)
    }

    pub(crate) fn take(&self) -> ResponseChanges {
        self.with(std::mem::take)
    }

    /// The access token that replaced session `id`'s own (see [`Self::set_session_token`]).
    pub(crate) fn session_token(&self, id: u64) -> Option<Arc<str>> {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let found = guard.session_tokens.iter().find(|(i, _)| *i == id);
        found.map(|(_, token)| Arc::clone(token))
    }

    /// Records `token` as session `id`'s current access token (seen by every clone of it).
    pub(crate) fn set_session_token(&self, id: u64, token: Arc<str>) {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        guard.session_tokens.retain(|(i, _)| *i != id);
        guard.session_tokens.push((id, token));
    }

    /// Takes the pending changes and writes them into `headers` (nothing when none).
    pub(crate) fn apply_to(&self, headers: &mut HeaderMap) {
        let changes = self.take();
        if !changes.is_empty() {
            changes.apply(headers);
        }
    }
}
