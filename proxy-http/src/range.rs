//! Serving byte ranges of a stored response (RFC 9110 §14).
//!
//! [`range_header_filter`] reads the request's `Range` and `If-Range`,
//! decides what to send, and rewrites the response header for a `206
//! Partial Content` (one range: `Content-Range`; several:
//! `multipart/byteranges`) or a `416 Range Not Satisfiable`. The proxy then
//! sends the ranges with `seek`ed reads of the stored body.

use std::ops::Range;

use bytes::Bytes;
use http::header;
use proxy_core::http::{FieldLines, RequestHeader, ResponseHeader};

/// At most this many ranges are served in one multipart response; a request
/// for more gets the whole body (a defence against range amplification).
pub const MAX_RANGES: usize = 200;

/// What to send for a request's `Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeType {
    /// No (usable) range: send the whole body.
    None,
    /// One range of the body, `start..end` (end exclusive).
    Single(Range<usize>),
    /// Several ranges, as `multipart/byteranges`.
    Multi(MultiRange),
    /// Not satisfiable: 416, no body.
    Invalid,
}

/// The parts of a `multipart/byteranges` response (RFC 9110 §14.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRange {
    /// The ranges, in request order, each `start..end` (end exclusive).
    pub ranges: Vec<Range<usize>>,
    boundary: String,
    content_type: Option<String>,
}

impl MultiRange {
    /// The delimiter and part header that precede range `i` of a body of
    /// `total` bytes.
    pub fn part_header(&self, i: usize, total: usize) -> Bytes {
        let r = &self.ranges[i.min(self.ranges.len().saturating_sub(1))];
        let mut s = format!("\r\n--{}\r\n", self.boundary);
        if let Some(ct) = &self.content_type {
            s.push_str("Content-Type: ");
            s.push_str(ct);
            s.push_str("\r\n");
        }
        s.push_str(&format!(
            "Content-Range: bytes {}-{}/{total}\r\n\r\n",
            r.start,
            r.end - 1
        ));
        Bytes::from(s)
    }

    /// The closing delimiter.
    pub fn closing_delimiter(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
    }

    /// The whole multipart body's length for a body of `total` bytes.
    fn body_len(&self, total: usize) -> usize {
        (0..self.ranges.len())
            .map(|i| self.part_header(i, total).len() + self.ranges[i].len())
            .sum::<usize>()
            + self.closing_delimiter().len()
    }
}

/// Parse a `Range` value against a body of `len` bytes (RFC 9110 §14.1.2):
/// `bytes=first-last`, `first-`, `-suffix`, comma-separated, whitespace
/// allowed. Unsatisfiable ranges are dropped; none left is
/// [`RangeType::Invalid`]. Another unit, a syntax error, or more than
/// [`MAX_RANGES`] ranges is [`RangeType::None`] (the field is ignored, as
/// §14.2 allows).
pub fn parse_range(value: &[u8], len: usize) -> RangeType {
    let Ok(value) = std::str::from_utf8(value) else {
        return RangeType::None;
    };
    let value = value.trim();
    let Some(set) = value
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return RangeType::None;
    };
    let mut ranges = Vec::new();
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        if ranges.len() >= MAX_RANGES {
            return RangeType::None;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return RangeType::None;
        };
        let (first, last) = (first.trim(), last.trim());
        let r = if first.is_empty() {
            let Ok(suffix) = last.parse::<usize>() else {
                return RangeType::None;
            };
            if suffix == 0 || len == 0 {
                continue;
            }
            len.saturating_sub(suffix)..len
        } else {
            let Ok(start) = first.parse::<usize>() else {
                return RangeType::None;
            };
            let end = if last.is_empty() {
                len
            } else {
                let Ok(l) = last.parse::<usize>() else {
                    return RangeType::None;
                };
                if l < start {
                    return RangeType::None;
                }
                l.saturating_add(1).min(len)
            };
            if start >= len {
                continue;
            }
            start..end
        };
        ranges.push(r);
    }
    match ranges.len() {
        0 => RangeType::Invalid,
        1 => RangeType::Single(ranges.remove(0)),
        _ => RangeType::Multi(MultiRange {
            ranges,
            boundary: String::new(),
            content_type: None,
        }),
    }
}

/// Whether `If-Range` (RFC 9110 §13.1.5) lets the range apply to `resp`: a
/// strong entity-tag equal to the response's `ETag`, or a date equal to its
/// `Last-Modified`. No `If-Range`: yes.
pub fn if_range_matches(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    let Some(cond) = req.field_values(&header::IF_RANGE).next() else {
        return true;
    };
    if cond.starts_with(b"\"") {
        return resp
            .headers
            .get(header::ETAG)
            .is_some_and(|e| e.as_bytes() == cond);
    }
    if cond.starts_with(b"W/") {
        return false;
    }
    resp.headers
        .get(header::LAST_MODIFIED)
        .is_some_and(|lm| lm.as_bytes() == cond)
}

/// Decide the ranges for a `GET` with `Range` against a stored `200` of
/// `len` bytes, and rewrite `resp` accordingly: `206` with `Content-Range`
/// and `Content-Length` (single), `206` with a `multipart/byteranges`
/// `Content-Type` and the multipart length (several), or `416` with
/// `Content-Range: bytes */len` and no body.
pub fn range_header_filter(
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    len: usize,
) -> RangeType {
    if *req.method() != http::Method::GET || resp.status_code() != http::StatusCode::OK {
        return RangeType::None;
    }
    let Some(value) = req.field_values(&header::RANGE).next() else {
        return RangeType::None;
    };
    if !if_range_matches(req, resp) {
        return RangeType::None;
    }
    let mut range = parse_range(value, len);
    let rewritten = match &mut range {
        RangeType::None => Ok(()),
        RangeType::Invalid => (|| {
            resp.set_status(416)?;
            resp.insert_header(header::CONTENT_RANGE, format!("bytes */{len}"))?;
            resp.insert_header(header::CONTENT_LENGTH, "0")
        })(),
        RangeType::Single(r) => {
            let r = r.clone();
            (|| {
                resp.set_status(206)?;
                resp.insert_header(
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{len}", r.start, r.end - 1),
                )?;
                resp.insert_header(header::CONTENT_LENGTH, r.len())
            })()
        }
        RangeType::Multi(m) => {
            m.boundary = format!("{:016x}", fastrand::u64(..));
            m.content_type = resp
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body_len = m.body_len(len);
            let boundary = m.boundary.clone();
            (|| {
                resp.set_status(206)?;
                resp.insert_header(
                    header::CONTENT_TYPE,
                    format!("multipart/byteranges; boundary={boundary}"),
                )?;
                resp.insert_header(header::CONTENT_LENGTH, body_len)
            })()
        }
    };
    match rewritten {
        Ok(()) => range,
        Err(e) => {
            log::debug!("range not applied: {e}");
            RangeType::None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_rfc9110_14_1_2() {
        assert_eq!(parse_range(b"bytes=0-499", 1000), RangeType::Single(0..500));
        assert_eq!(
            parse_range(b"bytes=500-", 1000),
            RangeType::Single(500..1000)
        );
        assert_eq!(
            parse_range(b"bytes=-100", 1000),
            RangeType::Single(900..1000)
        );
        assert_eq!(
            parse_range(b"bytes=-5000", 1000),
            RangeType::Single(0..1000)
        );
        assert_eq!(
            parse_range(b"bytes=990-5000", 1000),
            RangeType::Single(990..1000)
        );
        assert_eq!(parse_range(b"BYTES= 1-1 ", 10), RangeType::Single(1..2));
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse_range(b"bytes=1000-", 1000), RangeType::Invalid);
        assert_eq!(parse_range(b"bytes=-0", 1000), RangeType::Invalid);
        assert_eq!(parse_range(b"items=0-1", 1000), RangeType::None);
        assert_eq!(parse_range(b"bytes=5-1", 1000), RangeType::None);
        assert_eq!(parse_range(b"bytes=a-b", 1000), RangeType::None);
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(parse_range(many.as_bytes(), 10), RangeType::None);
    }

    proptest::proptest! {
        /// Any `Range` value against any length: no panic, and every range
        /// returned lies within the body.
        #[test]
        fn range_parsing_never_panics(v in proptest::collection::vec(proptest::num::u8::ANY, 0..64), len in 0usize..10_000) {
            let check = |r: &Range<usize>| r.start < r.end && r.end <= len;
            match parse_range(&v, len) {
                RangeType::Single(r) => proptest::prop_assert!(check(&r)),
                RangeType::Multi(m) => proptest::prop_assert!(m.ranges.iter().all(check)),
                RangeType::None | RangeType::Invalid => {}
            }
            let text = format!("bytes={}", String::from_utf8_lossy(&v));
            let _ = parse_range(text.as_bytes(), len);
        }
    }

    #[test]
    fn no_input_panics() {
        for v in [
            &b""[..],
            b"bytes=",
            b"bytes=-",
            b"bytes=,,,",
            b"bytes=99999999999999999999999-",
            b"\xff",
        ] {
            let _ = parse_range(v, 10);
            let _ = parse_range(v, 0);
        }
    }

    #[test]
    fn multipart_rewrites_the_header_and_frames_parts() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Range", "bytes=0-1,-2").unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Content-Type", "text/plain").unwrap();
        let RangeType::Multi(m) = range_header_filter(&req, &mut resp, 20) else {
            panic!("multi expected");
        };
        assert_eq!(resp.status, 206);
        let mut body = Vec::new();
        let data = b"0123456789abcdefghij";
        for (i, r) in m.ranges.iter().enumerate() {
            body.extend_from_slice(&m.part_header(i, 20));
            body.extend_from_slice(&data[r.clone()]);
        }
        body.extend_from_slice(&m.closing_delimiter());
        let cl: usize = resp.headers["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(cl, body.len());
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("Content-Range: bytes 18-19/20\r\n\r\nij"));
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Range", "bytes=0-1").unwrap();
        req.insert_header("If-Range", "\"a\"").unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("ETag", "\"b\"").unwrap();
        assert_eq!(range_header_filter(&req, &mut resp, 10), RangeType::None);
        resp.insert_header("ETag", "\"a\"").unwrap();
        assert_eq!(
            range_header_filter(&req, &mut resp, 10),
            RangeType::Single(0..2)
        );
        assert_eq!(resp.headers["content-range"], "bytes 0-1/10");
    }
}
