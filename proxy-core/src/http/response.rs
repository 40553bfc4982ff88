//! The response header: status, reason phrase, version and case-preserving headers.

use std::ops::{Deref, DerefMut};

use bytes::{Bytes, BytesMut};
use http::header::AsHeaderName;
use http::response::Parts as RespParts;
use http::{HeaderValue, StatusCode, Version};

use super::case::{self, CaseMap};
use super::{CaseHeaderName, HMap, IntoCaseHeaderName, PARSED_SPARE};
use crate::error::{Error, ErrorType, OrErr, Result};

/// An HTTP response header.
///
/// Dereferences to `http::response::Parts` (`status`, `version`, `headers`,
/// `extensions`), keeps header-name spelling like
/// [`RequestHeader`](super::RequestHeader), and keeps a custom reason phrase
/// so a forwarded `HTTP/1.1 200 Fine` stays `Fine`.
#[derive(Debug, Clone)]
pub struct ResponseHeader {
    base: RespParts,
    header_name_map: Option<CaseMap>,
    /// Set only when it differs from the status code's canonical reason.
    reason_phrase: Option<String>,
}

impl Deref for ResponseHeader {
    type Target = RespParts;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl DerefMut for ResponseHeader {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

impl ResponseHeader {
    fn new_with(status: StatusCode, size_hint: Option<usize>, keep_case: bool) -> Self {
        let cap = size_hint.unwrap_or(8);
        let mut base = http::Response::new(()).into_parts().0;
        base.status = status;
        base.headers = HMap::with_capacity(cap);
        ResponseHeader {
            base,
            header_name_map: keep_case.then(|| CaseMap::with_capacity(cap)),
            reason_phrase: None,
        }
    }

    /// A response with status `code` (100..=999), version HTTP/1.1, no
    /// headers. `size_hint` is the expected number of headers.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if `code` is not a valid status code.
    pub fn build(code: impl TryInto<StatusCode>, size_hint: Option<usize>) -> Result<Self> {
        let status = code
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid status code")?;
        Ok(Self::new_with(status, size_hint, true))
    }

    /// Like [`ResponseHeader::build`], names written in lower case.
    ///
    /// # Errors
    /// As [`ResponseHeader::build`].
    pub fn build_no_case(code: impl TryInto<StatusCode>, size_hint: Option<usize>) -> Result<Self> {
        let status = code
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid status code")?;
        Ok(Self::new_with(status, size_hint, false))
    }

    /// Build from a parsed status line (used by the HTTP/1 parser).
    pub(crate) fn from_parsed(
        status: StatusCode,
        version: Version,
        reason: Option<&str>,
        header_count: usize,
    ) -> Result<Self> {
        let mut resp = Self::new_with(status, Some(header_count + PARSED_SPARE), true);
        resp.base.version = version;
        resp.set_reason_phrase(reason)?;
        Ok(resp)
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

    /// Set every value of `name` to `value`, replacing earlier ones.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` for an invalid name or value (RFC 9110 §5.5).
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
    /// As [`ResponseHeader::insert_header`].
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
    /// [`ResponseHeader::remove_header`] when the `HeaderName` is at hand.
    pub(crate) fn remove_header_named(&mut self, name: &http::HeaderName) -> bool {
        case::remove_named(&mut self.base.headers, self.header_name_map.as_mut(), name)
    }

    /// Every (name in its original case, value) pair, as for requests.
    pub fn case_header_iter(&self) -> impl Iterator<Item = (&[u8], &HeaderValue)> {
        case::case_header_iter(&self.base.headers, self.header_name_map.as_ref())
    }

    /// Write the header lines (`Name: value\r\n` each, no status line, no
    /// final empty line) into `buf` (RFC 9112 §5).
    pub fn header_to_h1_wire(&self, buf: &mut BytesMut) {
        case::headers_to_h1_wire(&self.base.headers, self.header_name_map.as_ref(), buf)
    }

    /// Set the status code (100..=999). A custom reason phrase is dropped.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if `status` is not a valid status code.
    pub fn set_status(&mut self, status: impl TryInto<StatusCode>) -> Result<()> {
        self.base.status = status
            .try_into()
            .explain_err(ErrorType::InvalidHTTPHeader, |_| "invalid status code")?;
        self.reason_phrase = None;
        Ok(())
    }

    /// Set the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.base.version = version;
    }

    /// Set a custom reason phrase (RFC 9112 §4: `*( HTAB / SP / VCHAR /
    /// obs-text )`); `None` or the canonical phrase restores the default.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if the phrase contains CR, LF or other control bytes.
    pub fn set_reason_phrase(&mut self, reason: Option<&str>) -> Result<()> {
        match reason {
            Some(r) if Some(r) != self.base.status.canonical_reason() => {
                if r.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                    return Err(Error::explain(
                        ErrorType::InvalidHTTPHeader,
                        format!("invalid reason phrase {r:?}"),
                    ));
                }
                self.reason_phrase = Some(r.to_owned());
            }
            _ => self.reason_phrase = None,
        }
        Ok(())
    }

    /// The reason phrase: the custom one if set, else the status code's
    /// canonical phrase (`None` for codes without one).
    pub fn get_reason_phrase(&self) -> Option<&str> {
        self.reason_phrase
            .as_deref()
            .or_else(|| self.base.status.canonical_reason())
    }

    /// Set `Content-Length` to `len` bytes.
    ///
    /// # Errors
    /// Never in practice (a number is always a valid value); kept a `Result`
    /// like the other header setters.
    pub fn set_content_length(&mut self, len: usize) -> Result<()> {
        self.insert_header(http::header::CONTENT_LENGTH, len.to_string())
    }

    /// The underlying parts, cloned (for building an `http::Response`).
    pub fn as_owned_parts(&self) -> RespParts {
        self.base.clone()
    }
}

impl From<RespParts> for ResponseHeader {
    /// Wrap `http` parts; names are written in lower case.
    fn from(base: RespParts) -> Self {
        ResponseHeader {
            base,
            header_name_map: None,
            reason_phrase: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn custom_reason_phrase_is_kept_and_canonical_is_default() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        assert_eq!(r.get_reason_phrase(), Some("OK"));
        r.set_reason_phrase(Some("Fine")).unwrap();
        assert_eq!(r.get_reason_phrase(), Some("Fine"));
        r.set_status(404).unwrap();
        assert_eq!(r.get_reason_phrase(), Some("Not Found"));
        assert!(r.set_reason_phrase(Some("a\r\nb")).is_err());
        let r = ResponseHeader::build(599, None).unwrap();
        assert_eq!(r.get_reason_phrase(), None);
    }

    #[test]
    fn content_length_and_case_on_the_wire() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.set_content_length(12).unwrap();
        r.append_header("X-CuStOm", "a").unwrap();
        let mut b = BytesMut::new();
        r.header_to_h1_wire(&mut b);
        assert_eq!(&b[..], b"Content-Length: 12\r\nX-CuStOm: a\r\n");
    }

    #[test]
    fn invalid_status_is_rejected() {
        assert!(ResponseHeader::build(1000u16, None).is_err());
        assert!(ResponseHeader::build(42u16, None).is_err());
    }
}
