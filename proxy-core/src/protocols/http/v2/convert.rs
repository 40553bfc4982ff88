//! Between HTTP/2 messages and the framework's header types.
//!
//! Requests: the pseudo-headers become method and target, `:authority`
//! becomes `Host` when the request has none (RFC 9113 §8.3.1), and split
//! `cookie` fields are joined (RFC 9113 §8.2.3), so the request can go to an
//! HTTP/1.1 upstream as is. Responses: connection-specific fields are never
//! sent on HTTP/2 (RFC 9113 §8.2.2).
//!
//! Upstream (the proxy as an HTTP/2 client): [`request_to_h2`] turns a
//! request into the pseudo-headers and fields of an HTTP/2 request (`Host`
//! becomes `:authority`, connection-specific fields are dropped, `TE:
//! trailers` is kept), and [`response_from_h2`] reads a response head back.

use http::header::{self, HeaderValue};
use http::{Method, Version};

use crate::error::{Error, ErrorType, Result};
use crate::http::raw_fields::RawFields;
use crate::http::{RequestHeader, ResponseHeader};
use crate::protocols::http::hop_by_hop;

/// A [`RequestHeader`] from the head of an HTTP/2 request.
///
/// The target is the `:path` (origin-form), or for `CONNECT` the
/// `:authority` (authority-form, RFC 9113 §8.5); the version is HTTP/2.
///
/// # Errors
/// `InvalidHTTPHeader` when the path is not a valid request target, or a
/// request other than CONNECT has no `:path` (RFC 9113 §8.3.1; `h2` already
/// refuses most malformed heads with a stream error).
pub fn request_from_h2(mut parts: http::request::Parts) -> Result<RequestHeader> {
    // the target as its own `Uri` (shares the bytes `h2` parsed, no re-parse)
    let mut target = http::uri::Parts::default();
    if parts.method == Method::CONNECT {
        target.authority = parts
            .uri
            .authority()
            .filter(|a| !a.as_str().is_empty())
            .cloned();
    } else {
        target.path_and_query = parts
            .uri
            .path_and_query()
            .filter(|p| !p.as_str().is_empty())
            .cloned();
    }
    if target.authority.is_none() && target.path_and_query.is_none() {
        return Error::e_explain(ErrorType::InvalidHTTPHeader, "HTTP/2 request without :path");
    }
    let uri = http::Uri::from_parts(target).map_err(|_| {
        Error::explain(
            ErrorType::InvalidHTTPHeader,
            "invalid HTTP/2 request target",
        )
    })?;
    join_cookies(&mut parts.headers)?;
    let host = match parts.uri.authority() {
        Some(authority) if !parts.headers.contains_key(header::HOST) => Some(
            HeaderValue::from_str(authority.as_str())
                .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid :authority"))?,
        ),
        _ => None,
    };
    // Held as field lines, as a request received over HTTP/1 is, unless
    // `h2` attached extensions (the `:protocol` of an extended CONNECT,
    // RFC 8441), which only the `http` parts can carry.
    if parts.extensions.is_empty() {
        let first = host.as_ref().map(|h| (&b"host"[..], h.as_bytes()));
        if let Some(fields) = RawFields::from_map(first, &parts.headers) {
            return Ok(RequestHeader::from_fields(
                parts.method,
                uri,
                Version::HTTP_2,
                fields,
            ));
        }
    }
    if let Some(host) = host {
        parts.headers.insert(header::HOST, host);
    }
    parts.uri = uri;
    parts.version = Version::HTTP_2;
    Ok(RequestHeader::from(parts))
}

/// RFC 9113 §8.2.3: a client may split `cookie` into several fields; before
/// the request goes to an HTTP/1.1 hop they are joined with `"; "`.
fn join_cookies(headers: &mut http::HeaderMap) -> Result<()> {
    let mut all = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (all.next(), all.next()) else {
        return Ok(());
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    let value = HeaderValue::from_bytes(&joined)
        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid cookie"))?;
    headers.insert(header::COOKIE, value);
    Ok(())
}

/// The `http::Response` `h2` sends for `resp`: status and fields, without
/// the connection-specific ones (`Connection`, the names it lists,
/// `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, `TE`;
/// RFC 9113 §8.2.2, which `h2` would otherwise refuse). The reason phrase
/// does not exist in HTTP/2 and is dropped.
pub fn response_to_h2(resp: &ResponseHeader) -> http::Response<()> {
    let mut out = http::Response::new(());
    *out.status_mut() = resp.status_code();
    *out.headers_mut() = hop_by_hop::response_fields_without_hop_by_hop(resp);
    out
}

/// The `http::Request` `h2` sends upstream for `req` (RFC 9113 §8.3.1).
///
/// - `:method` is the request's method; `:scheme` is `scheme` (`http` or
///   `https`, by the connection); `:path` is the request target (`/` when
///   empty, `*` for a bare `OPTIONS`); for `CONNECT` only `:authority` is sent.
/// - `:authority` is the `Host` field, which is then removed (a client
///   "SHOULD use the :authority pseudo-header field instead of the Host
///   header field", §8.3.1), else the authority of an absolute-form target,
///   else `fallback_authority` (e.g. the peer's SNI or address).
/// - Connection-specific fields are removed (§8.2.2): `Connection` and the
///   names it lists, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`,
///   `Upgrade`, `Trailer`; `TE` is kept only as `trailers`, the one value
///   HTTP/2 allows (gRPC needs it).
///
/// # Errors
/// `InvalidHTTPHeader` when the authority or the target cannot form a URI.
pub fn request_to_h2(
    req: &RequestHeader,
    scheme: &str,
    fallback_authority: &str,
) -> Result<http::Request<()>> {
    let mut clean = req.clone();
    let wants_trailers = clean
        .headers
        .get_all(header::TE)
        .iter()
        .any(|v| te_has_trailers(v.as_bytes()));
    hop_by_hop::strip_request(&mut clean, false);
    let host = clean.remove_header(&header::HOST);
    let authority: String = match &host {
        Some(h) => String::from_utf8_lossy(h.as_bytes()).into_owned(),
        None => match req.uri.authority() {
            Some(a) => a.as_str().to_string(),
            None => fallback_authority.to_string(),
        },
    };
    let invalid = |what: &'static str| Error::explain(ErrorType::InvalidHTTPHeader, what);
    let uri = if clean.method == Method::CONNECT {
        http::Uri::builder()
            .authority(authority.as_str())
            .build()
            .map_err(|_| invalid("invalid authority for an HTTP/2 CONNECT"))?
    } else {
        let path = match req.uri.path_and_query() {
            Some(p) => p.as_str(),
            None => "/",
        };
        let mut b = http::Uri::builder().scheme(scheme).path_and_query(path);
        if !authority.is_empty() {
            b = b.authority(authority.as_str());
        }
        b.build()
            .map_err(|_| invalid("request target or Host cannot form an HTTP/2 request"))?
    };
    let mut out = http::Request::new(());
    *out.method_mut() = clean.method.clone();
    *out.uri_mut() = uri;
    *out.version_mut() = Version::HTTP_2;
    let mut headers = std::mem::take(&mut clean.headers);
    if wants_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    *out.headers_mut() = headers;
    Ok(out)
}

/// Whether a `TE` value lists `trailers` (RFC 9110 §10.1.4).
fn te_has_trailers(value: &[u8]) -> bool {
    value.split(|b| *b == b',').any(|t| {
        let t = t.split(|b| *b == b';').next().unwrap_or_default();
        t.trim_ascii().eq_ignore_ascii_case(b"trailers")
    })
}

/// A [`ResponseHeader`] from the head of an HTTP/2 response: its status
/// and fields, version HTTP/2. Names are kept in lower case, as HTTP/2
/// sends them (RFC 9113 §8.2.1).
///
/// # Errors
/// None today (the `h2` crate validated the head); a `Result` so stricter
/// checks can be added.
pub fn response_from_h2(parts: http::response::Parts) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build_no_case(parts.status, None)?;
    resp.set_version(Version::HTTP_2);
    resp.headers = parts.headers;
    Ok(resp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::FieldLines;

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn authority_becomes_host_and_path_the_target() {
        let r = http::Request::get("https://example.org:8443/a/b?c=d")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        let req = request_from_h2(parts(r)).unwrap();
        assert_eq!(req.uri.to_string(), "/a/b?c=d");
        assert_eq!(req.headers["host"], "example.org:8443");
        assert_eq!(req.headers["accept"], "*/*");
        assert_eq!(req.version, Version::HTTP_2);
    }

    #[test]
    fn a_request_is_held_as_field_lines_and_written_to_http1_as_them() {
        let r = http::Request::get("https://example.org/p")
            .header("accept", "*/*")
            .header("x-two", "1")
            .header("x-two", "2")
            .body(())
            .unwrap();
        let req = request_from_h2(parts(r)).unwrap();
        let mut upstream = req.clone();
        upstream.set_version(Version::HTTP_11);
        upstream.insert_header("X-Added", "yes").unwrap();
        let mut wire = bytes::BytesMut::new();
        upstream.header_to_h1_wire(&mut wire);
        assert_eq!(
            &wire[..],
            b"host: example.org\r\naccept: */*\r\nx-two: 1\r\nx-two: 2\r\nX-Added: yes\r\n"
        );
        // the request the client sent is unchanged
        assert!(!req.has_field(&http::HeaderName::from_static("x-added")));
        assert_eq!(
            req.field_values(&header::HOST).collect::<Vec<_>>(),
            [b"example.org"]
        );
    }

    #[test]
    fn an_extended_connect_keeps_its_protocol() {
        let mut r = http::Request::connect("https://example.org/chat")
            .body(())
            .unwrap();
        r.extensions_mut().insert(7u8);
        let req = request_from_h2(parts(r)).unwrap();
        assert_eq!(req.extensions.get::<u8>(), Some(&7));
        assert_eq!(req.headers["host"], "example.org");
    }

    #[test]
    fn an_explicit_host_is_kept() {
        let r = http::Request::get("https://a.example/")
            .header("host", "b.example")
            .body(())
            .unwrap();
        let req = request_from_h2(parts(r)).unwrap();
        assert_eq!(req.headers.get_all("host").iter().count(), 1);
        assert_eq!(req.headers["host"], "b.example");
    }

    #[test]
    fn split_cookies_are_joined() {
        let r = http::Request::get("https://a.example/")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("cookie", "c=3")
            .body(())
            .unwrap();
        let req = request_from_h2(parts(r)).unwrap();
        let all: Vec<_> = req.headers.get_all("cookie").iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
    }

    #[test]
    fn connect_uses_the_authority_as_target() {
        let r = http::Request::connect("example.org:443").body(()).unwrap();
        let req = request_from_h2(parts(r)).unwrap();
        assert_eq!(req.method, Method::CONNECT);
        assert_eq!(req.uri.to_string(), "example.org:443");
    }

    #[test]
    fn connection_specific_fields_are_not_sent() {
        let mut resp = ResponseHeader::build(200u16, None).unwrap();
        resp.insert_header("Connection", "keep-alive, x-private")
            .unwrap();
        resp.insert_header("Keep-Alive", "timeout=5").unwrap();
        resp.insert_header("Transfer-Encoding", "chunked").unwrap();
        resp.insert_header("Upgrade", "h2c").unwrap();
        resp.insert_header("X-Private", "1").unwrap();
        resp.insert_header("Content-Type", "text/plain").unwrap();
        let out = response_to_h2(&resp);
        assert_eq!(out.status(), 200);
        let names: Vec<_> = out.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }

    #[test]
    fn a_received_response_loses_the_same_fields_as_when_stripped() {
        use crate::protocols::http::v1::head::{parse_response, HeadParse};
        let wire = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\n\
                    Keep-Alive: timeout=5\r\nContent-Type: text/plain\r\n\
                    X-Private: 1\r\nTransfer-Encoding: chunked\r\n\
                    Set-Cookie: a=1\r\nset-cookie: b=2\r\nTE: trailers\r\n\r\n";
        let mut buf = bytes::BytesMut::from(wire);
        let Ok(HeadParse::Complete(mut resp, _)) = parse_response(&mut buf, &Default::default())
        else {
            panic!("the head parses");
        };
        resp.append_header("Proxy-Connection", "close").unwrap();
        resp.append_header("X-Added", "yes").unwrap();
        let out = response_to_h2(&resp);
        let mut stripped = resp.clone();
        hop_by_hop::strip_response(&mut stripped, false);
        assert_eq!(*out.headers(), stripped.headers);
        let names: Vec<_> = out
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("content-type", "text/plain"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("x-added", "yes"),
            ]
        );
    }

    fn upstream(req: &RequestHeader) -> http::Request<()> {
        request_to_h2(req, "https", "fallback.example").unwrap()
    }

    #[test]
    fn host_becomes_authority_and_is_removed() {
        let mut r = RequestHeader::build("GET", b"/a?b=c", None).unwrap();
        r.insert_header("Host", "example.org:8443").unwrap();
        r.insert_header("Accept", "*/*").unwrap();
        let out = upstream(&r);
        assert_eq!(out.uri().to_string(), "https://example.org:8443/a?b=c");
        assert_eq!(out.uri().authority().unwrap(), "example.org:8443");
        assert_eq!(out.uri().path_and_query().unwrap(), "/a?b=c");
        assert!(out.headers().get("host").is_none());
        assert_eq!(out.headers()["accept"], "*/*");
        assert_eq!(out.version(), Version::HTTP_2);
    }

    #[test]
    fn without_host_the_fallback_authority_is_used() {
        let mut r = RequestHeader::build("POST", b"/x", None).unwrap();
        r.set_version(Version::HTTP_10);
        let out = request_to_h2(&r, "http", "10.0.0.1:80").unwrap();
        assert_eq!(out.uri().to_string(), "http://10.0.0.1:80/x");
        assert_eq!(out.method(), Method::POST);
    }

    #[test]
    fn absolute_form_target_gives_the_authority() {
        let r = RequestHeader::build("GET", b"http://origin.example/p", None).unwrap();
        let out = upstream(&r);
        assert_eq!(out.uri().authority().unwrap(), "origin.example");
        assert_eq!(out.uri().path_and_query().unwrap(), "/p");
        // the connection decides the scheme
        assert_eq!(out.uri().scheme_str(), Some("https"));
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in [
            ("Host", "h"),
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "websocket"),
            ("Trailer", "X-Checksum"),
            ("TE", "gzip"),
            ("X-Kept", "yes"),
        ] {
            r.append_header(k, v).unwrap();
        }
        let out = upstream(&r);
        let names: Vec<_> = out.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn te_trailers_is_kept_alone() {
        for te in [
            "trailers",
            "Trailers",
            "gzip, trailers",
            "trailers;q=1, deflate",
        ] {
            let mut r = RequestHeader::build("POST", b"/svc/Method", None).unwrap();
            r.insert_header("Host", "grpc.example").unwrap();
            r.insert_header("TE", te).unwrap();
            let out = upstream(&r);
            let all: Vec<_> = out.headers().get_all("te").iter().collect();
            assert_eq!(all, ["trailers"], "TE: {te}");
        }
    }

    #[test]
    fn empty_path_becomes_slash_and_connect_sends_authority_only() {
        let mut r = RequestHeader::build("CONNECT", b"example.org:443", None).unwrap();
        r.insert_header("Host", "example.org:443").unwrap();
        let out = upstream(&r);
        assert_eq!(out.uri().authority().unwrap(), "example.org:443");
        assert!(out.uri().scheme().is_none());
    }

    #[test]
    fn response_head_is_read_with_fields_and_status() {
        let resp = http::Response::builder()
            .status(404)
            .header("content-type", "text/plain")
            .header("grpc-status", "5")
            .body(())
            .unwrap();
        let head = response_from_h2(resp.into_parts().0).unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.version, Version::HTTP_2);
        assert_eq!(head.headers["content-type"], "text/plain");
        assert_eq!(head.headers["grpc-status"], "5");
    }
}
