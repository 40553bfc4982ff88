//! `Cache-Control` (RFC 9111 §5.2) and the targeted `CDN-Cache-Control`
//! (RFC 9213), parsed once into a [`CacheControl`].
//!
//! Syntax (RFC 9111 §5.2, RFC 9110 §5.6): a comma-separated list of
//! directives, `token [ "=" ( token / quoted-string ) ]`, with optional
//! whitespace around commas and `=`. Directive names are compared
//! case-insensitively (stored lowercased). Quoted values are unescaped
//! (`\"` → `"`). Several field lines are one list (RFC 9110 §5.3).
//!
//! The parser never fails: an element it cannot read (a name that is not a
//! token, an unterminated quote) is skipped up to the next comma and the
//! value is remembered as [`CacheControl::had_syntax_error`] (RFC 9213 uses
//! that to ignore an invalid targeted field).
//!
//! Choices where the RFC leaves room, all on the safe side for a shared
//! cache:
//! - Invalid delta-seconds (`max-age=abc`, `max-age=-1`, `max-age` without
//!   a value, `max-age=1.5`): the directive counts as `0`, so the response
//!   is stale (RFC 9111 §4.2.1: "caches are encouraged to consider
//!   responses that have invalid freshness information to be stale").
//! - Delta-seconds larger than 2^31 saturate at 2^31 (§1.2.2).
//! - Duplicates (`max-age=60, max-age=10`): §4.2.1 allows "the first
//!   occurrence" or "considered stale"; when the values differ, the
//!   directive counts as `0` (stale / no stale window) rather than trusting
//!   either. Equal duplicates are harmless.
//! - `private` and `no-cache` may be unqualified or carry field names
//!   (`private="Set-Cookie, X-User"`); if any occurrence is unqualified the
//!   directive applies to the whole response.

use std::borrow::Cow;

use proxy_core::http::{is_tchar, FieldLines, RequestHeader, ResponseHeader};

/// The largest delta-seconds value kept: 2^31 (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u32 = 1 << 31;

/// The name of the targeted field for CDNs (RFC 9213 §2).
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// One parsed directive: lowercased name and unescaped value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    name: Box<str>,
    value: Option<Box<str>>,
}

/// A `max-stale` request directive (RFC 9111 §5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` without a value: any staleness is acceptable.
    Any,
    /// `max-stale=N`: staleness up to `N` seconds is acceptable.
    Seconds(u32),
}

/// A parsed `Cache-Control` (or targeted) field.
///
/// Accessors for delta-seconds directives return `None` when the directive
/// is absent, `Some(0)` when it is invalid or conflicting (see the module
/// docs), else the value saturated at [`DELTA_SECONDS_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    directives: Vec<Directive>,
    syntax_error: bool,
    targeted: bool,
}

impl CacheControl {
    /// Parse the given field values (each one field line) as one list.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut cc = CacheControl::default();
        for v in values {
            parse_into(v, &mut cc);
        }
        cc
    }

    /// The response's `Cache-Control`, `None` when it has none.
    pub fn from_resp_headers(resp: &ResponseHeader) -> Option<Self> {
        Self::from_map(&resp.headers, "cache-control")
    }

    /// The request's `Cache-Control`, `None` when it has none.
    pub fn from_req_headers(req: &RequestHeader) -> Option<Self> {
        let mut values = req.field_values(&http::header::CACHE_CONTROL).peekable();
        values.peek()?;
        Some(Self::parse(values))
    }

    /// A targeted cache-control field `name` of the response (RFC 9213),
    /// e.g. [`CDN_CACHE_CONTROL`]. `None` when the field is absent, empty
    /// or invalid: the cache then uses `Cache-Control` and `Expires`
    /// (RFC 9213 §2.1). When `Some`, it replaces both for this cache
    /// ([`CacheControl::is_targeted`] is true).
    ///
    /// RFC 9213 defines the field as a Structured Fields Dictionary; like
    /// other Pingora-class caches this accepts the `Cache-Control` syntax,
    /// a superset for the directives that matter (`max-age=60`,
    /// `no-store`, `private="a"`), and counts an element the
    /// `Cache-Control` grammar cannot read as making the field invalid.
    pub fn from_resp_headers_named(name: &str, resp: &ResponseHeader) -> Option<Self> {
        let mut cc = Self::from_map(&resp.headers, name)?;
        if cc.syntax_error || cc.directives.is_empty() {
            return None;
        }
        cc.targeted = true;
        Some(cc)
    }

    fn from_map(map: &http::HeaderMap, name: &str) -> Option<Self> {
        let mut values = map.get_all(name).iter().peekable();
        values.peek()?;
        Some(Self::parse(values.map(|v| v.as_bytes())))
    }

    /// Whether this came from a targeted field (RFC 9213) rather than
    /// `Cache-Control`: `Expires` is then ignored.
    pub fn is_targeted(&self) -> bool {
        self.targeted
    }

    /// Whether some element could not be parsed (and was skipped).
    pub fn had_syntax_error(&self) -> bool {
        self.syntax_error
    }

    /// Whether the directive `name` (case-insensitive) is present, in any
    /// form. Works for extension directives too.
    pub fn has_key(&self, name: &str) -> bool {
        self.all(name).next().is_some()
    }

    /// The value of the first occurrence of `name` (unescaped), if it has
    /// one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .and_then(|d| d.value.as_deref())
    }

    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Directive> + 's {
        self.directives
            .iter()
            .filter(move |d| d.name.eq_ignore_ascii_case(name))
    }

    /// `public` (§5.2.2.9).
    pub fn public(&self) -> bool {
        self.has_key("public")
    }

    /// `private` in any form (§5.2.2.7). See
    /// [`CacheControl::private_field_names`] for the qualified form.
    pub fn private(&self) -> bool {
        self.has_key("private")
    }

    /// The field names of a qualified `private="a, b"` (lowercased), or
    /// `None` when `private` is absent or unqualified somewhere (then the
    /// whole response is private).
    pub fn private_field_names(&self) -> Option<Vec<String>> {
        self.field_names("private")
    }

    /// `no-cache` in any form (§5.2.2.4 response, §5.2.1.4 request).
    pub fn no_cache(&self) -> bool {
        self.has_key("no-cache")
    }

    /// The field names of a qualified `no-cache="a"` (lowercased), or
    /// `None` when `no-cache` is absent or unqualified somewhere.
    pub fn no_cache_field_names(&self) -> Option<Vec<String>> {
        self.field_names("no-cache")
    }

    /// Whether `no-cache` is present without field names: the whole
    /// response must be revalidated before each reuse.
    pub fn no_cache_unqualified(&self) -> bool {
        self.no_cache() && self.no_cache_field_names().is_none()
    }

    /// Whether `private` is present without field names: a shared cache
    /// must not store the response.
    pub fn private_unqualified(&self) -> bool {
        self.private() && self.private_field_names().is_none()
    }

    fn field_names(&self, name: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut any = false;
        for d in self.all(name) {
            any = true;
            let v = d.value.as_deref()?;
            for f in v.split(',') {
                let f = f.trim();
                if !f.is_empty() && f.bytes().all(is_tchar) {
                    let f = f.to_ascii_lowercase();
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
        }
        // A qualified directive whose list is empty (`private=""`) names no
        // field we could strip; treat it as unqualified (the safe reading).
        (any && !out.is_empty()).then_some(out)
    }

    /// `no-store` (§5.2.2.5, §5.2.1.5).
    pub fn no_store(&self) -> bool {
        self.has_key("no-store")
    }

    /// `max-age` seconds (§5.2.2.1 response, §5.2.1.1 request).
    pub fn max_age(&self) -> Option<u32> {
        self.delta("max-age")
    }

    /// `s-maxage` seconds (§5.2.2.10).
    pub fn s_maxage(&self) -> Option<u32> {
        self.delta("s-maxage")
    }

    /// `stale-while-revalidate` seconds (RFC 5861 §3).
    pub fn stale_while_revalidate(&self) -> Option<u32> {
        self.delta("stale-while-revalidate")
    }

    /// `stale-if-error` seconds (RFC 5861 §4).
    pub fn stale_if_error(&self) -> Option<u32> {
        self.delta("stale-if-error")
    }

    /// `min-fresh` seconds (§5.2.1.3).
    pub fn min_fresh(&self) -> Option<u32> {
        self.delta("min-fresh")
    }

    /// `max-stale` (§5.2.1.2), with or without a value. An invalid value
    /// counts as `max-stale=0` (accept no staleness).
    pub fn max_stale(&self) -> Option<MaxStale> {
        let first = self.all("max-stale").next()?;
        if first.value.is_none() && self.all("max-stale").all(|d| d.value.is_none()) {
            return Some(MaxStale::Any);
        }
        self.delta("max-stale").map(MaxStale::Seconds)
    }

    /// `must-revalidate` (§5.2.2.2).
    pub fn must_revalidate(&self) -> bool {
        self.has_key("must-revalidate")
    }

    /// `proxy-revalidate` (§5.2.2.8).
    pub fn proxy_revalidate(&self) -> bool {
        self.has_key("proxy-revalidate")
    }

    /// `must-understand` (§5.2.2.3).
    pub fn must_understand(&self) -> bool {
        self.has_key("must-understand")
    }

    /// `immutable` (RFC 8246).
    pub fn immutable(&self) -> bool {
        self.has_key("immutable")
    }

    /// `only-if-cached` (§5.2.1.7).
    pub fn only_if_cached(&self) -> bool {
        self.has_key("only-if-cached")
    }

    /// `no-transform` (§5.2.2.6, §5.2.1.6).
    pub fn no_transform(&self) -> bool {
        self.has_key("no-transform")
    }

    /// A delta-seconds directive: `None` absent; `Some(0)` invalid or
    /// conflicting duplicates; else saturated at 2^31.
    fn delta(&self, name: &str) -> Option<u32> {
        let mut result: Option<u32> = None;
        for d in self.all(name) {
            let v = d.value.as_deref().and_then(parse_delta).unwrap_or(0);
            result = Some(match result {
                Some(prev) if prev != v => 0,
                _ => v,
            });
        }
        result
    }
}

/// RFC 9111 §1.2.2: `1*DIGIT`, saturating at 2^31. `None` if not digits.
fn parse_delta(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        n = n * 10 + u64::from(b - b'0');
        if n >= u64::from(DELTA_SECONDS_MAX) {
            return Some(DELTA_SECONDS_MAX);
        }
    }
    // n < 2^31 here, so it fits.
    u32::try_from(n).ok()
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn parse_into(input: &[u8], cc: &mut CacheControl) {
    let mut i = 0;
    let n = input.len();
    while i < n {
        // skip OWS and empty list elements (RFC 9110 §5.6.1)
        while i < n && (is_ows(input[i]) || input[i] == b',') {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && is_tchar(input[i]) {
            i += 1;
        }
        let name = &input[start..i];
        while i < n && is_ows(input[i]) {
            i += 1;
        }
        if name.is_empty() {
            cc.syntax_error = true;
            i = skip_element(input, i);
            continue;
        }
        let mut value: Option<Cow<'_, str>> = None;
        let mut ok = true;
        if i < n && input[i] == b'=' {
            i += 1;
            while i < n && is_ows(input[i]) {
                i += 1;
            }
            if i < n && input[i] == b'"' {
                let (v, next, closed) = quoted_string(input, i + 1);
                value = Some(Cow::Owned(v));
                ok = closed;
                i = next;
            } else {
                let vs = i;
                while i < n && is_tchar(input[i]) {
                    i += 1;
                }
                value = Some(String::from_utf8_lossy(&input[vs..i]));
            }
            while i < n && is_ows(input[i]) {
                i += 1;
            }
        }
        if i < n && input[i] != b',' {
            // trailing garbage in this element, e.g. `max-age=1.5`
            ok = false;
            let vs = i;
            i = skip_element(input, i);
            if let Some(v) = value.as_mut() {
                // keep what followed so a delta-seconds check fails on it
                let rest = String::from_utf8_lossy(&input[vs..i]);
                *v = Cow::Owned(format!("{v}{}", rest.trim_end()));
            }
        }
        if !ok {
            cc.syntax_error = true;
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        cc.directives.push(Directive {
            name: name.into_boxed_str(),
            value: value.map(|v| v.into_owned().into_boxed_str()),
        });
    }
}

/// Read a quoted-string body starting after the opening quote. Returns the
/// unescaped value, the index after the closing quote, and whether it was
/// closed.
fn quoted_string(input: &[u8], mut i: usize) -> (String, usize, bool) {
    let mut out = Vec::new();
    while i < input.len() {
        match input[i] {
            b'"' => return (String::from_utf8_lossy(&out).into_owned(), i + 1, true),
            b'\\' if i + 1 < input.len() => {
                out.push(input[i + 1]);
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), i, false)
}

/// Index of the next top-level comma (outside quotes) at or after `i`.
fn skip_element(input: &[u8], mut i: usize) -> usize {
    let mut in_quotes = false;
    while i < input.len() {
        match input[i] {
            b'"' => in_quotes = !in_quotes,
            b'\\' if in_quotes => i += 1,
            b',' if !in_quotes => return i,
            _ => {}
        }
        i += 1;
    }
    input.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cc(s: &str) -> CacheControl {
        CacheControl::parse([s.as_bytes()])
    }

    #[test]
    fn rfc9111_5_2_names_are_case_insensitive_and_ows_allowed() {
        let c = cc(" Max-Age = 60 ,PUBLIC,\tno-TRANSFORM ,, ");
        assert_eq!(c.max_age(), Some(60));
        assert!(c.public());
        assert!(c.no_transform());
        assert!(!c.private());
        assert!(!c.had_syntax_error());
    }

    #[test]
    fn rfc9111_5_2_quoted_values_are_unescaped() {
        let c = cc(r#"max-age="30", ext="a \"b\", c""#);
        assert_eq!(c.max_age(), Some(30));
        assert_eq!(c.value("ext"), Some(r#"a "b", c"#));
        assert!(c.has_key("EXT"));
    }

    #[test]
    fn rfc9111_4_2_1_invalid_delta_seconds_mean_stale() {
        for v in [
            "max-age=abc",
            "max-age=-1",
            "max-age",
            "max-age=1.5",
            "max-age=\"\"",
        ] {
            assert_eq!(cc(v).max_age(), Some(0), "{v}");
        }
        assert_eq!(cc("max-age=0").max_age(), Some(0));
        assert_eq!(cc("no-store").max_age(), None);
    }

    #[test]
    fn rfc9111_1_2_2_delta_seconds_saturate_at_2_pow_31() {
        assert_eq!(cc("max-age=2147483647").max_age(), Some(2147483647));
        assert_eq!(cc("max-age=2147483648").max_age(), Some(DELTA_SECONDS_MAX));
        assert_eq!(
            cc("s-maxage=99999999999999999999999999").s_maxage(),
            Some(DELTA_SECONDS_MAX)
        );
    }

    #[test]
    fn rfc9111_4_2_1_conflicting_duplicates_are_stale_equal_ones_kept() {
        assert_eq!(cc("max-age=60, max-age=10").max_age(), Some(0));
        assert_eq!(cc("max-age=60, max-age=60").max_age(), Some(60));
        // across field lines too (RFC 9110 §5.3)
        let c = CacheControl::parse([b"max-age=60".as_slice(), b"max-age=5".as_slice()]);
        assert_eq!(c.max_age(), Some(0));
    }

    #[test]
    fn rfc9111_5_2_2_7_private_with_and_without_field_names() {
        let c = cc(r#"private="Set-Cookie, X-User", max-age=5"#);
        assert!(c.private());
        assert!(!c.private_unqualified());
        assert_eq!(
            c.private_field_names().unwrap(),
            vec!["set-cookie".to_string(), "x-user".to_string()]
        );
        let c = cc("private");
        assert!(c.private_unqualified());
        assert_eq!(c.private_field_names(), None);
        // one unqualified occurrence makes the whole response private
        let c = cc(r#"private="a", private"#);
        assert!(c.private_unqualified());
        // token form names one field
        assert_eq!(
            cc("private=x-a").private_field_names().unwrap(),
            vec!["x-a"]
        );
    }

    #[test]
    fn rfc9111_5_2_2_4_no_cache_with_and_without_field_names() {
        let c = cc(r#"no-cache="Set-Cookie""#);
        assert!(c.no_cache());
        assert!(!c.no_cache_unqualified());
        assert_eq!(c.no_cache_field_names().unwrap(), vec!["set-cookie"]);
        assert!(cc("no-cache").no_cache_unqualified());
        assert!(cc(r#"no-cache="""#).no_cache_unqualified());
    }

    #[test]
    fn rfc9111_5_2_1_request_directives() {
        let c = cc("max-stale, min-fresh=10, only-if-cached, no-cache, no-store");
        assert_eq!(c.max_stale(), Some(MaxStale::Any));
        assert_eq!(c.min_fresh(), Some(10));
        assert!(c.only_if_cached());
        assert!(c.no_cache());
        assert!(c.no_store());
        assert_eq!(cc("max-stale=20").max_stale(), Some(MaxStale::Seconds(20)));
        assert_eq!(cc("max-stale=x").max_stale(), Some(MaxStale::Seconds(0)));
        assert_eq!(cc("max-age=0").max_stale(), None);
    }

    #[test]
    fn rfc9111_response_booleans_and_rfc5861_windows() {
        let c = cc(
            "must-revalidate, proxy-revalidate, must-understand, immutable, \
             stale-while-revalidate=30, stale-if-error=600, s-maxage=7",
        );
        assert!(c.must_revalidate());
        assert!(c.proxy_revalidate());
        assert!(c.must_understand());
        assert!(c.immutable());
        assert_eq!(c.stale_while_revalidate(), Some(30));
        assert_eq!(c.stale_if_error(), Some(600));
        assert_eq!(c.s_maxage(), Some(7));
    }

    #[test]
    fn garbage_elements_are_skipped_and_flagged() {
        let c = cc(r#"=5, max-age=10, "x", public"#);
        assert!(c.had_syntax_error());
        assert_eq!(c.max_age(), Some(10));
        assert!(c.public());
        let c = cc(r#"private="unterminated, max-age=3"#);
        assert!(c.had_syntax_error());
        assert!(c.private());
    }

    #[test]
    fn rfc9213_targeted_field_present_valid_or_ignored() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("Cache-Control", "max-age=10").unwrap();
        assert!(CacheControl::from_resp_headers_named(CDN_CACHE_CONTROL, &r).is_none());
        r.insert_header("CDN-Cache-Control", "max-age=600").unwrap();
        let t = CacheControl::from_resp_headers_named(CDN_CACHE_CONTROL, &r).unwrap();
        assert!(t.is_targeted());
        assert_eq!(t.max_age(), Some(600));
        r.insert_header("CDN-Cache-Control", "=junk").unwrap();
        assert!(CacheControl::from_resp_headers_named(CDN_CACHE_CONTROL, &r).is_none());
        r.insert_header("CDN-Cache-Control", "").unwrap();
        assert!(CacheControl::from_resp_headers_named(CDN_CACHE_CONTROL, &r).is_none());
        let plain = CacheControl::from_resp_headers(&r).unwrap();
        assert!(!plain.is_targeted());
    }

    #[test]
    fn from_headers_absent_is_none_several_lines_are_one_list() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(CacheControl::from_req_headers(&req).is_none());
        req.append_header("Cache-Control", "no-cache").unwrap();
        req.append_header("cache-control", "max-age=3").unwrap();
        let c = CacheControl::from_req_headers(&req).unwrap();
        assert!(c.no_cache());
        assert_eq!(c.max_age(), Some(3));
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let c = CacheControl::parse([bytes.as_slice()]);
            let _ = (c.max_age(), c.s_maxage(), c.max_stale(), c.private_field_names(),
                     c.no_cache_field_names(), c.min_fresh(), c.value("x"));
        }

        #[test]
        fn structured_inputs_do_not_panic(s in r#"[a-zA-Z=", \t\\-]{0,64}"#) {
            let c = CacheControl::parse([s.as_bytes()]);
            let _ = (c.max_age(), c.private_field_names(), c.max_stale());
        }
    }
}
