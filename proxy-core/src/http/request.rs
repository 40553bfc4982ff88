//! The request header: method, target, version and case-preserving headers.

use std::ops::{Deref, DerefMut};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::AsHeaderName;
use http::request::Parts as ReqParts;
use http::{HeaderValue, Method, Uri, Version};

use super::case::{self, CaseMap};
use super::{CaseHeaderName, HMap, IntoCaseHeaderName, PARSED_SPARE};
use crate::error::{ErrorType, OrErr, Result};

/// An HTTP request header.
///
/// Dereferences to `http::request::Parts` (`method`, `uri`, `version`,
/// `headers`, `extensions`). Headers added through [`RequestHeader::insert_header`]
/// and [`RequestHeader::append_header`] (or parsed from the wire) also keep their
/// name's original spelling, which [`RequestHeader::header_to_h1_wire`] writes.
/// Changing `headers` directly through `DerefMut` works, but such names are
/// written in lower case.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    base: ReqParts,
    header_name_map: Option<CaseMap>,
    /// The request target as received when it is not a valid `Uri` (e.g. non-UTF-8 bytes).
    raw_path_fallback: Option<Bytes>,
}

impl Deref for RequestHeader {
    type Target = ReqParts;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl DerefMut for RequestHeader {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

fn new_parts() -> ReqParts {
    http::Request::new(()).into_parts().0
}

impl RequestHeader {
    fn new_with(method: Method, size_hint: Option<usize>, keep_case: bool) -> Self {
        let cap = size_hint.unwrap_or(8);
        let mut base = new_parts();
        base.method = method;
        base.headers = HMap::with_capacity(cap);
        RequestHeader {
            base,
            header_name_map: keep_case.then(|| CaseMap::with_capacity(cap)),
            raw_path_fallback: None,
        }
    }

    /// A request with `method` and request target `path` (RFC 9112 §3.2:
    /// origin-form `/p?q`, absolute-form, authority-form or `*`), version
    /// HTTP/1.1, no headers. `size_hint` is the expected number of headers.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if the method is not a valid token or `path` is
    /// valid UTF-8 but not a valid request target.
    pub fn build(
        method: impl TryInto<Method>,
        path: &[u8],
        size_hint: Option<usize>,
    ) -> Result<Self> {
        let method = method
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid request method")?;
        let mut req = Self::new_with(method, size_hint, true);
        req.set_raw_path(path)?;
        Ok(req)
    }

    /// Like [`RequestHeader::build`], without keeping header-name case: names
    /// are written in lower case (cheaper, e.g. for HTTP/2).
    ///
    /// # Errors
    /// As [`RequestHeader::build`].
    pub fn build_no_case(
        method: impl TryInto<Method>,
        path: &[u8],
        size_hint: Option<usize>,
    ) -> Result<Self> {
        let method = method
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid request method")?;
        let mut req = Self::new_with(method, size_hint, false);
        req.set_raw_path(path)?;
        Ok(req)
    }

    /// Build from a parsed head (used by the HTTP/1 parser). `raw_target` is
    /// the request target as received.
    pub(crate) fn from_parsed(
        method: Method,
        raw_target: Bytes,
        version: Version,
        header_count: usize,
    ) -> Result<Self> {
        let mut req = Self::new_with(method, Some(header_count + PARSED_SPARE), true);
        req.base.version = version;
        req.set_raw_path_shared(raw_target)?;
        Ok(req)
    }

    /// Append a parsed header without re-validating it (the parser did).
    pub(crate) fn append_parsed(
        &mut self,
        name: http::HeaderName,
        case: Bytes,
        value: HeaderValue,
    ) {
        if let Some(map) = self.header_name_map.as_mut() {
            map.append(name.clone(), CaseHeaderName::new(case));
        }
        self.base.headers.append(name, value);
    }

    /// Set every value of `name` to `value`, replacing earlier ones. The
    /// name is written as given (`insert_header("Host", ..)` → `Host:`).
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if the name is not a token or the value contains
    /// bytes not allowed in a field value (RFC 9110 §5.5).
    pub fn insert_header(
        &mut self,
        name: impl IntoCaseHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        case::insert_header(
            &mut self.base.headers,
            self.header_name_map.as_mut(),
            name.into_case_header_name(),
            value,
        )
    }

    /// Add a value for `name` after its existing ones. Returns `true` if the
    /// name was already present.
    ///
    /// # Errors
    /// As [`RequestHeader::insert_header`].
    pub fn append_header(
        &mut self,
        name: impl IntoCaseHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<bool> {
        case::append_header(
            &mut self.base.headers,
            self.header_name_map.as_mut(),
            name.into_case_header_name(),
            value,
        )
    }

    /// Remove every value of `name` (case-insensitive); returns the first.
    pub fn remove_header<'a, N>(&mut self, name: &'a N) -> Option<HeaderValue>
    where
        N: ?Sized,
        &'a N: AsHeaderName,
    {
        case::remove_header(&mut self.base.headers, self.header_name_map.as_mut(), name)
    }

    /// Remove every value of `name`; whether there was any. Cheaper than
    /// [`RequestHeader::remove_header`] when the `HeaderName` is at hand.
    pub(crate) fn remove_header_named(&mut self, name: &http::HeaderName) -> bool {
        case::remove_named(&mut self.base.headers, self.header_name_map.as_mut(), name)
    }

    /// Every (name in its original case, value) pair: names in first-seen
    /// order, the values of one name together in their original order.
    pub fn case_header_iter(&self) -> impl Iterator<Item = (&[u8], &HeaderValue)> {
        case::case_header_iter(&self.base.headers, self.header_name_map.as_ref())
    }

    /// Write the header lines (`Name: value\r\n` each, no request line, no
    /// final empty line) into `buf` (RFC 9112 §5).
    pub fn header_to_h1_wire(&self, buf: &mut BytesMut) {
        case::headers_to_h1_wire(&self.base.headers, self.header_name_map.as_ref(), buf)
    }

    /// Set the method.
    pub fn set_method(&mut self, method: Method) {
        self.base.method = method;
    }

    /// Set the URI; [`RequestHeader::raw_path`] follows it.
    pub fn set_uri(&mut self, uri: Uri) {
        self.base.uri = uri;
        self.raw_path_fallback = None;
    }

    /// Set the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.base.version = version;
    }

    /// Set the request target from raw bytes. Bytes that are not a valid
    /// `Uri` because they are not UTF-8 are kept as given for the wire, and
    /// `uri` gets a percent-encoded equivalent.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if `path` is UTF-8 but not a valid request target.
    pub fn set_raw_path(&mut self, path: &[u8]) -> Result<()> {
        self.set_raw_path_shared(Bytes::copy_from_slice(path))
    }

    fn set_raw_path_shared(&mut self, path: Bytes) -> Result<()> {
        match Uri::from_maybe_shared(path.clone()) {
            Ok(uri) => {
                self.base.uri = uri;
                self.raw_path_fallback = None;
                Ok(())
            }
            Err(e) => {
                if std::str::from_utf8(&path).is_ok() && path.is_ascii() {
                    return Err(e).or_err_with(ErrorType::InvalidHTTPHeader, || {
                        format!(
                            "invalid request target {:?}",
                            String::from_utf8_lossy(&path)
                        )
                    });
                }
                let escaped = percent_encode_non_ascii(&path);
                self.base.uri = Uri::from_maybe_shared(escaped).or_err_with(
                    ErrorType::InvalidHTTPHeader,
                    || {
                        format!(
                            "invalid request target {:?}",
                            String::from_utf8_lossy(&path)
                        )
                    },
                )?;
                self.raw_path_fallback = Some(path);
                Ok(())
            }
        }
    }

    /// The request target bytes to write on the request line: the raw bytes
    /// when they are not a valid `Uri`, else the URI's path and query (an
    /// absolute-form target is thus forwarded in origin-form, RFC 9112
    /// §3.2.1), the authority for authority-form, or `/`.
    pub fn raw_path(&self) -> &[u8] {
        if let Some(raw) = &self.raw_path_fallback {
            return raw;
        }
        if let Some(pq) = self.base.uri.path_and_query() {
            return pq.as_str().as_bytes();
        }
        if let Some(a) = self.base.uri.authority() {
            return a.as_str().as_bytes();
        }
        b"/"
    }

    /// The extension of the last path segment (`/a/b.js?x` → `js`), if any.
    pub fn uri_file_extension(&self) -> Option<&str> {
        let last = self.base.uri.path().rsplit('/').next()?;
        let (_, ext) = last.rsplit_once('.')?;
        (!ext.is_empty()).then_some(ext)
    }

    /// The underlying parts, cloned (for building an `http::Request`).
    pub fn as_owned_parts(&self) -> ReqParts {
        self.base.clone()
    }

    /// Whether header-name case is kept (false for [`RequestHeader::build_no_case`]).
    pub fn keeps_case(&self) -> bool {
        self.header_name_map.is_some()
    }
}

impl From<ReqParts> for RequestHeader {
    /// Wrap `http` parts; names are written in lower case.
    fn from(base: ReqParts) -> Self {
        RequestHeader {
            base,
            header_name_map: None,
            raw_path_fallback: None,
        }
    }
}

fn percent_encode_non_ascii(path: &[u8]) -> Bytes {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = BytesMut::with_capacity(path.len() * 2);
    for &b in path {
        if b.is_ascii_graphic() {
            out.put_u8(b);
        } else {
            out.put_u8(b'%');
            out.put_u8(HEX[usize::from(b >> 4)]);
            out.put_u8(HEX[usize::from(b & 0xf)]);
        }
    }
    out.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wire(req: &RequestHeader) -> Vec<u8> {
        let mut b = BytesMut::new();
        req.header_to_h1_wire(&mut b);
        b.to_vec()
    }

    #[test]
    fn insert_host_keeps_its_spelling_on_the_wire() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "a.example").unwrap();
        assert_eq!(wire(&req), b"Host: a.example\r\n");
        assert_eq!(req.headers.get("host").unwrap(), "a.example");
    }

    #[test]
    fn duplicates_keep_order_and_case() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-CuStOm", "a").unwrap();
        req.append_header("Accept", "*/*").unwrap();
        assert!(req.append_header("x-custom", "b").unwrap());
        assert_eq!(wire(&req), b"X-CuStOm: a\r\nx-custom: b\r\nAccept: */*\r\n");
    }

    #[test]
    fn insert_replaces_all_values_and_remove_returns_first() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-A", "1").unwrap();
        req.append_header("X-A", "2").unwrap();
        req.insert_header("x-A", "3").unwrap();
        assert_eq!(wire(&req), b"x-A: 3\r\n");
        assert_eq!(req.remove_header("X-a").unwrap(), "3");
        assert!(wire(&req).is_empty());
        assert!(req.remove_header("X-a").is_none());
    }

    #[test]
    fn build_no_case_writes_lower_case() {
        let mut req = RequestHeader::build_no_case("GET", b"/", None).unwrap();
        req.insert_header("Host", "a").unwrap();
        assert_eq!(wire(&req), b"host: a\r\n");
    }

    #[test]
    fn raw_path_follows_uri_and_keeps_non_utf8_bytes() {
        let mut req = RequestHeader::build("GET", b"/a/b.js?x=1", None).unwrap();
        assert_eq!(req.raw_path(), b"/a/b.js?x=1");
        assert_eq!(req.uri_file_extension(), Some("js"));
        req.set_uri(Uri::from_static("/c"));
        assert_eq!(req.raw_path(), b"/c");
        req.set_raw_path(b"/caf\xe9").unwrap();
        assert_eq!(req.raw_path(), b"/caf\xe9");
        assert_eq!(req.uri.path(), "/caf%E9");
        assert!(req.set_raw_path(b"/a b").is_err());
        let req = RequestHeader::build("GET", b"http://h.example/p?q", None).unwrap();
        assert_eq!(req.raw_path(), b"/p?q");
        let req = RequestHeader::build("CONNECT", b"h.example:443", None).unwrap();
        assert_eq!(req.raw_path(), b"h.example:443");
    }

    #[test]
    fn invalid_method_is_rejected() {
        let e = RequestHeader::build("G T", b"/", None).unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
    }
}
