//! What makes the demo origin's responses cacheable the way a real origin's
//! are: their `Cache-Control`, validators (`ETag`, `Last-Modified`) and
//! `Vary`, and the answer to a client's (or a cache's) conditional request
//! (RFC 9110 §13): `304 Not Modified` when the stored copy is still current.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::{full, DemoBody};

/// How a cacheable route describes its response to caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CachePolicy {
    /// The `Cache-Control` field value (RFC 9111 §5.2.2), e.g. `max-age=60`.
    pub(super) cache_control: String,
    /// The strong entity tag, with its quotes (RFC 9110 §8.8.3), e.g.
    /// `"static-v1"`; `None` sends no `ETag`.
    pub(super) etag: Option<String>,
    /// Whether to send `Last-Modified` ([`last_modified`]).
    pub(super) last_modified: bool,
    /// The `Vary` field value (RFC 9110 §12.5.5), e.g. `Accept-Encoding`.
    pub(super) vary: Option<&'static str>,
}

impl CachePolicy {
    /// `cache_control` with the strong tag `etag` (quoted) and a
    /// `Last-Modified`, so that both kinds of conditional request work.
    pub(super) fn validated(cache_control: String, etag: String) -> Self {
        CachePolicy {
            cache_control,
            etag: Some(etag),
            last_modified: true,
            vary: None,
        }
    }

    /// Only a `Cache-Control` field, no validators.
    pub(super) fn cache_control(cache_control: &str) -> Self {
        CachePolicy {
            cache_control: cache_control.to_owned(),
            etag: None,
            last_modified: false,
            vary: None,
        }
    }

    /// Adds the policy's fields to `resp`. A value that is not a valid field
    /// value (it cannot happen with the routes' ASCII strings) is left out.
    pub(super) fn apply(&self, resp: &mut Response<DemoBody>) {
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.cache_control) {
            headers.insert(header::CACHE_CONTROL, v);
        }
        if let Some(etag) = self
            .etag
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            headers.insert(header::ETAG, etag);
        }
        if self.last_modified {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(last_modified())) {
                headers.insert(header::LAST_MODIFIED, v);
            }
        }
        if let Some(vary) = self.vary {
            headers.insert(header::VARY, HeaderValue::from_static(vary));
        }
    }

    /// The `304 Not Modified` answer when `method` and the request's
    /// conditional fields say the client's copy is current, else `None`.
    ///
    /// RFC 9110 §13.2.2 order: `If-None-Match` when present (weak comparison,
    /// `*` matches any current representation, §13.1.2); otherwise
    /// `If-Modified-Since`, ignored when it is not a valid HTTP-date
    /// (§13.1.3). Only GET and HEAD are answered 304. The 304 carries the
    /// fields a 200 would have had for caches to update their copy
    /// (`Cache-Control`, `ETag`, `Last-Modified`, `Vary`; §15.4.5).
    pub(super) fn not_modified(
        &self,
        method: &Method,
        req: &HeaderMap,
    ) -> Option<Response<DemoBody>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let current = if req.contains_key(header::IF_NONE_MATCH) {
            let etag = self.etag.as_deref()?;
            req.get_all(header::IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|list| if_none_match_hits(list, etag))
        } else if let Some(since) = req.get(header::IF_MODIFIED_SINCE) {
            if !self.last_modified {
                return None;
            }
            let since = since
                .to_str()
                .ok()
                .and_then(|s| httpdate::parse_http_date(s).ok())?;
            last_modified() <= since
        } else {
            false
        };
        if !current {
            return None;
        }
        let mut resp = Response::new(full(bytes::Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        self.apply(&mut resp);
        Some(resp)
    }
}

/// Whether the `If-None-Match` list `list` names `etag` under the weak
/// comparison (RFC 9110 §8.8.3.2: opaque tags equal, `W/` ignored), or is `*`.
fn if_none_match_hits(list: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = opaque(etag);
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || opaque(t) == want)
}

/// The `Last-Modified` time of every validated route: when this process's
/// demo origin first needed it, in whole seconds (an HTTP-date has no
/// fraction, and a validator must compare equal to what was sent).
pub(super) fn last_modified() -> SystemTime {
    static STARTED: OnceLock<SystemTime> = OnceLock::new();
    *STARTED.get_or_init(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UNIX_EPOCH + Duration::from_secs(secs)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> CachePolicy {
        CachePolicy::validated("max-age=60".into(), "\"t-1\"".into())
    }

    fn req(fields: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_star() {
        assert!(if_none_match_hits("\"t-1\"", "\"t-1\""));
        assert!(if_none_match_hits("W/\"t-1\"", "\"t-1\""));
        assert!(if_none_match_hits("\"a\", \"t-1\"", "\"t-1\""));
        assert!(if_none_match_hits("*", "\"t-1\""));
        assert!(!if_none_match_hits("\"t-2\"", "\"t-1\""));
        assert!(!if_none_match_hits("t-1", "\"t-1\""));
    }

    #[test]
    fn matching_etag_gets_304_with_the_cache_fields() {
        let p = CachePolicy {
            vary: Some("Accept-Encoding"),
            ..policy()
        };
        let r = p
            .not_modified(&Method::GET, &req(&[("if-none-match", "\"t-1\"")]))
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], "\"t-1\"");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
        assert!(r.headers().contains_key(header::LAST_MODIFIED));
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let later = httpdate::fmt_http_date(last_modified() + Duration::from_secs(3600));
        let h = req(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &later),
        ]);
        assert!(policy().not_modified(&Method::GET, &h).is_none());
    }

    #[test]
    fn if_modified_since_compares_with_last_modified() {
        let at = httpdate::fmt_http_date(last_modified());
        let before = httpdate::fmt_http_date(last_modified() - Duration::from_secs(1));
        let p = policy();
        assert!(p
            .not_modified(&Method::HEAD, &req(&[("if-modified-since", &at)]))
            .is_some());
        assert!(p
            .not_modified(&Method::GET, &req(&[("if-modified-since", &before)]))
            .is_none());
        assert!(p
            .not_modified(&Method::GET, &req(&[("if-modified-since", "yesterday")]))
            .is_none());
    }

    #[test]
    fn only_get_and_head_are_answered_304() {
        let h = req(&[("if-none-match", "*")]);
        assert!(policy().not_modified(&Method::POST, &h).is_none());
        assert!(policy().not_modified(&Method::GET, &h).is_some());
    }

    #[test]
    fn no_validators_no_304() {
        let p = CachePolicy::cache_control("max-age=60");
        assert!(p
            .not_modified(&Method::GET, &req(&[("if-none-match", "*")]))
            .is_none());
        let at = httpdate::fmt_http_date(last_modified());
        assert!(p
            .not_modified(&Method::GET, &req(&[("if-modified-since", &at)]))
            .is_none());
    }
}
