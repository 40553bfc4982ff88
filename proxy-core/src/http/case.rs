//! Header names in their original spelling, kept beside the `http::HeaderMap`.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{AsHeaderName, HeaderName};
use http::HeaderValue;

use super::HMap;
use crate::error::{ErrorType, OrErr, Result};

/// A header name as it is written on the wire, in its original case.
///
/// Holds the bytes of the name as received (a zero-copy slice of the read
/// buffer when parsed) or as given to `insert_header`/`append_header`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseHeaderName(Bytes);

impl CaseHeaderName {
    /// A case-preserving name from any bytes. The bytes are checked when the
    /// name is added to a header (an invalid token is rejected there).
    pub fn new(name: impl Into<Bytes>) -> Self {
        CaseHeaderName(name.into())
    }

    /// The name's bytes, in their original case.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

/// Anything that can name a header while keeping its spelling: `&'static str`,
/// `String`, [`CaseHeaderName`], or an `http` [`HeaderName`] (written in
/// Title-Case, e.g. `header::CONTENT_LENGTH` → `Content-Length`).
pub trait IntoCaseHeaderName {
    /// Convert into a [`CaseHeaderName`].
    fn into_case_header_name(self) -> CaseHeaderName;
}

impl IntoCaseHeaderName for CaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for &'static str {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(Bytes::from_static(self.as_bytes()))
    }
}

impl IntoCaseHeaderName for String {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(Bytes::from(self))
    }
}

impl IntoCaseHeaderName for HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(title_case(self.as_str().as_bytes()))
    }
}

impl IntoCaseHeaderName for &HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(title_case(self.as_str().as_bytes()))
    }
}

/// `content-length` → `Content-Length`: upper-case the first letter and every
/// letter after a `-`. The names a proxy adds most often come from a static
/// table (no allocation), which spells `etag` as RFC 9110 does, `ETag`;
/// others are built.
fn title_case(name: &[u8]) -> Bytes {
    if let Some(spelled) = common_title_case(name) {
        return Bytes::from_static(spelled.as_bytes());
    }
    let mut out = BytesMut::with_capacity(name.len());
    let mut upper = true;
    for &b in name {
        out.put_u8(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
    out.freeze()
}

/// The Title-Case spelling of the response and request header names the
/// framework itself adds or rewrites (lower-case `name`, as `HeaderName`
/// keeps it), or `None`.
fn common_title_case(name: &[u8]) -> Option<&'static str> {
    Some(match name {
        b"age" => "Age",
        b"accept-ranges" => "Accept-Ranges",
        b"cache-control" => "Cache-Control",
        b"cache-status" => "Cache-Status",
        b"connection" => "Connection",
        b"content-length" => "Content-Length",
        b"content-range" => "Content-Range",
        b"content-type" => "Content-Type",
        b"content-encoding" => "Content-Encoding",
        b"date" => "Date",
        b"etag" => "ETag",
        b"expires" => "Expires",
        b"host" => "Host",
        b"last-modified" => "Last-Modified",
        b"location" => "Location",
        b"server" => "Server",
        b"transfer-encoding" => "Transfer-Encoding",
        b"vary" => "Vary",
        b"via" => "Via",
        b"warning" => "Warning",
        b"x-forwarded-for" => "X-Forwarded-For",
        _ => return None,
    })
}

/// The original spellings of header names: one entry per header value, in
/// the order the values were added.
///
/// A plain vector rather than a second `HeaderMap`: building it from a parsed
/// head costs a push per header (no hashing, one allocation), and writing a
/// head walks it beside the `HMap` without a lookup per name. Each entry
/// keeps its `HeaderName` too (a copy for the standard names, a reference
/// count for the others), so matching an entry to a name is a cheap compare.
#[derive(Debug, Clone, Default)]
pub(crate) struct CaseMap {
    names: Vec<(HeaderName, CaseHeaderName)>,
}

impl CaseMap {
    /// Room for `n` names.
    pub(crate) fn with_capacity(n: usize) -> Self {
        CaseMap {
            names: Vec::with_capacity(n),
        }
    }

    /// Record `case`, the spelling of a value appended for `name`.
    pub(crate) fn append(&mut self, name: HeaderName, case: CaseHeaderName) {
        self.names.push((name, case));
    }

    /// Forget every spelling of `name`.
    pub(crate) fn remove(&mut self, name: &HeaderName) {
        self.names.retain(|(n, _)| n != name);
    }

    /// Forget the spellings of names `headers` no longer has (after a
    /// removal by a name we cannot compare directly).
    fn retain_present(&mut self, headers: &HMap) {
        self.names.retain(|(n, _)| headers.contains_key(n));
    }

    /// The index of the first entry at or after `from` spelling `name`.
    fn find(&self, name: &HeaderName, from: usize) -> Option<usize> {
        let rest = self.names.get(from..)?;
        let i = rest.iter().position(|(n, _)| n == name)?;
        Some(from + i)
    }
}

/// The validated `HeaderName` for a case-preserving name.
fn header_name(name: &CaseHeaderName) -> Result<HeaderName> {
    super::known_names::header_name(name.as_slice()).or_err_with(
        ErrorType::InvalidHTTPHeader,
        || {
            format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(name.as_slice())
            )
        },
    )
}

/// Convert a value, naming the header in the error.
fn header_value<V: TryInto<HeaderValue>>(name: &CaseHeaderName, value: V) -> Result<HeaderValue> {
    value.try_into().ok().or_err_with_ctx(name)
}

/// The `HeaderName` and `HeaderValue` for a header to add, each checked
/// (RFC 9110 §5.1, §5.5), with the header named in the error.
pub(crate) fn validated<V: TryInto<HeaderValue>>(
    name: &CaseHeaderName,
    value: V,
) -> Result<(HeaderName, HeaderValue)> {
    Ok((header_name(name)?, header_value(name, value)?))
}

trait ValueCtx<T> {
    fn or_err_with_ctx(self, name: &CaseHeaderName) -> Result<T>;
}

impl<T> ValueCtx<T> for Option<T> {
    fn or_err_with_ctx(self, name: &CaseHeaderName) -> Result<T> {
        use crate::error::OkOrErr;
        self.or_err_with(ErrorType::InvalidHTTPHeader, || {
            format!(
                "invalid value for header {}",
                String::from_utf8_lossy(name.as_slice())
            )
        })
    }
}

/// Replace every value of `name` with `value` (RFC 9110 §5.2 field lines).
pub(crate) fn insert_header<V: TryInto<HeaderValue>>(
    headers: &mut HMap,
    case: Option<&mut CaseMap>,
    name: CaseHeaderName,
    value: V,
) -> Result<()> {
    let (hname, value) = validated(&name, value)?;
    if let Some(case) = case {
        case.remove(&hname);
        case.append(hname.clone(), name);
    }
    headers.insert(hname, value);
    Ok(())
}

/// Add `value` after any existing values of `name`. Returns whether the name
/// was already present.
pub(crate) fn append_header<V: TryInto<HeaderValue>>(
    headers: &mut HMap,
    case: Option<&mut CaseMap>,
    name: CaseHeaderName,
    value: V,
) -> Result<bool> {
    let (hname, value) = validated(&name, value)?;
    if let Some(case) = case {
        case.append(hname.clone(), name);
    }
    Ok(headers.append(hname, value))
}

/// Remove every value of `name`; returns the first one.
pub(crate) fn remove_header<'a, N>(
    headers: &mut HMap,
    case: Option<&mut CaseMap>,
    name: &'a N,
) -> Option<HeaderValue>
where
    N: ?Sized,
    &'a N: AsHeaderName,
{
    let removed = headers.remove(name);
    if let Some(case) = case {
        if removed.is_some() {
            case.retain_present(headers);
        }
    }
    removed
}

/// Remove every value of `name`, a `HeaderName` at hand (no hashing to
/// clean up the spellings). Returns whether there was any.
pub(crate) fn remove_named(
    headers: &mut HMap,
    case: Option<&mut CaseMap>,
    name: &HeaderName,
) -> bool {
    if headers.remove(name).is_none() {
        return false;
    }
    if let Some(case) = case {
        case.remove(name);
    }
    true
}

/// (original-case name, value) for every header value, names in first-seen
/// order, the values of one name together and in their original order. A
/// value added to the `HMap` directly (bypassing the case map) is named in
/// lower case.
pub(crate) fn case_header_iter<'a>(
    headers: &'a HMap,
    case: Option<&'a CaseMap>,
) -> CaseHeaderIter<'a> {
    CaseHeaderIter {
        values: headers.iter(),
        case,
        used: Used::new(case.map_or(0, |c| c.names.len())),
        group: None,
        last: 0,
    }
}

/// Which case-map entries have been matched to a value already: a bit per
/// entry, inline for the first 256 (a parsed head has at most
/// `MAX_HEADERS` = 256), on the heap only beyond that.
struct Used {
    inline: [u64; 4],
    spill: Vec<u64>,
    /// Every entry before this one is used.
    first_free: usize,
}

impl Used {
    fn new(n: usize) -> Self {
        Used {
            inline: [0; 4],
            spill: vec![0; n.saturating_sub(256).div_ceil(64)],
            first_free: 0,
        }
    }

    fn word(&self, i: usize) -> Option<&u64> {
        let w = i / 64;
        self.inline.get(w).or_else(|| self.spill.get(w - 4))
    }

    fn set(&mut self, i: usize) {
        let w = i / 64;
        let word = match self.inline.get_mut(w) {
            Some(word) => Some(word),
            None => self.spill.get_mut(w - 4),
        };
        if let Some(word) = word {
            *word |= 1 << (i % 64);
        }
        while self.is_set(self.first_free) {
            self.first_free += 1;
        }
    }

    fn is_set(&self, i: usize) -> bool {
        self.word(i).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// The iterator of [`case_header_iter`].
///
/// Values of one name come together from the `HMap`. The spelling of a
/// name's first value is its first unused entry; every entry before the
/// first unused one belongs to a name already written, so that search starts
/// there and, when the map and the spellings are in the same order (a parsed
/// head), finds it at once. Each further value of the name takes the next
/// entry of that name.
pub(crate) struct CaseHeaderIter<'a> {
    values: http::header::Iter<'a, HeaderValue>,
    case: Option<&'a CaseMap>,
    used: Used,
    /// The name of the current group of values.
    group: Option<&'a HeaderName>,
    /// The entry the previous value of the current group took, if any.
    last: usize,
}

impl<'a> Iterator for CaseHeaderIter<'a> {
    type Item = (&'a [u8], &'a HeaderValue);

    fn next(&mut self) -> Option<Self::Item> {
        let (name, value) = self.values.next()?;
        let Some(case) = self.case else {
            return Some((name.as_str().as_bytes(), value));
        };
        let same_group = self.group.is_some_and(|g| std::ptr::eq(g, name));
        let from = if same_group {
            self.last + 1
        } else {
            self.used.first_free
        };
        self.group = Some(name);
        // the next spelling of this name that no value took yet
        let mut found = case.find(name, from);
        while let Some(i) = found.filter(|&i| self.used.is_set(i)) {
            found = case.find(name, i + 1);
        }
        match found.and_then(|i| case.names.get(i).map(|(_, c)| (i, c))) {
            Some((i, c)) => {
                self.used.set(i);
                self.last = i;
                Some((c.as_slice(), value))
            }
            None => {
                self.last = case.names.len();
                Some((name.as_str().as_bytes(), value))
            }
        }
    }
}

/// Write `Name: value\r\n` for every header into `buf` (RFC 9112 §5).
pub(crate) fn headers_to_h1_wire(headers: &HMap, case: Option<&CaseMap>, buf: &mut BytesMut) {
    for (name, value) in case_header_iter(headers, case) {
        buf.reserve(name.len() + value.len() + 4);
        buf.put_slice(name);
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_name_constants_are_title_cased() {
        let n = http::header::CONTENT_LENGTH.into_case_header_name();
        assert_eq!(n.as_slice(), b"Content-Length");
        let n = http::header::HOST.into_case_header_name();
        assert_eq!(n.as_slice(), b"Host");
        // RFC 9110's spelling where it is not plain Title-Case
        let n = http::header::ETAG.into_case_header_name();
        assert_eq!(n.as_slice(), b"ETag");
        let n = http::header::ACCEPT_RANGES.into_case_header_name();
        assert_eq!(n.as_slice(), b"Accept-Ranges");
        let n = http::header::IF_NONE_MATCH.into_case_header_name();
        assert_eq!(n.as_slice(), b"If-None-Match");
    }

    #[test]
    fn the_static_spellings_name_their_headers() {
        for name in [
            "age",
            "accept-ranges",
            "cache-control",
            "connection",
            "content-length",
            "content-range",
            "content-type",
            "content-encoding",
            "date",
            "etag",
            "expires",
            "host",
            "last-modified",
            "location",
            "server",
            "transfer-encoding",
            "vary",
            "via",
            "warning",
            "x-forwarded-for",
        ] {
            let spelled = common_title_case(name.as_bytes()).unwrap();
            assert!(spelled.eq_ignore_ascii_case(name), "{name}");
        }
    }

    #[test]
    fn values_added_directly_are_written_lower_case() {
        let mut h = HMap::new();
        let mut c = CaseMap::default();
        append_header(&mut h, Some(&mut c), "X-A".into_case_header_name(), "1").unwrap();
        h.append("x-a", HeaderValue::from_static("2"));
        let mut buf = BytesMut::new();
        headers_to_h1_wire(&h, Some(&c), &mut buf);
        assert_eq!(&buf[..], b"X-A: 1\r\nx-a: 2\r\n");
    }

    fn wire(h: &HMap, c: &CaseMap) -> String {
        let mut buf = BytesMut::new();
        headers_to_h1_wire(h, Some(c), &mut buf);
        String::from_utf8(buf.to_vec()).unwrap()
    }

    #[test]
    fn interleaved_values_keep_their_own_spelling() {
        let mut h = HMap::new();
        let mut c = CaseMap::default();
        for (n, v) in [
            ("Y-a", "1"),
            ("X-B", "2"),
            ("y-A", "3"),
            ("x-b", "4"),
            ("Z", "5"),
        ] {
            append_header(&mut h, Some(&mut c), n.into_case_header_name(), v).unwrap();
        }
        // values of one name together, each with the spelling it was added with
        assert_eq!(
            wire(&h, &c),
            "Y-a: 1\r\ny-A: 3\r\nX-B: 2\r\nx-b: 4\r\nZ: 5\r\n"
        );
    }

    #[test]
    fn insert_and_remove_keep_spellings_in_step() {
        let mut h = HMap::new();
        let mut c = CaseMap::default();
        for (n, v) in [("A-One", "1"), ("B-Two", "2"), ("a-one", "3")] {
            append_header(&mut h, Some(&mut c), n.into_case_header_name(), v).unwrap();
        }
        insert_header(&mut h, Some(&mut c), "A-ONE".into_case_header_name(), "9").unwrap();
        assert_eq!(wire(&h, &c), "A-ONE: 9\r\nB-Two: 2\r\n");
        assert!(remove_header(&mut h, Some(&mut c), "b-two").is_some());
        append_header(&mut h, Some(&mut c), "b-TWO".into_case_header_name(), "3").unwrap();
        assert_eq!(wire(&h, &c), "A-ONE: 9\r\nb-TWO: 3\r\n");
        assert!(remove_named(
            &mut h,
            Some(&mut c),
            &HeaderName::from_static("a-one")
        ));
        assert!(!remove_named(
            &mut h,
            Some(&mut c),
            &HeaderName::from_static("a-one")
        ));
        assert_eq!(wire(&h, &c), "b-TWO: 3\r\n");
        assert_eq!(c.names.len(), 1);
    }

    #[test]
    fn more_spellings_than_fit_inline() {
        let mut h = HMap::new();
        let mut c = CaseMap::default();
        for i in 0..300 {
            append_header(
                &mut h,
                Some(&mut c),
                format!("X-{}", i % 7).into_case_header_name(),
                i.to_string(),
            )
            .unwrap();
        }
        let n = case_header_iter(&h, Some(&c))
            .filter(|(n, _)| n.starts_with(b"X-"))
            .count();
        assert_eq!(n, 300);
    }

    #[test]
    fn invalid_name_and_value_are_rejected() {
        let mut h = HMap::new();
        let e = insert_header(&mut h, None, "Bad Name".into_case_header_name(), "v").unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
        let e = insert_header(&mut h, None, "X".into_case_header_name(), "a\r\nb").unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
    }
}
