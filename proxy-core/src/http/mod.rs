//! HTTP header types that keep header names as received.
//!
//! [`RequestHeader`] and [`ResponseHeader`] dereference to the `http` crate's
//! `request::Parts` / `response::Parts`, so all of that crate's API works on
//! them, and they also remember each header name's original spelling so an
//! HTTP/1.1 message can be forwarded byte-faithfully (`X-CuStOm` stays
//! `X-CuStOm`). Field names are compared case-insensitively (RFC 9110 §5.1);
//! only the bytes written on the wire keep the case.
//!
//! ```
//! use proxy_core::http::RequestHeader;
//! use bytes::BytesMut;
//!
//! let mut req = RequestHeader::build("GET", b"/index.html", None).unwrap();
//! req.insert_header("Host", "example.org").unwrap();
//! req.append_header("X-CuStOm", "a").unwrap();
//! let mut wire = BytesMut::new();
//! req.header_to_h1_wire(&mut wire);
//! assert_eq!(&wire[..], b"Host: example.org\r\nX-CuStOm: a\r\n");
//! ```

mod case;
mod field_lines;
pub(crate) mod known_names;
pub(crate) mod raw_fields;
mod request;
mod response;
mod syntax;

pub use case::{CaseHeaderName, IntoCaseHeaderName};
pub use field_lines::{ConnectionTokens, FieldLines, HOP_BY_HOP_FIELDS};
pub use http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
pub use request::RequestHeader;
pub use response::ResponseHeader;
pub use syntax::{is_field_value, is_tchar, is_token};

/// The header map type used throughout: `http::HeaderMap<HeaderValue>`.
pub type HMap = http::HeaderMap<HeaderValue>;

/// Room for this many more headers than a parsed head carries, so the few a
/// proxy adds (`Host`, `Via`, `X-Forwarded-For`...) do not regrow the map.
const PARSED_SPARE: usize = 4;

/// `use proxy_core::http::prelude::*` brings the two header types in scope.
pub mod prelude {
    pub use super::{RequestHeader, ResponseHeader};
}
