//! The request header: method, target, version and case-preserving headers.

use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::AsHeaderName;
use http::request::Parts as ReqParts;
use http::{HeaderValue, Method, Uri, Version};

use super::case::{self, CaseMap};
use super::field_lines::HeadLines;
use super::raw_fields::RawFields;
use super::{HMap, IntoCaseHeaderName, PARSED_SPARE};
use crate::error::{ErrorType, OrErr, Result};

/// An HTTP request header.
///
/// Dereferences to `http::request::Parts` (`method`, `uri`, `version`,
/// `headers`, `extensions`). Headers added through [`RequestHeader::insert_header`]
/// and [`RequestHeader::append_header`] (or parsed from the wire) also keep their
/// name's original spelling, which [`RequestHeader::header_to_h1_wire`] writes.
/// Changing `headers` directly through `DerefMut` works, but such names are
/// written in lower case.
///
/// A header parsed from HTTP/1 starts as the field lines it was received
/// as, like a [`ResponseHeader`](super::ResponseHeader): the `HeaderMap`
/// behind `headers` is built the first time something dereferences the
/// header, and not at all for a request forwarded without anyone reading
/// it that way. [`RequestHeader::method`], [`RequestHeader::uri`],
/// [`RequestHeader::http_version`], the field reads of [`FieldLines`](super::FieldLines), the
/// header setters, hop-by-hop removal and writing work on the received
/// lines directly.
#[derive(Debug)]
pub struct RequestHeader {
    /// The parts as `http` types: set at once for a header made in code,
    /// on first use for a parsed one. Boxed: it is most of the size, and a
    /// forwarded request often never needs it.
    full: OnceLock<Box<Full>>,
    /// A parsed head while only the calls above have changed it. When set,
    /// this is the header, and `full` (if set) is a copy made from it.
    received: Option<Received>,
    /// The request target as received when it is not a valid `Uri` (e.g. non-UTF-8 bytes).
    raw_path_fallback: Option<Bytes>,
}

#[derive(Debug, Clone)]
struct Full {
    base: ReqParts,
    header_name_map: Option<CaseMap>,
}

#[derive(Debug, Clone)]
struct Received {
    method: Method,
    uri: Uri,
    version: Version,
    fields: RawFields,
}

impl Clone for RequestHeader {
    /// A header held as received copies as received: a reference count on
    /// the head's bytes and the list of line positions (a request cloned
    /// to be sent upstream builds no map).
    fn clone(&self) -> Self {
        RequestHeader {
            full: match &self.received {
                Some(_) => OnceLock::new(),
                None => OnceLock::from(Box::new(self.full().clone())),
            },
            received: self.received.clone(),
            raw_path_fallback: self.raw_path_fallback.clone(),
        }
    }
}

impl Deref for RequestHeader {
    type Target = ReqParts;
    fn deref(&self) -> &Self::Target {
        &self.full().base
    }
}

impl DerefMut for RequestHeader {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.full_mut().base
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
            full: OnceLock::from(Box::new(Full {
                base,
                header_name_map: keep_case.then(|| CaseMap::with_capacity(cap)),
            })),
            received: None,
            raw_path_fallback: None,
        }
    }

    /// The header as `http` types, built from the received lines on first use.
    fn full(&self) -> &Full {
        self.full.get_or_init(|| Box::new(self.build_full()))
    }

    /// The field lines, as received or as the map.
    #[inline]
    fn lines(&self) -> HeadLines<'_> {
        match &self.received {
            Some(r) => HeadLines::Received(&r.fields),
            None => HeadLines::Map(&self.full().base.headers),
        }
    }

    /// The header as `http` types, to change: the received lines, if any, no
    /// longer describe it.
    fn full_mut(&mut self) -> &mut Full {
        if self.full.get().is_none() {
            self.full = OnceLock::from(Box::new(self.build_full()));
        }
        self.received = None;
        self.full
            .get_mut()
            .expect("set just above when it was not set")
    }

    /// The received head, to change in place, or `None` for a header held
    /// as a map. A map built from it is dropped: it would be out of date
    /// (it is built again if asked for).
    fn received_mut(&mut self) -> Option<&mut Received> {
        let received = self.received.as_mut()?;
        self.full = OnceLock::new();
        Some(received)
    }

    fn build_full(&self) -> Full {
        let mut base = new_parts();
        let mut header_name_map = None;
        // `received` is set whenever `full` is not (every constructor sets
        // one of them); without it the parts stay those of an empty GET /
        if let Some(r) = &self.received {
            let (headers, names) = r.fields.to_map(PARSED_SPARE);
            base.method = r.method.clone();
            base.uri = r.uri.clone();
            base.version = r.version;
            base.headers = headers;
            header_name_map = Some(names);
        }
        Full {
            base,
            header_name_map,
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

    /// A header parsed from HTTP/1 (used by the parser): the request line's
    /// parts (`raw_target` as received) and the field lines.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if `raw_target` is valid UTF-8 but not a valid
    /// request target.
    pub(crate) fn from_parsed(
        method: Method,
        raw_target: Bytes,
        version: Version,
        fields: RawFields,
    ) -> Result<Self> {
        let (uri, raw_path_fallback) = target_uri(raw_target)?;
        let mut req = Self::from_fields(method, uri, version, fields);
        req.raw_path_fallback = raw_path_fallback;
        Ok(req)
    }

    /// A header held as received whose field lines are already made (a
    /// request received over HTTP/2: [`RawFields::from_map`]).
    pub(crate) fn from_fields(
        method: Method,
        uri: Uri,
        version: Version,
        fields: RawFields,
    ) -> Self {
        RequestHeader {
            full: OnceLock::new(),
            received: Some(Received {
                method,
                uri,
                version,
                fields,
            }),
            raw_path_fallback: None,
        }
    }

    /// The method, without building the header map of a parsed header.
    pub fn method(&self) -> &Method {
        match &self.received {
            Some(r) => &r.method,
            None => &self.full().base.method,
        }
    }

    /// The request target as a `Uri`, without building the header map of a
    /// parsed header.
    pub fn uri(&self) -> &Uri {
        match &self.received {
            Some(r) => &r.uri,
            None => &self.full().base.uri,
        }
    }

    /// The HTTP version, without building the header map of a parsed header.
    pub fn http_version(&self) -> Version {
        match &self.received {
            Some(r) => r.version,
            None => self.full().base.version,
        }
    }

    /// Set every value of `name` to `value`, replacing earlier ones. The
    /// name is written as given (`insert_header("Host", ..)` → `Host:`),
    /// after the other lines.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if the name is not a token or the value contains
    /// bytes not allowed in a field value (RFC 9110 §5.5).
    pub fn insert_header(
        &mut self,
        name: impl IntoCaseHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let name = name.into_case_header_name();
        if let Some(r) = self.received_mut() {
            let (hname, value) = case::validated(&name, value)?;
            r.fields.remove(&hname);
            r.fields.add(name, hname, value);
            return Ok(());
        }
        let full = self.full_mut();
        case::insert_header(
            &mut full.base.headers,
            full.header_name_map.as_mut(),
            name,
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
        let name = name.into_case_header_name();
        if let Some(r) = self.received_mut() {
            let (hname, value) = case::validated(&name, value)?;
            let had = r.fields.has(&hname);
            r.fields.add(name, hname, value);
            return Ok(had);
        }
        let full = self.full_mut();
        case::append_header(
            &mut full.base.headers,
            full.header_name_map.as_mut(),
            name,
            value,
        )
    }

    /// Remove every value of `name` (case-insensitive); returns the first.
    pub fn remove_header<'a, N>(&mut self, name: &'a N) -> Option<HeaderValue>
    where
        N: ?Sized,
        &'a N: AsHeaderName,
    {
        let full = self.full_mut();
        case::remove_header(&mut full.base.headers, full.header_name_map.as_mut(), name)
    }

    /// Remove every value of `name`; whether there was any. Cheaper than
    /// [`RequestHeader::remove_header`] when the `HeaderName` is at hand:
    /// a header held as received stays so (no `HeaderMap` is built).
    pub fn remove_header_named(&mut self, name: &http::HeaderName) -> bool {
        if let Some(r) = self.received_mut() {
            return r.fields.remove(name);
        }
        let full = self.full_mut();
        case::remove_named(&mut full.base.headers, full.header_name_map.as_mut(), name)
    }

    /// Every (name in its original case, value) pair: names in first-seen
    /// order, the values of one name together in their original order.
    pub fn case_header_iter(&self) -> impl Iterator<Item = (&[u8], &HeaderValue)> {
        let full = self.full();
        case::case_header_iter(&full.base.headers, full.header_name_map.as_ref())
    }

    /// Write the header lines (`Name: value\r\n` each, no request line, no
    /// final empty line) into `buf` (RFC 9112 §5). A received header is
    /// written line for line as it came, then the lines added since.
    pub fn header_to_h1_wire(&self, buf: &mut BytesMut) {
        if let Some(r) = &self.received {
            return r.fields.write_h1(buf);
        }
        let full = self.full();
        case::headers_to_h1_wire(&full.base.headers, full.header_name_map.as_ref(), buf)
    }

    /// Set the method.
    pub fn set_method(&mut self, method: Method) {
        match self.received_mut() {
            Some(r) => r.method = method,
            None => self.full_mut().base.method = method,
        }
    }

    /// Set the URI; [`RequestHeader::raw_path`] follows it.
    pub fn set_uri(&mut self, uri: Uri) {
        match self.received_mut() {
            Some(r) => r.uri = uri,
            None => self.full_mut().base.uri = uri,
        }
        self.raw_path_fallback = None;
    }

    /// Set the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        match self.received_mut() {
            Some(r) => r.version = version,
            None => self.full_mut().base.version = version,
        }
    }

    /// Set the request target from raw bytes. Bytes that are not a valid
    /// `Uri` because they are not UTF-8 are kept as given for the wire, and
    /// `uri` gets a percent-encoded equivalent.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if `path` is UTF-8 but not a valid request target.
    pub fn set_raw_path(&mut self, path: &[u8]) -> Result<()> {
        let (uri, fallback) = target_uri(Bytes::copy_from_slice(path))?;
        self.set_uri(uri);
        self.raw_path_fallback = fallback;
        Ok(())
    }

    /// The request target bytes to write on the request line: the raw bytes
    /// when they are not a valid `Uri`, else the URI's path and query (an
    /// absolute-form target is thus forwarded in origin-form, RFC 9112
    /// §3.2.1), the authority for authority-form, or `/`.
    pub fn raw_path(&self) -> &[u8] {
        if let Some(raw) = &self.raw_path_fallback {
            return raw;
        }
        let uri = self.uri();
        if let Some(pq) = uri.path_and_query() {
            return pq.as_str().as_bytes();
        }
        if let Some(a) = uri.authority() {
            return a.as_str().as_bytes();
        }
        b"/"
    }

    /// The extension of the last path segment (`/a/b.js?x` → `js`), if any.
    pub fn uri_file_extension(&self) -> Option<&str> {
        let last = self.uri().path().rsplit('/').next()?;
        let (_, ext) = last.rsplit_once('.')?;
        (!ext.is_empty()).then_some(ext)
    }

    /// The underlying parts, cloned (for building an `http::Request`).
    pub fn as_owned_parts(&self) -> ReqParts {
        self.full().base.clone()
    }

    /// Whether header-name case is kept (false for [`RequestHeader::build_no_case`]).
    pub fn keeps_case(&self) -> bool {
        self.received.is_some() || self.full().header_name_map.is_some()
    }
}

impl From<ReqParts> for RequestHeader {
    /// Wrap `http` parts; names are written in lower case.
    fn from(base: ReqParts) -> Self {
        RequestHeader {
            full: OnceLock::from(Box::new(Full {
                base,
                header_name_map: None,
            })),
            received: None,
            raw_path_fallback: None,
        }
    }
}

super::field_lines::field_lines_through_lines!(RequestHeader);

/// The `Uri` for a request target as received, and the bytes themselves
/// when they are not a valid `Uri` because they are not UTF-8 (the `Uri`
/// is then their percent-encoded form).
///
/// # Errors
/// `InvalidHTTPHeader` if `path` is ASCII but not a valid request target.
fn target_uri(path: Bytes) -> Result<(Uri, Option<Bytes>)> {
    let invalid =
        |path: &Bytes| format!("invalid request target {:?}", String::from_utf8_lossy(path));
    if path.is_ascii() {
        // moved, not cloned: a clone and its drop are two atomic updates of
        // the head's reference count on every request
        return Uri::from_maybe_shared(path)
            .map(|uri| (uri, None))
            .or_err(ErrorType::InvalidHTTPHeader, "invalid request target");
    }
    let uri = Uri::from_maybe_shared(percent_encode_non_ascii(&path))
        .or_err_with(ErrorType::InvalidHTTPHeader, || invalid(&path))?;
    Ok((uri, Some(path)))
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
