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
/// letter after a `-`.
fn title_case(name: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(name.len());
    let mut upper = true;
    for &b in name {
        out.put_u8(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
    out.freeze()
}

/// The parallel map of original-case names: one entry per header value, in
/// the same order as the values of that name in the `HMap`.
pub(crate) type CaseMap = http::HeaderMap<CaseHeaderName>;

/// The validated `HeaderName` for a case-preserving name.
fn header_name(name: &CaseHeaderName) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_slice()).or_err_with(ErrorType::InvalidHTTPHeader, || {
        format!(
            "invalid header name {:?}",
            String::from_utf8_lossy(name.as_slice())
        )
    })
}

/// Convert a value, naming the header in the error.
fn header_value<V: TryInto<HeaderValue>>(name: &CaseHeaderName, value: V) -> Result<HeaderValue> {
    value.try_into().ok().or_err_with_ctx(name)
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
    let hname = header_name(&name)?;
    let value = header_value(&name, value)?;
    if let Some(case) = case {
        case.insert(hname.clone(), name);
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
    let hname = header_name(&name)?;
    let value = header_value(&name, value)?;
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
    if let Some(case) = case {
        case.remove(name);
    }
    headers.remove(name)
}

/// (original-case name, value) for every header value, names in first-seen
/// order, the values of one name together and in their original order. A
/// value added to the `HMap` directly (bypassing the case map) is named in
/// lower case.
pub(crate) fn case_header_iter<'a>(
    headers: &'a HMap,
    case: Option<&'a CaseMap>,
) -> impl Iterator<Item = (&'a [u8], &'a HeaderValue)> + 'a {
    headers.keys().flat_map(move |name| {
        let mut cases = case.map(|c| c.get_all(name).into_iter());
        headers.get_all(name).into_iter().map(move |v| {
            let n = cases
                .as_mut()
                .and_then(Iterator::next)
                .map_or(name.as_str().as_bytes(), CaseHeaderName::as_slice);
            (n, v)
        })
    })
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

    #[test]
    fn invalid_name_and_value_are_rejected() {
        let mut h = HMap::new();
        let e = insert_header(&mut h, None, "Bad Name".into_case_header_name(), "v").unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
        let e = insert_header(&mut h, None, "X".into_case_header_name(), "a\r\nb").unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
    }
}
