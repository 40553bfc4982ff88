//! Parsing and writing HTTP/1.1 message heads (RFC 9112 §2–§5) with httparse.
//!
//! Parsing is zero-copy: once a head is complete its bytes are split off
//! the read buffer and frozen, and header names, values and the request
//! target become slices of that one allocation.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::{Method, StatusCode, Version};

use super::common::{HeaderLimits, MAX_HEADERS};
use crate::error::{Error, ErrorType, Result};
use crate::http::raw_fields::{span_in, ParsedLines, RawFields};
use crate::http::{RequestHeader, ResponseHeader};

/// The outcome of trying to parse a head out of a buffer.
#[derive(Debug)]
pub enum HeadParse<T> {
    /// A whole head, removed from the buffer; its size in bytes.
    Complete(T, usize),
    /// The buffer holds only part of a head.
    Partial,
}

fn too_large(what: &str, limits: &HeaderLimits) -> Box<Error> {
    Error::explain(
        ErrorType::HTTPStatus(431),
        format!(
            "{what} head over the limit of {} bytes / {} headers",
            limits.max_size, limits.max_headers
        ),
    )
}

fn malformed(what: &str, e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(
        ErrorType::InvalidHTTPHeader,
        format!("malformed {what} head: {e}"),
    )
}

fn version(v: Option<u8>) -> Version {
    match v {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    }
}

/// Where a piece of the head lies, as a byte range of the head.
type Span = std::ops::Range<usize>;

/// The range `part` (a subslice of `buf`, as httparse returns) covers in
/// `buf`. An empty part, or one that is not inside `buf`, gives `0..0`.
fn span(buf: &[u8], part: &[u8]) -> Span {
    span_in(buf, part).unwrap_or(0..0)
}

/// `head[range]` as a shared slice, or an error if the range is not inside
/// the head (it always is when it comes from parsing the head's bytes).
fn slice_of(head: &Bytes, range: &Span) -> Result<Bytes> {
    if range.end <= head.len() && range.start <= range.end {
        Ok(head.slice(range.clone()))
    } else {
        Err(malformed("message", "header outside the parsed head"))
    }
}

/// Parse a request head from the front of `buf` (RFC 9112 §3). On
/// `Complete` the head's bytes are removed from `buf`; what follows (body,
/// pipelined requests) stays.
///
/// httparse is used with its strict defaults: obs-fold (RFC 9112 §5.2),
/// bare CR, spaces before the colon and invalid tokens are all rejected.
///
/// # Errors
/// `InvalidHTTPHeader` for a malformed head; `HTTPStatus(431)` when the head
/// exceeds `limits`. The source is left unset for the caller.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &HeaderLimits,
) -> Result<HeadParse<RequestHeader>> {
    let max_headers = limits.max_headers.min(MAX_HEADERS);
    let (len, method, target, version_byte, lines) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut slots[..max_headers]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if buf.len() >= limits.max_size {
                    return Err(too_large("request", limits));
                }
                return Ok(HeadParse::Partial);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(too_large("request", limits)),
            Err(e) => return Err(malformed("request", e)),
        };
        let method = req.method.unwrap_or_default();
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| malformed("request", format!("invalid method {method:?}")))?;
        let target = span(buf, req.path.unwrap_or_default().as_bytes());
        let lines = ParsedLines::record(buf, req.headers);
        (len, method, target, req.version, lines)
    };
    if len > limits.max_size {
        return Err(too_large("request", limits));
    }
    // split off and frozen in place: the recorded ranges still point at it
    let head = buf.split_to(len).freeze();
    let target = slice_of(&head, &target)?;
    let fields = lines
        .and_then(|lines| RawFields::parsed(head, lines))
        .ok_or_else(|| malformed("request", "header outside the parsed head"))?;
    let header = RequestHeader::from_parsed(method, target, version(version_byte), fields)?;
    Ok(HeadParse::Complete(header, len))
}

/// Parse a response head from the front of `buf` (RFC 9112 §4), like
/// [`parse_request`].
///
/// # Errors
/// `InvalidHTTPHeader` for a malformed head or one over `limits` (a response
/// is never answered with 431). The source is left unset.
pub fn parse_response(
    buf: &mut BytesMut,
    limits: &HeaderLimits,
) -> Result<HeadParse<ResponseHeader>> {
    let max_headers = limits.max_headers.min(MAX_HEADERS);
    let oversize = || {
        Error::explain(
            ErrorType::InvalidHTTPHeader,
            format!(
                "response head over the limit of {} bytes / {} headers",
                limits.max_size, limits.max_headers
            ),
        )
    };
    let (len, code, version_byte, reason, lines) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut slots[..max_headers],
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if buf.len() >= limits.max_size {
                    return Err(oversize());
                }
                return Ok(HeadParse::Partial);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(oversize()),
            Err(e) => return Err(malformed("response", e)),
        };
        let reason = resp.reason.map(|r| span(buf, r.as_bytes()));
        let lines = ParsedLines::record(buf, resp.headers);
        (
            len,
            resp.code.unwrap_or_default(),
            resp.version,
            reason,
            lines,
        )
    };
    if len > limits.max_size {
        return Err(oversize());
    }
    // split off and frozen in place: the recorded ranges still point at it
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code)
        .map_err(|_| malformed("response", format!("invalid status code {code}")))?;
    // httparse returned the reason as a str: the same bytes are valid UTF-8.
    // Kept only when it is not the status's canonical phrase (the usual
    // case), and then as its own copy: the head moves into the fields.
    let reason = match reason {
        Some(r) => {
            let bytes = head
                .get(r)
                .ok_or_else(|| malformed("response", "reason outside the parsed head"))?;
            std::str::from_utf8(bytes)
                .ok()
                .filter(|r| Some(*r) != status.canonical_reason())
                .map(str::to_owned)
        }
        None => None,
    };
    let fields = lines
        .and_then(|lines| RawFields::parsed(head, lines))
        .ok_or_else(|| malformed("response", "header outside the parsed head"))?;
    let header =
        ResponseHeader::from_parsed(status, version(version_byte), reason.as_deref(), fields)?;
    Ok(HeadParse::Complete(header, len))
}

fn version_str(v: Version) -> &'static [u8] {
    match v {
        Version::HTTP_10 => b"HTTP/1.0",
        _ => b"HTTP/1.1",
    }
}

/// Serialize a request head: request line with the raw target, the headers
/// in their original case and order, and the empty line.
pub fn request_to_wire(req: &RequestHeader, buf: &mut BytesMut) {
    let target = req.raw_path();
    let method = req.method().as_str();
    buf.reserve(method.len() + target.len() + 16);
    buf.put_slice(method.as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(target);
    buf.put_u8(b' ');
    buf.put_slice(version_str(req.http_version()));
    buf.put_slice(b"\r\n");
    req.header_to_h1_wire(buf);
    buf.put_slice(b"\r\n");
}

/// Serialize a response head as HTTP/1.1 (a server sends its own version,
/// RFC 9110 §2.5): status line with the (custom) reason phrase, headers,
/// empty line.
pub fn response_to_wire(resp: &ResponseHeader, buf: &mut BytesMut) {
    let reason = resp.get_reason_phrase().unwrap_or("");
    buf.reserve(reason.len() + 16);
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(resp.status_code().as_str().as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(reason.as_bytes());
    buf.put_slice(b"\r\n");
    resp.header_to_h1_wire(buf);
    buf.put_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(input: &[u8]) -> Result<HeadParse<RequestHeader>> {
        parse_request(&mut BytesMut::from(input), &HeaderLimits::default())
    }

    #[test]
    fn many_headers_and_empty_values_round_trip_in_order() {
        let mut input = b"GET / HTTP/1.1\r\nX-Empty:\r\n".to_vec();
        for i in 0..40 {
            input.extend_from_slice(format!("X-H{i}: v{i}\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let HeadParse::Complete(r, _) = req(&input).unwrap() else {
            panic!("partial")
        };
        assert_eq!(r.headers.len(), 41);
        assert_eq!(r.headers["x-empty"], "");
        let mut out = BytesMut::new();
        request_to_wire(&r, &mut out);
        let expected = String::from_utf8(input)
            .unwrap()
            .replace("X-Empty:", "X-Empty: ");
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    }

    #[test]
    fn request_head_round_trips_case_order_and_target() {
        let input = b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-CuStOm: a\r\nx-custom: b\r\n\r\n";
        let mut buf = BytesMut::from(&input[..]);
        buf.extend_from_slice(b"rest");
        let HeadParse::Complete(r, len) =
            parse_request(&mut buf, &HeaderLimits::default()).unwrap()
        else {
            panic!("partial")
        };
        assert_eq!(len, input.len());
        assert_eq!(&buf[..], b"rest");
        let mut out = BytesMut::new();
        request_to_wire(&r, &mut out);
        assert_eq!(&out[..], &input[..]);
    }

    #[test]
    fn obs_fold_and_bad_lines_are_rejected() {
        for bad in [
            &b"GET / HTTP/1.1\r\nX-A: 1\r\n  continued\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nX-A : 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX A: 1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        ] {
            let e = req(bad).unwrap_err();
            assert_eq!(
                e.etype(),
                &ErrorType::InvalidHTTPHeader,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn oversize_head_is_431() {
        let limits = HeaderLimits {
            max_size: 100,
            max_headers: 4,
        };
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(vec![b'a'; 200]);
        let e = parse_request(&mut BytesMut::from(&long[..]), &limits).unwrap_err();
        assert_eq!(e.etype(), &ErrorType::HTTPStatus(431));
        let many = b"GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n";
        let e = parse_request(&mut BytesMut::from(&many[..]), &limits).unwrap_err();
        assert_eq!(e.etype(), &ErrorType::HTTPStatus(431));
    }

    #[test]
    fn response_keeps_custom_reason() {
        let input = b"HTTP/1.1 200 Fine Thanks\r\nX-Y: z\r\n\r\n";
        let HeadParse::Complete(r, _) =
            parse_response(&mut BytesMut::from(&input[..]), &HeaderLimits::default()).unwrap()
        else {
            panic!("partial")
        };
        assert_eq!(r.get_reason_phrase(), Some("Fine Thanks"));
        let mut out = BytesMut::new();
        response_to_wire(&r, &mut out);
        assert_eq!(&out[..], &input[..]);
    }
}
