//! Canned error responses.

use crate::http::ResponseHeader;

/// A response header for an error status: the status `code`,
/// `Content-Length: 0` and `Cache-Control: private, no-store`, no `Server`.
/// A `code` that is not a valid status (outside 100..=999) becomes 500.
pub fn gen_error_response(code: u16) -> ResponseHeader {
    let resp =
        ResponseHeader::build(code, Some(4)).or_else(|_| ResponseHeader::build(500u16, Some(4)));
    // 500 is a valid status code, so the fallback above cannot fail; the
    // headers below are constant and valid, so the inserts cannot fail either
    let mut resp = match resp {
        Ok(r) => r,
        Err(_) => ResponseHeader::from(http::Response::new(()).into_parts().0),
    };
    let _ = resp.insert_header(http::header::CONTENT_LENGTH, "0");
    let _ = resp.insert_header(http::header::CACHE_CONTROL, "private, no-store");
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn error_response_has_length_zero_and_no_store() {
        let r = gen_error_response(502);
        assert_eq!(r.status, 502);
        let mut b = BytesMut::new();
        r.header_to_h1_wire(&mut b);
        assert_eq!(
            &b[..],
            b"Content-Length: 0\r\nCache-Control: private, no-store\r\n"
        );
        assert_eq!(gen_error_response(42).status, 500);
    }
}
