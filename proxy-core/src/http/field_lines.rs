//! Read access to a message's field lines by name, whichever way they are
//! held: in an `http::HeaderMap`, or as received (a parsed response head that
//! nothing has changed yet, see [`ResponseHeader`](super::ResponseHeader)).
//!
//! The framing and connection rules of RFC 9112 (Content-Length,
//! Transfer-Encoding, Connection) read headers through this trait, so a
//! response passed through unchanged is never turned into a `HeaderMap`.

use http::HeaderName;

use super::raw_fields::RawFields;
use super::HMap;

/// The hop-by-hop fields every message may carry (RFC 9110 §7.6.1), besides
/// those its `Connection` lists: `Connection`, `Transfer-Encoding`,
/// `Upgrade`, `TE`, `Trailer`, `Keep-Alive` and `Proxy-Connection`, in the
/// order of [`FieldLines::hop_by_hop_present`]'s bits. (A `static`, not a
/// `const`: no temporary array is made and dropped at each use.)
pub static HOP_BY_HOP_FIELDS: [HeaderName; 7] = [
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::TE,
    http::header::TRAILER,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// What a message's `Connection` field lists (RFC 9110 §7.6.1, RFC 9112
/// §9.3), over all its field lines: the connection options `close`,
/// `keep-alive` and `upgrade`, and whether it names anything else (a
/// further hop-by-hop field to remove). Tokens compare case-insensitively,
/// with the spaces around them ignored (RFC 9110 §5.6.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionTokens(u8);

impl ConnectionTokens {
    const CLOSE: u8 = 1;
    const KEEP_ALIVE: u8 = 1 << 1;
    const UPGRADE: u8 = 1 << 2;
    const OTHER: u8 = 1 << 3;

    /// The tokens of one `Connection` field value (a comma-separated list).
    pub fn of_value(value: &[u8]) -> Self {
        // the usual values, as usually spelled, without splitting
        match value {
            b"keep-alive" | b"Keep-Alive" => return ConnectionTokens(Self::KEEP_ALIVE),
            b"close" | b"Close" => return ConnectionTokens(Self::CLOSE),
            b"upgrade" | b"Upgrade" => return ConnectionTokens(Self::UPGRADE),
            _ => {}
        }
        let bits = value.split(|b| *b == b',').fold(0, |bits, token| {
            let token = token.trim_ascii();
            bits | if token.is_empty() {
                0
            } else if token.eq_ignore_ascii_case(b"close") {
                Self::CLOSE
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                Self::KEEP_ALIVE
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                Self::UPGRADE
            } else {
                Self::OTHER
            }
        });
        ConnectionTokens(bits)
    }

    /// Both lists' tokens (two field lines of one message).
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        ConnectionTokens(self.0 | other.0)
    }

    /// `close` is listed: the sender closes the connection after this
    /// message (RFC 9112 §9.6).
    pub fn close(self) -> bool {
        self.0 & Self::CLOSE != 0
    }

    /// `keep-alive` is listed (what an HTTP/1.0 message needs to persist).
    pub fn keep_alive(self) -> bool {
        self.0 & Self::KEEP_ALIVE != 0
    }

    /// `upgrade` is listed (RFC 9110 §7.8).
    pub fn upgrade(self) -> bool {
        self.0 & Self::UPGRADE != 0
    }

    /// Some token other than the three options is listed: a field name that
    /// the message's next hop must not receive.
    pub fn names_other_fields(self) -> bool {
        self.0 & Self::OTHER != 0
    }
}

/// Field values by name, in the order received (RFC 9110 §5.3: several field
/// lines with one name form one comma-separated list, in order).
pub trait FieldLines {
    /// Every value of `name` (compared case-insensitively, RFC 9110 §5.1),
    /// as bytes, in order.
    fn field_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]>;

    /// Every field name, once per field line, in the case it is held in
    /// (lower case for a `HeaderMap`, as received otherwise).
    fn field_names(&self) -> impl Iterator<Item = &[u8]>;

    /// Whether there is at least one field line named `name`.
    fn has_field(&self, name: &HeaderName) -> bool {
        self.field_values(name).next().is_some()
    }

    /// Which of `names` (at most 32) are present: bit `i` for `names[i]`.
    /// The default walks the names once, comparing only those of a length
    /// that one of `names` has.
    fn fields_present(&self, names: &[HeaderName]) -> u32 {
        let mut present = 0u32;
        for name in self.field_names() {
            for (i, n) in names.iter().enumerate().take(32) {
                let n = n.as_str().as_bytes();
                if n.len() == name.len() && n.eq_ignore_ascii_case(name) {
                    present |= 1 << i;
                }
            }
        }
        present
    }

    /// Which of [`HOP_BY_HOP_FIELDS`] are present: bit `i` for the `i`th.
    fn hop_by_hop_present(&self) -> u8 {
        // seven names: the bits fit
        self.fields_present(&HOP_BY_HOP_FIELDS) as u8
    }

    /// What the `Connection` field lines list, together. The default reads
    /// them; a head as received knows it from its parse.
    fn connection_tokens(&self) -> ConnectionTokens {
        self.field_values(&http::header::CONNECTION)
            .fold(ConnectionTokens::default(), |t, v| {
                t.union(ConnectionTokens::of_value(v))
            })
    }
}

impl FieldLines for HMap {
    fn field_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }

    fn field_names(&self) -> impl Iterator<Item = &[u8]> {
        // a HeaderMap's keys() yields each name once: repeat it per value
        self.iter().map(|(n, _)| n.as_str().as_bytes())
    }

    fn has_field(&self, name: &HeaderName) -> bool {
        self.contains_key(name)
    }
}

/// A parsed head's field lines, whichever way they are held: as received,
/// or as a map. [`RequestHeader`](super::RequestHeader) and
/// [`ResponseHeader`](super::ResponseHeader) implement [`FieldLines`]
/// through this one view.
#[derive(Clone, Copy)]
pub(crate) enum HeadLines<'a> {
    Received(&'a RawFields),
    Map(&'a HMap),
}

impl<'a> HeadLines<'a> {
    #[inline]
    pub(crate) fn values(self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        match self {
            HeadLines::Received(f) => OneOf::A(f.values(name)),
            HeadLines::Map(m) => OneOf::B(m.field_values(name)),
        }
    }

    pub(crate) fn names(self) -> impl Iterator<Item = &'a [u8]> {
        match self {
            HeadLines::Received(f) => OneOf::A(f.names()),
            HeadLines::Map(m) => OneOf::B(m.field_names()),
        }
    }

    #[inline]
    pub(crate) fn has(self, name: &HeaderName) -> bool {
        match self {
            HeadLines::Received(f) => f.has(name),
            HeadLines::Map(m) => m.contains_key(name),
        }
    }

    pub(crate) fn present(self, names: &[HeaderName]) -> u32 {
        match self {
            HeadLines::Received(f) => f.present_of(names),
            HeadLines::Map(m) => m.fields_present(names),
        }
    }

    pub(crate) fn hop_by_hop_present(self) -> u8 {
        match self {
            HeadLines::Received(f) => f.hop_by_hop_present(),
            HeadLines::Map(m) => m.hop_by_hop_present(),
        }
    }

    pub(crate) fn connection_tokens(self) -> ConnectionTokens {
        match self {
            HeadLines::Received(f) => f.connection_tokens(),
            HeadLines::Map(m) => m.connection_tokens(),
        }
    }
}

/// `impl FieldLines` for a header type with a `lines(&self) -> HeadLines`
/// method: every read goes through its received lines or its map.
macro_rules! field_lines_through_lines {
    ($t:ty) => {
        impl $crate::http::FieldLines for $t {
            #[inline]
            fn field_values<'a>(
                &'a self,
                name: &'a http::HeaderName,
            ) -> impl Iterator<Item = &'a [u8]> {
                self.lines().values(name)
            }

            fn field_names(&self) -> impl Iterator<Item = &[u8]> {
                self.lines().names()
            }

            fn has_field(&self, name: &http::HeaderName) -> bool {
                self.lines().has(name)
            }

            fn fields_present(&self, names: &[http::HeaderName]) -> u32 {
                self.lines().present(names)
            }

            fn hop_by_hop_present(&self) -> u8 {
                self.lines().hop_by_hop_present()
            }

            fn connection_tokens(&self) -> $crate::http::ConnectionTokens {
                self.lines().connection_tokens()
            }
        }
    };
}
pub(crate) use field_lines_through_lines;

/// One of two iterators over the same items.
enum OneOf<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for OneOf<A, B> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            OneOf::A(a) => a.next(),
            OneOf::B(b) => b.next(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn connection_tokens_are_read_from_every_line_in_any_case() {
        let t = ConnectionTokens::of_value(b" , Close,UPGRADE ,,");
        assert!(t.close() && t.upgrade() && !t.keep_alive() && !t.names_other_fields());
        let mut h = HMap::new();
        assert_eq!(h.connection_tokens(), ConnectionTokens::default());
        h.append("connection", HeaderValue::from_static("keep-alive"));
        h.append("connection", HeaderValue::from_static("X-Trace"));
        let t = h.connection_tokens();
        assert!(t.keep_alive() && t.names_other_fields() && !t.close());
    }

    #[test]
    fn a_header_map_yields_every_value_and_a_name_per_line() {
        let mut h = HMap::new();
        h.append("vary", HeaderValue::from_static("a"));
        h.append("vary", HeaderValue::from_static("b"));
        h.append("age", HeaderValue::from_static("1"));
        let vary = HeaderName::from_static("vary");
        let values: Vec<&[u8]> = h.field_values(&vary).collect();
        assert_eq!(values, [b"a", b"b"]);
        assert_eq!(h.field_names().count(), 3);
        assert!(h.has_field(&vary));
        assert!(!h.has_field(&HeaderName::from_static("etag")));
    }
}
