//! The shared-cache policy of RFC 9111, as functions of the messages and
//! `now` (no sockets, no clocks of their own): what may be stored and for
//! how long (§3, §4.2), whether a stored response may answer a request
//! (§4.2, §5.2.1), the requests a fill or a revalidation sends (§4.3.1), how
//! a 304 updates a stored header (§4.3.4), client conditionals (RFC 9110
//! §13) and invalidation (§4.4).

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderValue};
use proxy_core::error::Result;
use proxy_core::http::{FieldLines, RequestHeader, ResponseHeader};
use proxy_core::protocols::http::hop_by_hop;

use crate::cache_control::{CacheControl, MaxStale, CDN_CACHE_CONTROL};
use crate::key::CacheKey;
use crate::meta::{CacheMeta, CacheMetaDefaults};
use crate::reasons::{NoCacheReason, RespCacheable};

/// Whether the request method is one the cache serves and stores: GET and
/// HEAD (RFC 9111 §3: the method must be understood and cacheable).
pub fn request_cacheable(req: &RequestHeader) -> bool {
    let method = req.method();
    *method == http::Method::GET || *method == http::Method::HEAD
}

/// Statuses this cache may store when the response has explicit
/// freshness (RFC 9111 §3): any final status it can replay as received,
/// which is all of 200-599 but 206 (ranges are served from whole entries)
/// and 304 (it has no body of its own).
fn status_storable(status: u16) -> bool {
    (200..600).contains(&status) && status != 206 && status != 304
}

/// Statuses that are heuristically cacheable (RFC 9110 §15.1).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

fn date_of(resp: &ResponseHeader, name: header::HeaderName) -> Option<SystemTime> {
    let v = resp.headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v).ok()
}

/// The response's freshness directives: `CDN-Cache-Control` when present
/// and valid (RFC 9213 §2.1), else `Cache-Control`.
pub fn response_cache_control(resp: &ResponseHeader) -> Option<CacheControl> {
    CacheControl::from_resp_headers_named(CDN_CACHE_CONTROL, resp)
        .or_else(|| CacheControl::from_resp_headers_named(SURROGATE_CONTROL, resp))
        .or_else(|| CacheControl::from_resp_headers(resp))
}

/// `Surrogate-Control` (W3C Edge Architecture 1.0): the older field for
/// caches like this one, read after `CDN-Cache-Control` and before
/// `Cache-Control`, and removed from what is stored and forwarded (it is
/// addressed to the surrogate that consumes it). An element with a target
/// (`max-age=60;other`) makes the field invalid, so it is ignored.
pub const SURROGATE_CONTROL: &str = "surrogate-control";

/// Decide whether a shared cache may store `resp` (to a request that
/// carried `Authorization` if `authorization`) and build its meta, at
/// `now` (taken as both request and response time).
///
/// - §3: not `no-store`, not `private` (unqualified), a storable status;
///   §3.5: `Authorization` only with `public`, `s-maxage` or
///   `must-revalidate`.
/// - §4.2.1: the freshness lifetime is `s-maxage`, else `max-age`, else
///   `Expires − Date` (an invalid `Expires` means already expired), else
///   `defaults` for the status; with none of them the response is not
///   stored (no heuristic freshness unless `defaults` gives one).
/// - §5.2.2.4: unqualified `no-cache` stores it, but stale from the start.
/// - §4.2.3: `created` is `now − max(Age, now − Date)`, so `age()` counts
///   from the origin.
/// - RFC 5861: stale windows from `stale-while-revalidate` and
///   `stale-if-error` (or `defaults`), 0 under `must-revalidate`,
///   `proxy-revalidate`, `s-maxage` or `no-cache`.
/// - The stored header drops hop-by-hop fields (RFC 9110 §7.6.1) and the
///   fields named by `private="…"` and `no-cache="…"` (§5.2.2.4, §5.2.2.7).
pub fn resp_cacheable(
    resp: &ResponseHeader,
    authorization: bool,
    defaults: Option<&CacheMetaDefaults>,
    now: SystemTime,
) -> RespCacheable {
    use RespCacheable::Uncacheable;
    let status = resp.status.as_u16();
    let cc = response_cache_control(resp);
    let cc_ref = cc.as_ref();
    let has = |f: fn(&CacheControl) -> bool| cc_ref.is_some_and(f);
    if has(CacheControl::no_store) || has(CacheControl::private_unqualified) {
        return Uncacheable(NoCacheReason::OriginNotCache);
    }
    let s_maxage = cc_ref.and_then(CacheControl::s_maxage);
    if authorization
        && !(has(CacheControl::public) || s_maxage.is_some() || has(CacheControl::must_revalidate))
    {
        return Uncacheable(NoCacheReason::OriginNotCache);
    }
    let date = date_of(resp, header::DATE);
    let explicit: Option<u64> = s_maxage
        .or_else(|| cc_ref.and_then(CacheControl::max_age))
        .map(u64::from)
        .or_else(|| {
            if cc_ref.is_some_and(CacheControl::is_targeted) {
                return None;
            }
            resp.headers.get(header::EXPIRES)?;
            let expires = date_of(resp, header::EXPIRES);
            Some(match expires {
                Some(e) => e
                    .duration_since(date.unwrap_or(now))
                    .map_or(0, |d| d.as_secs()),
                None => 0,
            })
        });
    let lifetime = match explicit {
        Some(l) if status_storable(status) => l,
        Some(_) => return Uncacheable(NoCacheReason::OriginNotCache),
        None => match defaults.and_then(|d| d.fresh_sec(resp.status)) {
            Some(l) if heuristically_cacheable(status) && status != 206 => u64::from(l),
            _ => return Uncacheable(NoCacheReason::OriginNotCache),
        },
    };
    let no_cache = has(CacheControl::no_cache_unqualified);
    // §5.1: Age is one non-negative integer; anything else (several
    // values, a sign, a fraction, parameters) makes the response stale
    let ages: Vec<&[u8]> = resp
        .headers
        .get_all(header::AGE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let (age_value, age_invalid) = match ages.as_slice() {
        [] => (0, false),
        [one] => match std::str::from_utf8(one)
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        {
            Some(t) => (t.parse::<u64>().unwrap_or(u64::from(u32::MAX)), false),
            None => (0, true),
        },
        _ => (0, true),
    };
    let apparent = date
        .and_then(|d| now.duration_since(d).ok())
        .map_or(0, |d| d.as_secs());
    let initial_age = Duration::from_secs(age_value.max(apparent));
    let created = now.checked_sub(initial_age).unwrap_or(now);
    let lifetime = if no_cache || age_invalid { 0 } else { lifetime };
    let fresh_until = created + Duration::from_secs(lifetime);
    let no_stale = no_cache
        || s_maxage.is_some()
        || has(CacheControl::must_revalidate)
        || has(CacheControl::proxy_revalidate);
    let (swr, sie) = if no_stale {
        (0, 0)
    } else {
        (
            cc_ref
                .and_then(CacheControl::stale_while_revalidate)
                .or_else(|| defaults.map(|d| d.serve_stale_while_revalidate_sec()))
                .unwrap_or(0),
            cc_ref
                .and_then(CacheControl::stale_if_error)
                .or_else(|| defaults.map(|d| d.serve_stale_if_error_sec()))
                .unwrap_or(0),
        )
    };
    let mut stored = resp.clone();
    hop_by_hop::strip_response(&mut stored, false);
    stored.remove_header(SURROGATE_CONTROL);
    if let Some(cc) = cc_ref {
        for name in cc
            .private_field_names()
            .into_iter()
            .chain(cc.no_cache_field_names())
            .flatten()
        {
            stored.remove_header(name.as_str());
        }
    }
    RespCacheable::Cacheable(CacheMeta::new(fresh_until, created, swr, sie, stored))
}

/// The request's directives (RFC 9111 §5.2.1), with `Pragma: no-cache`
/// standing for `no-cache` when there is no `Cache-Control` (§5.4).
fn request_no_cache(cc: Option<&CacheControl>) -> bool {
    cc.is_some_and(|c| c.no_cache())
}

/// Whether a stored response may answer the request as fresh (RFC 9111
/// §4.2 and the request's directives, §5.2.1): it is fresh, its age is
/// within the request's `max-age`, it stays fresh for `min-fresh` more, and
/// the request did not say `no-cache`.
pub fn request_allows_fresh(
    req_cc: Option<&CacheControl>,
    meta: &CacheMeta,
    now: SystemTime,
) -> bool {
    if !meta.is_fresh(now) || request_no_cache(req_cc) {
        return false;
    }
    let Some(cc) = req_cc else { return true };
    if let Some(max_age) = cc.max_age() {
        if meta.age(now).as_secs() > u64::from(max_age) {
            return false;
        }
    }
    if let Some(min_fresh) = cc.min_fresh() {
        if !meta.is_fresh(now + Duration::from_secs(u64::from(min_fresh))) {
            return false;
        }
    }
    true
}

/// Whether the request accepts a stale response as it is (`max-stale`,
/// §5.2.1.2), which the response allows unless it forbids serving stale
/// (`must-revalidate` and kin leave both stale windows at 0 and mark the
/// meta so).
pub fn request_allows_stale(
    req_cc: Option<&CacheControl>,
    meta: &CacheMeta,
    now: SystemTime,
) -> bool {
    let Some(cc) = req_cc else { return false };
    if request_no_cache(req_cc) || must_revalidate(meta) {
        return false;
    }
    match cc.max_stale() {
        Some(MaxStale::Any) => true,
        Some(MaxStale::Seconds(s)) => {
            let staleness = now.duration_since(meta.fresh_until()).unwrap_or_default();
            staleness.as_secs() <= u64::from(s)
        }
        None => false,
    }
}

/// Whether the stored response forbids serving it stale (§5.2.2.2,
/// §5.2.2.8, §5.2.2.10).
fn must_revalidate(meta: &CacheMeta) -> bool {
    response_cache_control(meta.response_header()).is_some_and(|cc| {
        cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.s_maxage().is_some()
            || cc.no_cache_unqualified()
    })
}

/// Set `Age` (RFC 9111 §5.1) on a response served from the cache at `now`.
///
/// # Errors
/// None in practice (a decimal number is a valid value).
pub fn set_age_header(resp: &mut ResponseHeader, meta: &CacheMeta, now: SystemTime) -> Result<()> {
    let age = meta.age(now).as_secs().min(u64::from(u32::MAX >> 1));
    match small_age_value(age) {
        Some(v) => resp.insert_header(header::AGE, v),
        None => resp.insert_header(header::AGE, age),
    }
}

/// Ages below this many seconds come from a table of static values (built
/// once, on first use): a hit then neither formats nor allocates its `Age`.
const AGE_TABLE: u64 = 4096;

/// The `Age` value for `secs`, from the table, when `secs` < [`AGE_TABLE`].
fn small_age_value(secs: u64) -> Option<HeaderValue> {
    static TABLE: std::sync::OnceLock<Box<[HeaderValue]>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..AGE_TABLE)
            .map(|n| {
                // leaked once (about 20 KiB for the whole table) so that each
                // value is static: cloning one copies two words, with no
                // reference count shared between cores
                let text: &'static str = Box::leak(n.to_string().into_boxed_str());
                HeaderValue::from_static(text)
            })
            .collect()
    });
    table.get(usize::try_from(secs).ok()?).cloned()
}

/// Prepare a fill's upstream request: GET even for a HEAD (the body is
/// stored), without the client's `Range`. The client's conditionals stay:
/// a 304 to them is forwarded and simply not stored.
pub fn upstream_fill_request(req: &mut RequestHeader) {
    if *req.method() == http::Method::HEAD {
        req.set_method(http::Method::GET);
    }
    req.remove_header_named(&header::RANGE);
    req.remove_header_named(&header::IF_RANGE);
}

/// Prepare a revalidation (RFC 9111 §4.3.1): as a fill, with the client's
/// conditionals replaced by the stored validators, `If-None-Match` from
/// `ETag` and `If-Modified-Since` from `Last-Modified`.
pub fn upstream_conditional_request(req: &mut RequestHeader, meta: &CacheMeta) {
    upstream_fill_request(req);
    for h in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ] {
        req.remove_header(&h);
    }
    let stored = meta.response_header();
    if let Some(etag) = stored.headers.get(header::ETAG).cloned() {
        let _ = req.insert_header(header::IF_NONE_MATCH, etag);
    }
    if let Some(lm) = stored.headers.get(header::LAST_MODIFIED).cloned() {
        let _ = req.insert_header(header::IF_MODIFIED_SINCE, lm);
    }
}

/// Fields a 304 does not change in the stored header (RFC 9111 §3.2): the
/// framing, and the fields the stored body depends on (its coding, digest
/// and range, and the validator that names it).
const NOT_UPDATED_BY_304: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "content-md5",
    "content-range",
    "etag",
];

/// The stored header updated by a 304 (RFC 9111 §4.3.4, §3.2): each field
/// of the 304 replaces the stored ones of that name, except hop-by-hop
/// fields and those in `NOT_UPDATED_BY_304`.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> ResponseHeader {
    let mut merged = stored.clone();
    let mut fresh = not_modified.clone();
    hop_by_hop::strip_response(&mut fresh, false);
    let mut replaced: Vec<header::HeaderName> = Vec::new();
    for (name, value) in fresh.headers.iter() {
        if NOT_UPDATED_BY_304.contains(&name.as_str()) {
            continue;
        }
        if !replaced.contains(name) {
            merged.remove_header(name);
            replaced.push(name.clone());
        }
        let _ = merged.append_header(name.clone(), value.clone());
    }
    merged
}

/// Whether the client's conditional request is answered 304 by `resp` (a
/// 200 the cache serves), RFC 9110 §13.1–§13.2: `If-None-Match` (weak
/// comparison; `*` matches) decides when present, else
/// `If-Modified-Since` against `Last-Modified`; only for GET and HEAD.
pub fn not_modified_filter(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    if resp.status_code() != http::StatusCode::OK || !request_cacheable(req) {
        return false;
    }
    if let Some(inm) = req.field_values(&header::IF_NONE_MATCH).next() {
        let Ok(inm) = std::str::from_utf8(inm) else {
            return false;
        };
        let Some(etag) = resp.headers.get(header::ETAG).and_then(|e| e.to_str().ok()) else {
            return inm.trim() == "*";
        };
        let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        let etag = opaque(etag);
        return inm.split(',').any(|t| t.trim() == "*" || opaque(t) == etag);
    }
    if let Some(ims) = req.field_values(&header::IF_MODIFIED_SINCE).next() {
        let since = std::str::from_utf8(ims)
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok());
        let last = date_of(resp, header::LAST_MODIFIED);
        if let (Some(since), Some(last)) = (since, last) {
            return last <= since;
        }
    }
    false
}

/// A 304 made from the 200 `resp` (RFC 9110 §15.4.5): the same fields but
/// the content ones (`Content-Length`, `Content-Type`, `Content-Encoding`,
/// `Content-Range`, `Transfer-Encoding`).
pub fn to_not_modified(resp: &ResponseHeader) -> ResponseHeader {
    let mut r = resp.clone();
    let _ = r.set_status(304);
    for h in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        header::TRANSFER_ENCODING,
        header::ACCEPT_RANGES,
    ] {
        r.remove_header(&h);
    }
    r
}

/// The primary keys, in the format of `key`, of the other URIs a successful
/// unsafe request invalidates (RFC 9111 §4.4): its `Location` and
/// `Content-Location` when they are on the request's host. Knows two key
/// formats: [`CacheKey::default_http`]'s (`scheme://host/path?query`) and the
/// bare path-and-query; for any other, only the request's own key is
/// invalidated (by the caller).
pub fn invalidation_targets(
    req: &RequestHeader,
    resp: &ResponseHeader,
    key: &CacheKey,
    tls: bool,
) -> Vec<String> {
    let full = CacheKey::default_http(key.namespace(), req, tls, "");
    let own_path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let format_full = full.primary_key() == key.primary_key();
    let format_path = key.primary_key() == own_path.as_bytes();
    if !format_full && !format_path {
        return Vec::new();
    }
    let prefix = {
        let p = String::from_utf8_lossy(full.primary_key()).into_owned();
        p.strip_suffix(own_path).map(str::to_owned).unwrap_or(p)
    };
    let mut out = Vec::new();
    for h in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = resp.headers.get(h).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let target = if v.starts_with('/') {
            Some(v.to_owned())
        } else {
            // absolute: only on the same scheme and host
            v.strip_prefix(&prefix)
                .filter(|rest| rest.starts_with('/'))
                .map(str::to_owned)
        };
        if let Some(path) = target {
            out.push(if format_full {
                format!("{prefix}{path}")
            } else {
                path
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    #[test]
    fn age_values_from_the_table_and_past_it_read_the_same() {
        for secs in [0, 1, 59, 600, AGE_TABLE - 1, AGE_TABLE, 1_000_000] {
            let meta = CacheMeta::new(at(secs + 10), at(0), 0, 0, resp(&[]));
            let mut r = resp(&[]);
            set_age_header(&mut r, &meta, at(secs)).unwrap();
            assert_eq!(
                r.headers.get(header::AGE).unwrap().to_str().unwrap(),
                secs.to_string()
            );
        }
    }

    fn resp(fields: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (n, v) in fields {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn meta_of(r: RespCacheable) -> CacheMeta {
        match r {
            RespCacheable::Cacheable(m) => m,
            RespCacheable::Uncacheable(why) => panic!("uncacheable: {why:?}"),
        }
    }

    #[test]
    fn s_maxage_over_max_age_over_expires_rfc9111_4_2_1() {
        let now = at(0);
        let m = meta_of(resp_cacheable(
            &resp(&[("Cache-Control", "max-age=10, s-maxage=60")]),
            false,
            None,
            now,
        ));
        assert_eq!(m.fresh_sec(), 60);
        let m = meta_of(resp_cacheable(
            &resp(&[("Cache-Control", "max-age=10")]),
            false,
            None,
            now,
        ));
        assert_eq!(m.fresh_sec(), 10);
        let date = httpdate::fmt_http_date(now);
        let exp = httpdate::fmt_http_date(at(30));
        let m = meta_of(resp_cacheable(
            &resp(&[("Date", &date), ("Expires", &exp)]),
            false,
            None,
            now,
        ));
        assert_eq!(m.fresh_sec(), 30);
        let m = meta_of(resp_cacheable(
            &resp(&[("Expires", "garbage")]),
            false,
            None,
            now,
        ));
        assert!(!m.is_fresh(now), "invalid Expires is already expired");
    }

    #[test]
    fn not_stored_rfc9111_3() {
        let now = at(0);
        for cc in ["no-store, max-age=60", "private, max-age=60"] {
            assert!(
                !resp_cacheable(&resp(&[("Cache-Control", cc)]), false, None, now).is_cacheable(),
                "{cc}"
            );
        }
        assert!(
            !resp_cacheable(&resp(&[]), false, None, now).is_cacheable(),
            "no freshness, no defaults"
        );
        let d = CacheMetaDefaults::uniform(5);
        assert!(resp_cacheable(&resp(&[]), false, Some(&d), now).is_cacheable());
        // §3.5
        let r = resp(&[("Cache-Control", "max-age=60")]);
        assert!(!resp_cacheable(&r, true, None, now).is_cacheable());
        let r = resp(&[("Cache-Control", "public, max-age=60")]);
        assert!(resp_cacheable(&r, true, None, now).is_cacheable());
    }

    #[test]
    fn surrogate_control_is_read_after_cdn_cache_control() {
        let r = resp(&[
            ("Cache-Control", "no-store"),
            ("Surrogate-Control", "max-age=30"),
        ]);
        let m = meta_of(resp_cacheable(&r, false, None, at(0)));
        assert_eq!(m.fresh_sec(), 30);
        assert!(m
            .response_header()
            .headers
            .get("surrogate-control")
            .is_none());
        let r = resp(&[
            ("Cache-Control", "max-age=5"),
            ("Surrogate-Control", "max-age=30;other"),
        ]);
        assert_eq!(
            meta_of(resp_cacheable(&r, false, None, at(0))).fresh_sec(),
            5
        );
    }

    #[test]
    fn cdn_cache_control_takes_precedence_rfc9213() {
        let r = resp(&[
            ("Cache-Control", "no-store"),
            ("CDN-Cache-Control", "max-age=30"),
        ]);
        let m = meta_of(resp_cacheable(&r, false, None, at(0)));
        assert_eq!(m.fresh_sec(), 30);
    }

    #[test]
    fn age_and_date_set_created_rfc9111_4_2_3() {
        let now = at(100);
        let r = resp(&[("Cache-Control", "max-age=60"), ("Age", "20")]);
        let m = meta_of(resp_cacheable(&r, false, None, now));
        assert_eq!(m.age(now), Duration::from_secs(20));
        assert!(m.is_fresh(at(139)));
        assert!(!m.is_fresh(at(140)));
    }

    #[test]
    fn an_invalid_age_makes_the_response_stale_rfc9111_5_1() {
        for age in ["abc", "-10", "10.0", "10;x=1", "0, 0"] {
            let r = resp(&[("Cache-Control", "max-age=60"), ("Age", age)]);
            let m = meta_of(resp_cacheable(&r, false, None, at(0)));
            assert!(!m.is_fresh(at(0)), "Age: {age}");
        }
        let r = resp(&[("Cache-Control", "max-age=60"), ("Age", "1"), ("Age", "1")]);
        assert!(!meta_of(resp_cacheable(&r, false, None, at(0))).is_fresh(at(0)));
    }

    #[test]
    fn a_304_keeps_the_fields_the_body_depends_on_rfc9111_3_2() {
        let stored = resp(&[
            ("ETag", "\"a\""),
            ("Content-Encoding", "gzip"),
            ("X-B", "1"),
        ]);
        let mut nm = ResponseHeader::build(304, None).unwrap();
        nm.insert_header("ETag", "\"b\"").unwrap();
        nm.insert_header("Content-Encoding", "br").unwrap();
        nm.insert_header("X-B", "2").unwrap();
        let m = merge_not_modified(&stored, &nm);
        assert_eq!(m.headers["etag"], "\"a\"");
        assert_eq!(m.headers["content-encoding"], "gzip");
        assert_eq!(m.headers["x-b"], "2");
    }

    #[test]
    fn no_cache_is_stored_stale_and_private_fields_dropped() {
        let r = resp(&[
            ("Cache-Control", "no-cache, max-age=60"),
            ("Connection", "x-hop"),
            ("X-Hop", "1"),
        ]);
        let m = meta_of(resp_cacheable(&r, false, None, at(0)));
        assert!(!m.is_fresh(at(0)));
        assert!(m.response_header().headers.get("x-hop").is_none());
        let r = resp(&[
            ("Cache-Control", "max-age=60, private=\"set-cookie\""),
            ("Set-Cookie", "a=b"),
        ]);
        let m = meta_of(resp_cacheable(&r, false, None, at(0)));
        assert!(m.response_header().headers.get("set-cookie").is_none());
    }

    #[test]
    fn stale_windows_rfc5861_and_must_revalidate() {
        let r = resp(&[(
            "Cache-Control",
            "max-age=1, stale-while-revalidate=30, stale-if-error=60",
        )]);
        let m = meta_of(resp_cacheable(&r, false, None, at(0)));
        assert_eq!(
            (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
            (30, 60)
        );
        let r = resp(&[(
            "Cache-Control",
            "max-age=1, must-revalidate, stale-if-error=60",
        )]);
        let m = meta_of(resp_cacheable(&r, false, None, at(0)));
        assert_eq!(m.stale_if_error_sec(), 0);
    }

    #[test]
    fn request_directives_rfc9111_5_2_1() {
        let m = meta_of(resp_cacheable(
            &resp(&[("Cache-Control", "max-age=60")]),
            false,
            None,
            at(0),
        ));
        let cc = |v: &str| CacheControl::parse([v.as_bytes()]);
        assert!(request_allows_fresh(None, &m, at(10)));
        assert!(!request_allows_fresh(Some(&cc("no-cache")), &m, at(10)));
        assert!(!request_allows_fresh(Some(&cc("max-age=5")), &m, at(10)));
        assert!(!request_allows_fresh(Some(&cc("min-fresh=55")), &m, at(10)));
        assert!(request_allows_stale(Some(&cc("max-stale")), &m, at(100)));
        assert!(request_allows_stale(Some(&cc("max-stale=50")), &m, at(100)));
        assert!(!request_allows_stale(
            Some(&cc("max-stale=10")),
            &m,
            at(100)
        ));
        assert!(!request_allows_stale(None, &m, at(100)));
    }

    #[test]
    fn revalidation_request_and_merge_rfc9111_4_3() {
        let stored = resp(&[
            ("ETag", "\"v1\""),
            ("Last-Modified", "Tue, 01 Jan 2030 00:00:00 GMT"),
            ("X-A", "1"),
            ("Content-Length", "5"),
        ]);
        let m = CacheMeta::new(at(0), at(0), 0, 0, stored.clone());
        let mut req = RequestHeader::build("HEAD", b"/", None).unwrap();
        req.insert_header("If-None-Match", "\"client\"").unwrap();
        req.insert_header("Range", "bytes=0-1").unwrap();
        upstream_conditional_request(&mut req, &m);
        assert_eq!(req.method, "GET");
        assert_eq!(req.headers["if-none-match"], "\"v1\"");
        assert!(req.headers.get("range").is_none());
        let mut nm = ResponseHeader::build(304, None).unwrap();
        nm.insert_header("X-A", "2").unwrap();
        nm.insert_header("Content-Length", "0").unwrap();
        let merged = merge_not_modified(&stored, &nm);
        assert_eq!(merged.headers["x-a"], "2");
        assert_eq!(merged.headers["content-length"], "5");
        assert_eq!(merged.status, 200);
    }

    #[test]
    fn client_conditionals_rfc9110_13() {
        let r = resp(&[
            ("ETag", "W/\"a\""),
            ("Last-Modified", "Tue, 01 Jan 2030 00:00:00 GMT"),
        ]);
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("If-None-Match", "\"b\", \"a\"").unwrap();
        assert!(not_modified_filter(&req, &r));
        req.insert_header("If-None-Match", "\"b\"").unwrap();
        req.insert_header("If-Modified-Since", "Wed, 02 Jan 2030 00:00:00 GMT")
            .unwrap();
        assert!(
            !not_modified_filter(&req, &r),
            "If-None-Match decides when present"
        );
        req.remove_header("If-None-Match");
        assert!(not_modified_filter(&req, &r));
        let nm = to_not_modified(&resp(&[("Content-Length", "3"), ("ETag", "\"a\"")]));
        assert_eq!(nm.status, 304);
        assert!(nm.headers.get("content-length").is_none());
        assert!(nm.headers.get("etag").is_some());
    }

    #[test]
    fn invalidation_targets_same_host_only_rfc9111_4_4() {
        let mut req = RequestHeader::build("POST", b"/a?x", None).unwrap();
        req.insert_header("Host", "h.test").unwrap();
        let key = CacheKey::default_http("", &req, false, "");
        let r = resp(&[
            ("Location", "/b"),
            ("Content-Location", "http://other.test/c"),
        ]);
        assert_eq!(
            invalidation_targets(&req, &r, &key, false),
            ["http://h.test/b"]
        );
        let r = resp(&[("Content-Location", "http://h.test/c")]);
        assert_eq!(
            invalidation_targets(&req, &r, &key, false),
            ["http://h.test/c"]
        );
        let path_key = CacheKey::new("", "/a?x", "");
        let r = resp(&[("Location", "/b")]);
        assert_eq!(invalidation_targets(&req, &r, &path_key, false), ["/b"]);
        let odd = CacheKey::new("", "custom", "");
        assert!(invalidation_targets(&req, &r, &odd, false).is_empty());
    }
}
