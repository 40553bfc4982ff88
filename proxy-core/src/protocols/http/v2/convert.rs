//! Between HTTP/2 messages and the framework's header types.
//!
//! Requests: the pseudo-headers become method and target, `:authority`
//! becomes `Host` when the request has none (RFC 9113 §8.3.1), and split
//! `cookie` fields are joined (RFC 9113 §8.2.3), so the request can go to an
//! HTTP/1.1 upstream as is. Responses: connection-specific fields are never
//! sent on HTTP/2 (RFC 9113 §8.2.2).

use http::header::{self, HeaderValue};
use http::{Method, Version};

use crate::error::{Error, ErrorType, Result};
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
pub fn request_from_h2(parts: http::request::Parts) -> Result<RequestHeader> {
    let target: &str = if parts.method == Method::CONNECT {
        parts.uri.authority().map(|a| a.as_str()).unwrap_or("")
    } else {
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    };
    if target.is_empty() {
        return Error::e_explain(ErrorType::InvalidHTTPHeader, "HTTP/2 request without :path");
    }
    let mut req = RequestHeader::build_no_case(parts.method.clone(), target.as_bytes(), None)?;
    req.set_version(Version::HTTP_2);
    let mut headers = parts.headers;
    join_cookies(&mut headers)?;
    if !headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid :authority"))?;
            headers.insert(header::HOST, host);
        }
    }
    req.headers = headers;
    Ok(req)
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
    let mut clean = resp.clone();
    hop_by_hop::strip_response(&mut clean, false);
    let mut out = http::Response::new(());
    *out.status_mut() = clean.status;
    *out.headers_mut() = std::mem::take(&mut clean.headers);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
