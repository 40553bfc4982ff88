//! The header names the framework recognises without building a
//! `HeaderName`: the common names as clients and servers spell them, and the
//! names it looks up in every received head (framing, connection management,
//! hop-by-hop removal, cache hits), numbered so that a line's name is
//! compared as one byte.

use http::HeaderName;

/// The `HeaderName` of the names most messages carry, spelled as clients
/// and servers usually send them (Title-Case, or lower case), without
/// `HeaderName::from_bytes`'s lower-casing and table search: an exact byte
/// compare picks the constant. `None` for any other spelling or name.
pub(crate) fn common_name(name: &[u8]) -> Option<HeaderName> {
    // a const: built at compile time, not validated at each use
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
    use http::header::*;
    Some(match name {
        b"Age" | b"age" => AGE,
        b"Host" | b"host" => HOST,
        b"Date" | b"date" => DATE,
        b"ETag" | b"etag" => ETAG,
        b"Vary" | b"vary" => VARY,
        b"Server" | b"server" => SERVER,
        b"Accept" | b"accept" => ACCEPT,
        b"Cookie" | b"cookie" => COOKIE,
        b"Expires" | b"expires" => EXPIRES,
        b"Referer" | b"referer" => REFERER,
        b"Connection" | b"connection" => CONNECTION,
        b"Set-Cookie" | b"set-cookie" => SET_COOKIE,
        b"User-Agent" | b"user-agent" => USER_AGENT,
        b"Content-Type" | b"content-type" => CONTENT_TYPE,
        b"Content-Length" | b"content-length" => CONTENT_LENGTH,
        b"Last-Modified" | b"last-modified" => LAST_MODIFIED,
        b"Accept-Ranges" | b"accept-ranges" => ACCEPT_RANGES,
        b"Cache-Control" | b"cache-control" => CACHE_CONTROL,
        b"Authorization" | b"authorization" => AUTHORIZATION,
        b"Accept-Encoding" | b"accept-encoding" => ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => ACCEPT_LANGUAGE,
        b"Content-Encoding" | b"content-encoding" => CONTENT_ENCODING,
        b"Transfer-Encoding" | b"transfer-encoding" => TRANSFER_ENCODING,
        b"X-Forwarded-For" | b"x-forwarded-for" => X_FORWARDED_FOR,
        b"Cache-Status" | b"cache-status" => CACHE_STATUS,
        _ => return None,
    })
}

/// The `HeaderName` for `name` as received: a constant for the common
/// names, else validated and lower-cased.
///
/// # Errors
/// `InvalidHeaderName` if `name` is not a token (RFC 9110 §5.1).
pub(crate) fn header_name(name: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    match common_name(name) {
        Some(n) => Ok(n),
        None => HeaderName::from_bytes(name),
    }
}

/// The names the framework itself looks up in a received head (framing,
/// connection management, hop-by-hop removal, serving cache hits),
/// numbered from 1 so a lookup compares one byte per line instead of a
/// name; 0 is any other name. At most 31 (a bit each in a `u32`).
/// The first seven are [`HOP_BY_HOP_FIELDS`](super::HOP_BY_HOP_FIELDS), in its order.
pub(crate) static KNOWN: [HeaderName; 17] = [
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::TE,
    http::header::TRAILER,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::CONTENT_LENGTH,
    http::header::AGE,
    http::header::ACCEPT_RANGES,
    http::header::CONTENT_RANGE,
    http::header::ETAG,
    http::header::LAST_MODIFIED,
    http::header::VARY,
    http::header::CACHE_CONTROL,
    http::header::HOST,
    http::header::EXPECT,
];

/// `Connection`'s number in [`KNOWN`].
pub(crate) const CONNECTION_ID: u8 = 1;

/// The name numbered `id` in [`KNOWN`]; `None` for 0 (any other name).
#[inline]
pub(crate) fn known_name(id: u8) -> Option<&'static HeaderName> {
    KNOWN.get(usize::from(id).checked_sub(1)?)
}

/// [`KNOWN`]'s names spelled out, for [`CANDIDATES`] (built at compile time).
const KNOWN_SPELLED: [&str; 17] = [
    "connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "content-length",
    "age",
    "accept-ranges",
    "content-range",
    "etag",
    "last-modified",
    "vary",
    "cache-control",
    "host",
    "expect",
];

/// A name's slot in [`CANDIDATES`], from its length and its first and last
/// bytes (lower case). No two known names share a slot (checked when the
/// table is built).
const fn slot(len: usize, first: u8, last: u8) -> usize {
    (len.wrapping_shl(1))
        .wrapping_add(first as usize)
        .wrapping_add((last as usize) << 1)
        & 31
}

/// The one id in [`KNOWN`] a name can have, by [`slot`], or 0: a lookup
/// then compares one candidate.
static CANDIDATES: [u8; 32] = {
    let mut table = [0u8; 32];
    let mut i = 0;
    while i < KNOWN_SPELLED.len() {
        let n = KNOWN_SPELLED[i].as_bytes();
        let s = slot(n.len(), n[0], n[n.len() - 1]);
        assert!(table[s] == 0, "two known names share a slot");
        table[s] = i as u8 + 1;
        i += 1;
    }
    table
};

/// The candidate id for `name` (any case), per [`CANDIDATES`].
#[inline]
fn candidate_of(name: &[u8]) -> u8 {
    match (name.first(), name.last()) {
        (Some(f), Some(l)) => CANDIDATES[slot(name.len(), f | 0x20, l | 0x20)],
        _ => 0,
    }
}

/// Whether `name` (a token as received) is `lower` (a lower-case name of
/// letters and `-`) in any case: each byte with the ASCII case bit set must
/// equal `lower`'s, compared eight bytes at a time. Setting the bit maps
/// only `A-Z` onto `a-z` among token bytes, and `-` to itself.
fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    if name.len() != lower.len() {
        return false;
    }
    let (mut a, mut b) = (name.chunks_exact(8), lower.chunks_exact(8));
    for (x, y) in a.by_ref().zip(b.by_ref()) {
        // chunks_exact(8) yields 8-byte slices: the conversions cannot fail
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            return false;
        };
        if u64::from_le_bytes(x) | CASE != u64::from_le_bytes(y) {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == *y)
}

/// The number of `name` (as received, any case) in [`KNOWN`], or 0.
pub(crate) fn known_id(name: &[u8]) -> u8 {
    match candidate_of(name) {
        0 => 0,
        id if known_name(id).is_some_and(|k| eq_lower(name, k.as_str().as_bytes())) => id,
        _ => 0,
    }
}

/// The number of `name` in [`KNOWN`], or 0 (one candidate, compared as a
/// `HeaderName`: standard names compare as small integers).
#[inline]
pub(crate) fn known_id_of(name: &HeaderName) -> u8 {
    match candidate_of(name.as_str().as_bytes()) {
        0 => 0,
        id if known_name(id) == Some(name) => id,
        _ => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn common_names_match_the_parsed_names() {
        for spelling in [
            "Host",
            "date",
            "ETag",
            "Vary",
            "Server",
            "Accept",
            "Cookie",
            "Expires",
            "Referer",
            "Connection",
            "Set-Cookie",
            "User-Agent",
            "Content-Type",
            "Content-Length",
            "Last-Modified",
            "Accept-Ranges",
            "Cache-Control",
            "Authorization",
            "Accept-Encoding",
            "Accept-Language",
            "Content-Encoding",
            "Transfer-Encoding",
            "X-Forwarded-For",
            "x-forwarded-for",
            "Age",
            "Cache-Status",
        ] {
            let fast = common_name(spelling.as_bytes());
            assert_eq!(
                fast,
                Some(HeaderName::from_bytes(spelling.as_bytes()).unwrap()),
                "{spelling}"
            );
        }
        assert_eq!(common_name(b"CONTENT-LENGTH"), None);
        assert_eq!(common_name(b"X-Other"), None);
    }

    #[test]
    fn the_known_tables_agree() {
        for (i, k) in KNOWN.iter().enumerate() {
            assert_eq!(k.as_str(), KNOWN_SPELLED[i]);
            let k = k.as_str().as_bytes();
            assert_eq!(candidate_of(k), i as u8 + 1, "{k:?}");
            assert!(k.iter().all(|b| b.is_ascii_lowercase() || *b == b'-'));
        }
    }

    #[test]
    fn known_names_are_numbered_whatever_their_case() {
        for (i, k) in KNOWN.iter().enumerate() {
            let upper = k.as_str().to_ascii_uppercase();
            assert_eq!(known_id(upper.as_bytes()), i as u8 + 1, "{k}");
            assert_eq!(known_id_of(k), i as u8 + 1, "{k}");
        }
        assert_eq!(known_id(b"X-Other"), 0);
        assert_eq!(known_id(b"Content-Lengtx"), 0);
        assert_eq!(known_id(b"TRANSFER-ENCODINg"), 2);
        assert_eq!(known_id(b"transfer_encoding"), 0);
        assert_eq!(known_id_of(&HeaderName::from_static("x-other")), 0);
    }
}
