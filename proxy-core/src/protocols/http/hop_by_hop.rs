//! Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection only,
//! so a proxy removes them before forwarding a message. Framing headers are
//! then derived again by the session that writes the message (a chunked
//! upstream response without Content-Length is re-chunked for the client).

use http::header::{self, HeaderName};

use crate::http::{FieldLines, HMap, RequestHeader, ResponseHeader, HOP_BY_HOP_FIELDS};

/// The names `Connection` lists besides the fixed ones (usually none, so
/// usually no allocation).
fn listed_in_connection(headers: &impl FieldLines) -> Vec<HeaderName> {
    let mut names = Vec::new();
    if !headers.connection_tokens().names_other_fields() {
        // only connection options (`close`, `keep-alive`, `upgrade`)
        return names;
    }
    for v in headers.field_values(&header::CONNECTION) {
        for token in v.split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty()
                || token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"keep-alive")
                || token.eq_ignore_ascii_case(b"upgrade")
                // framing and routing fields are never removed because a
                // sender listed them: that would change how the message is read
                || token.eq_ignore_ascii_case(b"content-length")
                || token.eq_ignore_ascii_case(b"host")
            {
                // close/keep-alive are options, not names; upgrade is fixed
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(token) {
                names.push(n);
            }
        }
    }
    names
}

const CONNECTION_BIT: u8 = 1 << 0;
const UPGRADE_BIT: u8 = 1 << 2;

macro_rules! strip {
    ($h:expr, $fields:expr, $keep_upgrade:expr) => {{
        let present = $fields.hop_by_hop_present();
        if present != 0 {
            let keep = $keep_upgrade && present & UPGRADE_BIT != 0;
            let listed = if present & CONNECTION_BIT != 0 {
                listed_in_connection($fields)
            } else {
                Vec::new()
            };
            for (i, n) in HOP_BY_HOP_FIELDS.iter().enumerate() {
                if present & (1 << i) == 0
                    || (keep && (*n == header::UPGRADE || *n == header::CONNECTION))
                {
                    continue;
                }
                $h.remove_header_named(n);
            }
            for n in listed.iter() {
                $h.remove_header_named(n);
            }
            if keep {
                // Connection kept, but it lists only the upgrade now
                let _ = $h.insert_header(header::CONNECTION, "upgrade");
            }
        }
    }};
}

/// Remove the hop-by-hop headers of a request being forwarded: `Connection`
/// and every name it lists, `Keep-Alive`, `Proxy-Connection`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade`. With `keep_upgrade` and an
/// `Upgrade` header present (a WebSocket or other upgrade request),
/// `Upgrade` stays and `Connection` becomes `upgrade`.
pub fn strip_request(req: &mut RequestHeader, keep_upgrade: bool) {
    strip!(req, &*req, keep_upgrade)
}

/// Like [`strip_request`], for a response (keep the upgrade for a `101`).
pub fn strip_response(resp: &mut ResponseHeader, keep_upgrade: bool) {
    strip!(resp, &*resp, keep_upgrade)
}

/// The fields of `resp` as a `HeaderMap` without the hop-by-hop ones, the
/// same as [`strip_response`] leaves (without an upgrade), for a response
/// that leaves as HTTP/2, where they are connection-specific (RFC 9113
/// §8.2.2). A received header is not copied: its map is built straight
/// from its lines, leaving those fields out.
pub fn response_fields_without_hop_by_hop(resp: &ResponseHeader) -> HMap {
    let present = resp.hop_by_hop_present();
    let listed = if present & CONNECTION_BIT != 0 {
        listed_in_connection(resp)
    } else {
        Vec::new()
    };
    if let Some(map) = resp.received_map_without(present, &listed) {
        return map;
    }
    let mut clean = resp.clone();
    strip_response(&mut clean, false);
    std::mem::take(&mut clean.headers)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn wire(r: &RequestHeader) -> String {
        let mut b = BytesMut::new();
        r.header_to_h1_wire(&mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn every_fixed_name_passes_the_length_filter() {
        let mut h = HMap::new();
        for (i, n) in HOP_BY_HOP_FIELDS.iter().enumerate() {
            h.insert(n.clone(), http::HeaderValue::from_static("x"));
            assert_eq!(h.hop_by_hop_present(), (1u8 << (i + 1)) - 1, "{n}");
        }
    }

    #[test]
    fn removes_fixed_names_and_those_listed_in_connection() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in [
            ("Host", "h"),
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Connection", "keep-alive"),
            ("Trailer", "X"),
            ("Upgrade", "websocket"),
            ("X-Kept", "yes"),
        ] {
            r.append_header(k, v).unwrap();
        }
        strip_request(&mut r, false);
        assert_eq!(wire(&r), "Host: h\r\nX-Kept: yes\r\n");
    }

    #[test]
    fn upgrade_can_be_kept() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("Upgrade", "websocket").unwrap();
        r.append_header("Connection", "Upgrade, X-P").unwrap();
        r.append_header("X-P", "1").unwrap();
        strip_request(&mut r, true);
        assert_eq!(wire(&r), "Upgrade: websocket\r\nConnection: upgrade\r\n");
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Connection", "close").unwrap();
        strip_response(&mut resp, true);
        assert!(resp.headers.is_empty());
    }
}
