//! Field lines as received: the frozen bytes of a parsed head and where each
//! name and value lies in them (RFC 9112 §5).
//!
//! A response a proxy passes on unchanged needs no `HeaderMap`: its framing
//! headers are read, its hop-by-hop lines dropped and the rest written back
//! from these bytes. The map is built only when something asks for it (see
//! [`ResponseHeader`](super::ResponseHeader)).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue};

use super::case::{CaseHeaderName, CaseMap};
use super::field_lines::ConnectionTokens;
use super::known_names::{header_name, known_id, known_id_of, known_name, CONNECTION_ID};
use super::HMap;
use crate::error::{Error, ErrorType, Result};

/// Line `l` of `head` as `http` types: the name, its spelling as received
/// when `want_case` (a slice of `head`, no copy) and the value (a slice too).
/// A name [`KNOWN`](super::known_names::KNOWN) is taken from that table by
/// its number, without being matched again.
///
/// # Errors
/// `InvalidHTTPHeader` if a range is outside `head`, the name is not a
/// token or the value has bytes a field value may not (RFC 9110 §5.1, §5.5).
fn field_line(
    head: &Bytes,
    l: &RawLine,
    want_case: bool,
) -> Result<(HeaderName, Option<Bytes>, HeaderValue)> {
    let invalid = |what: String| Error::explain(ErrorType::InvalidHTTPHeader, what);
    let (name, value) = (span(l.name), span(l.value));
    let Some(spelled) = head.get(name.clone()) else {
        return Err(invalid("header outside the parsed head".into()));
    };
    if head.get(value.clone()).is_none() {
        return Err(invalid("header outside the parsed head".into()));
    }
    let hname = match known_name(l.known) {
        Some(n) => n.clone(),
        None => header_name(spelled).map_err(|_| {
            invalid(format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(spelled)
            ))
        })?,
    };
    let case = want_case.then(|| head.slice(name));
    let value = HeaderValue::from_maybe_shared(head.slice(value))
        .map_err(|_| invalid(format!("invalid value of header {hname}")))?;
    Ok((hname, case, value))
}

/// Where one field line's name and value lie in the head (byte offsets),
/// and the name's number in [`KNOWN`](super::known_names::KNOWN).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawLine {
    name: (u32, u32),
    value: (u32, u32),
    known: u8,
}

/// A line's `(start, end)` offsets as a range of the head.
fn span((start, end): (u32, u32)) -> Range<usize> {
    start as usize..end as usize
}

/// A field line added after the head was received (an `Age`, a
/// `Cache-Status`...): written after the received lines.
#[derive(Debug, Clone)]
struct AddedLine {
    case: CaseHeaderName,
    name: HeaderName,
    value: HeaderValue,
}

/// What a head's lines hold, kept as lines are recorded, added and removed:
/// which known names are present, and what `Connection` lists.
#[derive(Debug, Clone, Copy, Default)]
struct LineFacts {
    /// Bit `n` set: a line with known name `n` is present (received or added).
    present: u32,
    /// What the `Connection` lines list.
    connection: ConnectionTokens,
}

impl LineFacts {
    /// Note a line with known name `known` (0: another name) and `value`.
    fn note(&mut self, known: u8, value: &[u8]) {
        self.present |= 1 << known;
        if known == CONNECTION_ID {
            self.connection = self.connection.union(ConnectionTokens::of_value(value));
        }
    }

    /// Every line with known name `known` is gone.
    fn forget(&mut self, known: u8) {
        self.present &= !(1 << known);
        if known == CONNECTION_ID {
            self.connection = ConnectionTokens::default();
        }
    }

    fn has(&self, known: u8) -> bool {
        self.present & (1 << known) != 0
    }
}

/// The field lines of a parsed head, in order, as slices of its bytes, and
/// the lines added since.
#[derive(Debug, Clone)]
pub(crate) struct RawFields {
    head: Bytes,
    lines: Vec<RawLine>,
    added: Vec<AddedLine>,
    facts: LineFacts,
}

/// Where `part`, a subslice of `buf` (as a parser returns its pieces),
/// lies in `buf`, as a byte range. An empty part, whose address may lie
/// anywhere, is `0..0`; `None` if `part` is not inside `buf`.
pub(crate) fn span_in(buf: &[u8], part: &[u8]) -> Option<Range<usize>> {
    if part.is_empty() {
        return Some(0..0);
    }
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    let end = start.checked_add(part.len()).filter(|&e| e <= buf.len())?;
    Some(start..end)
}

/// The field lines of a head as the parser found them in its read buffer,
/// before the head's bytes are split off and frozen: where each name and
/// value lies, recorded in the one pass over the parser's output.
pub(crate) struct ParsedLines {
    lines: Vec<RawLine>,
    facts: LineFacts,
    /// The end of the last line recorded (a byte offset in the buffer).
    end: u32,
}

impl ParsedLines {
    /// The lines of `headers`, which the parser returned as subslices of
    /// `buf` (an empty name or value, whose address may lie anywhere, is
    /// recorded as empty). `None` if a name or value lies outside `buf`, or
    /// past 4 GiB.
    pub(crate) fn record(buf: &[u8], headers: &[httparse::Header<'_>]) -> Option<ParsedLines> {
        let offsets = |part: &[u8]| -> Option<(u32, u32)> {
            let r = span_in(buf, part)?;
            Some((u32::try_from(r.start).ok()?, u32::try_from(r.end).ok()?))
        };
        let mut parsed = ParsedLines {
            lines: Vec::with_capacity(headers.len()),
            facts: LineFacts::default(),
            end: 0,
        };
        for h in headers {
            let name = h.name.as_bytes();
            let known = known_id(name);
            parsed.facts.note(known, h.value);
            let line = RawLine {
                name: offsets(name)?,
                value: offsets(h.value)?,
                known,
            };
            parsed.end = parsed.end.max(line.name.1).max(line.value.1);
            parsed.lines.push(line);
        }
        Some(parsed)
    }
}

impl RawFields {
    /// Fields over `head`, the frozen front of the buffer `lines` were
    /// recorded in. `None` if a line lies past the end of `head`.
    pub(crate) fn parsed(head: Bytes, lines: ParsedLines) -> Option<Self> {
        (lines.end as usize <= head.len()).then_some(RawFields {
            head,
            lines: lines.lines,
            added: Vec::new(),
            facts: lines.facts,
        })
    }

    /// Fields over `head`, the frozen bytes the ranges were parsed from.
    /// Returns `None` if a range lies outside `head` (it cannot when the
    /// ranges come from parsing those very bytes).
    pub(crate) fn new(
        head: Bytes,
        ranges: impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)>,
    ) -> Option<Self> {
        let mut lines = Vec::with_capacity(ranges.size_hint().0);
        let within = |r: &std::ops::Range<usize>| {
            (r.start <= r.end && r.end <= head.len())
                .then(|| Some((u32::try_from(r.start).ok()?, u32::try_from(r.end).ok()?)))
                .flatten()
        };
        let mut facts = LineFacts::default();
        for (name, value) in ranges {
            let known = known_id(head.get(name.clone()).unwrap_or_default());
            let line = RawLine {
                name: within(&name)?,
                value: within(&value)?,
                known,
            };
            facts.note(known, head.get(value).unwrap_or_default());
            lines.push(line);
        }
        Some(RawFields {
            head,
            lines,
            added: Vec::new(),
            facts,
        })
    }

    /// Fields written from `map` as HTTP/1 field lines (`name: value`, CRLF
    /// after each, names in lower case as `http` keeps them), after `first`
    /// (a name and a value) when given. A request received over HTTP/2 is
    /// held this way, so that it clones for the upstream by a reference
    /// count and goes to an HTTP/1 upstream in one copy. The map's names
    /// are tokens and its values hold no CR, LF or NUL (what `http`
    /// accepts), so every line is well formed. `None` past 4 GiB of lines
    /// (positions are `u32`).
    pub(crate) fn from_map(first: Option<(&[u8], &[u8])>, map: &HMap) -> Option<Self> {
        let size = map
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>()
            + first.map_or(0, |(n, v)| n.len() + v.len() + 4);
        let mut head = BytesMut::with_capacity(size);
        let mut ranges = Vec::with_capacity(map.len() + 1);
        let lines = first.into_iter().chain(
            map.iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
        );
        for (name, value) in lines {
            let name_at = head.len();
            head.put_slice(name);
            head.put_slice(b": ");
            let value_at = head.len();
            head.put_slice(value);
            ranges.push((name_at..name_at + name.len(), value_at..head.len()));
            head.put_slice(b"\r\n");
        }
        RawFields::new(head.freeze(), ranges.into_iter())
    }

    fn bytes(&self, part: (u32, u32)) -> &[u8] {
        // in range: checked by `new`, and `head` never changes
        self.head.get(span(part)).unwrap_or_default()
    }

    /// Whether received line `l` is named `name`, whose number in [`KNOWN`](super::known_names::KNOWN)
    /// is `known`: one byte compared for a known name, the name otherwise.
    #[inline]
    fn is_named(&self, l: &RawLine, name: &HeaderName, known: u8) -> bool {
        match known {
            0 => {
                l.known == 0
                    && self
                        .bytes(l.name)
                        .eq_ignore_ascii_case(name.as_str().as_bytes())
            }
            k => l.known == k,
        }
    }

    /// Every value of `name` (case-insensitive), in order.
    #[inline]
    pub(crate) fn values<'a>(&'a self, name: &'a HeaderName) -> RawValues<'a> {
        let known = known_id_of(name);
        // a known name that no line has: nothing to walk
        let absent = known != 0 && !self.facts.has(known);
        RawValues {
            fields: self,
            name,
            known,
            line: if absent { self.lines.len() } else { 0 },
            added: if absent { self.added.len() } else { 0 },
        }
    }

    /// Add a line after the others (`name` is `case` validated).
    pub(crate) fn add(&mut self, case: CaseHeaderName, name: HeaderName, value: HeaderValue) {
        self.facts.note(known_id_of(&name), value.as_bytes());
        self.added.push(AddedLine { case, name, value });
    }

    /// Whether a line named `name` is present.
    #[inline]
    pub(crate) fn has(&self, name: &HeaderName) -> bool {
        match known_id_of(name) {
            0 => self.values(name).next().is_some(),
            k => self.facts.has(k),
        }
    }

    /// What the `Connection` lines list.
    pub(crate) fn connection_tokens(&self) -> ConnectionTokens {
        self.facts.connection
    }

    /// Which of [`HOP_BY_HOP_FIELDS`](super::HOP_BY_HOP_FIELDS) are present, a bit each in its
    /// order: the bits of their numbers, 1 to 7.
    pub(crate) fn hop_by_hop_present(&self) -> u8 {
        // masked to seven bits: the conversion cannot fail
        u8::try_from((self.facts.present >> 1) & 0x7f).unwrap_or(0)
    }

    /// Which of `names` (at most 32) are present, a bit each in their order.
    pub(crate) fn present_of(&self, names: &[HeaderName]) -> u32 {
        names
            .iter()
            .take(32)
            .enumerate()
            .fold(0, |bits, (i, n)| bits | u32::from(self.has(n)) << i)
    }

    /// Every name, once per line, as received.
    pub(crate) fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.lines
            .iter()
            .map(|l| self.bytes(l.name))
            .chain(self.added.iter().map(|a| a.case.as_slice()))
    }

    /// Drop every line named `name`; whether there was one.
    pub(crate) fn remove(&mut self, name: &HeaderName) -> bool {
        let known = known_id_of(name);
        if known != 0 {
            if !self.facts.has(known) {
                return false;
            }
            self.facts.forget(known);
        }
        let before = self.lines.len() + self.added.len();
        self.added.retain(|a| a.name != *name);
        let mut lines = std::mem::take(&mut self.lines);
        lines.retain(|l| !self.is_named(l, name, known));
        self.lines = lines;
        self.lines.len() + self.added.len() != before
    }

    /// Whether a received line's name or value holds CR, LF or NUL (which
    /// would end the line early on the wire).
    pub(crate) fn has_line_break(&self) -> bool {
        self.lines.iter().any(|l| {
            [l.name, l.value].into_iter().any(|r| {
                self.bytes(r)
                    .iter()
                    .any(|&b| matches!(b, b'\r' | b'\n' | 0))
            })
        })
    }

    /// Every line as (name as spelled, value), the received ones first,
    /// in the order [`RawFields::write_h1`] writes them.
    pub(crate) fn line_iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let received = self
            .lines
            .iter()
            .map(|l| (self.bytes(l.name), self.bytes(l.value)));
        let added = self
            .added
            .iter()
            .map(|a| (a.case.as_slice(), a.value.as_bytes()));
        received.chain(added)
    }

    /// Write the lines (`Name: value\r\n` each) into `buf`, names as
    /// received (RFC 9112 §5).
    pub(crate) fn write_h1(&self, buf: &mut BytesMut) {
        let size: usize = self
            .lines
            .iter()
            .map(|l| (l.name.1 - l.name.0 + l.value.1 - l.value.0) as usize + 4)
            .sum();
        let added: usize = self
            .added
            .iter()
            .map(|a| a.case.as_slice().len() + a.value.len() + 4)
            .sum();
        buf.reserve(size + added);
        // Received lines that lie in `head` as they are written here (`Name:
        // value`, one CRLF to the next line) are copied as one run: one copy
        // for a head passed on unchanged, instead of four per line.
        let mut run: Option<(u32, u32)> = None;
        for l in &self.lines {
            let shaped = self.bytes((l.name.1, l.value.0)) == b": ";
            if let Some((start, end)) = run {
                if shaped && self.bytes((end, l.name.0)) == b"\r\n" {
                    run = Some((start, l.value.1));
                    continue;
                }
                buf.put_slice(self.bytes((start, end)));
                buf.put_slice(b"\r\n");
                run = None;
            }
            if shaped {
                run = Some((l.name.0, l.value.1));
            } else {
                buf.put_slice(self.bytes(l.name));
                buf.put_slice(b": ");
                buf.put_slice(self.bytes(l.value));
                buf.put_slice(b"\r\n");
            }
        }
        if let Some(r) = run {
            buf.put_slice(self.bytes(r));
            buf.put_slice(b"\r\n");
        }
        for a in &self.added {
            buf.put_slice(a.case.as_slice());
            buf.put_slice(b": ");
            buf.put_slice(a.value.as_bytes());
            buf.put_slice(b"\r\n");
        }
    }

    /// The lines as a `HeaderMap` with `spare` more slots, and their
    /// spellings. The values share the head's bytes (no copy).
    pub(crate) fn to_map(&self, spare: usize) -> (HMap, CaseMap) {
        let mut names = CaseMap::with_capacity(self.lines.len() + self.added.len() + spare);
        let map = self.build_map(spare, 0, &[], Some(&mut names));
        (map, names)
    }

    /// The lines as a `HeaderMap` alone, without the known names whose bits
    /// are set in `drop_known` (bit `n` for number `n` in [`KNOWN`](super::known_names::KNOWN)) and
    /// without `drop_names`: for a head leaving in another form (HTTP/2),
    /// where spellings mean nothing and connection-specific fields go.
    pub(crate) fn to_map_without(&self, drop_known: u32, drop_names: &[HeaderName]) -> HMap {
        self.build_map(0, drop_known, drop_names, None)
    }

    fn build_map(
        &self,
        spare: usize,
        drop_known: u32,
        drop_names: &[HeaderName],
        mut spellings: Option<&mut CaseMap>,
    ) -> HMap {
        let mut map = HMap::with_capacity(self.lines.len() + self.added.len() + spare);
        let dropped = |known: u8, name: &HeaderName| {
            drop_known & (1 << known) != 0 || drop_names.iter().any(|n| n == name)
        };
        for l in &self.lines {
            // Converts the lines of the parser and of `from_field_lines`,
            // which accept only token names and field values (RFC 9110
            // §5.1, §5.5), the sets `http` accepts; a line given through
            // `from_trusted_field_lines` that is not one is left out.
            let Ok((name, case, value)) = field_line(&self.head, l, spellings.is_some()) else {
                continue;
            };
            if dropped(l.known, &name) {
                continue;
            }
            if let (Some(names), Some(case)) = (spellings.as_deref_mut(), case) {
                names.append(name.clone(), CaseHeaderName::new(case));
            }
            map.append(name, value);
        }
        let dropping = drop_known != 0 || !drop_names.is_empty();
        for a in &self.added {
            if dropping && dropped(known_id_of(&a.name), &a.name) {
                continue;
            }
            if let Some(names) = spellings.as_deref_mut() {
                names.append(a.name.clone(), a.case.clone());
            }
            map.append(a.name.clone(), a.value.clone());
        }
        map
    }
}

/// The values of one name in [`RawFields`]: the received lines', then the
/// added ones.
pub(crate) struct RawValues<'a> {
    fields: &'a RawFields,
    name: &'a HeaderName,
    known: u8,
    line: usize,
    added: usize,
}

impl<'a> Iterator for RawValues<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let f = self.fields;
        if self.known != 0 {
            // a known name: one byte compared per line
            let rest = f.lines.get(self.line..).unwrap_or_default();
            if let Some((at, l)) = rest.iter().enumerate().find(|(_, l)| l.known == self.known) {
                self.line += at + 1;
                return Some(f.bytes(l.value));
            }
            self.line = f.lines.len();
        }
        while let Some(l) = f.lines.get(self.line) {
            self.line += 1;
            if f.is_named(l, self.name, self.known) {
                return Some(f.bytes(l.value));
            }
        }
        while let Some(a) = f.added.get(self.added) {
            self.added += 1;
            if a.name == *self.name {
                return Some(a.value.as_bytes());
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::known_names::KNOWN;
    use super::super::{FieldLines, HOP_BY_HOP_FIELDS};
    use super::*;

    fn fields(head: &'static [u8], lines: &[(&str, &str)]) -> RawFields {
        let find = |s: &str, from: usize| {
            let at = head[from..]
                .windows(s.len())
                .position(|w| w == s.as_bytes())
                .unwrap()
                + from;
            at..at + s.len()
        };
        let mut from = 0;
        let ranges: Vec<_> = lines
            .iter()
            .map(|(n, v)| {
                let name = find(n, from);
                let value = find(v, name.end);
                from = value.end;
                (name, value)
            })
            .collect();
        RawFields::new(Bytes::from_static(head), ranges.into_iter()).unwrap()
    }

    #[test]
    fn values_are_found_case_insensitively_and_in_order() {
        let f = fields(
            b"X-A: 1\r\nConnection: close\r\nx-a: 2\r\n",
            &[("X-A", "1"), ("Connection", "close"), ("x-a", "2")],
        );
        let xa = HeaderName::from_static("x-a");
        assert_eq!(f.values(&xa).collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(
            f.names().collect::<Vec<_>>(),
            [&b"X-A"[..], b"Connection", b"x-a"]
        );
    }

    #[test]
    fn removing_a_name_drops_all_its_lines_and_the_rest_are_written_as_received() {
        let mut f = fields(
            b"X-A: 1\r\nConnection: close\r\nx-a: 2\r\nETag: \"v\"\r\n",
            &[
                ("X-A", "1"),
                ("Connection", "close"),
                ("x-a", "2"),
                ("ETag", "\"v\""),
            ],
        );
        assert!(f.remove(&HeaderName::from_static("x-a")));
        assert!(!f.remove(&HeaderName::from_static("x-a")));
        let mut out = BytesMut::new();
        f.write_h1(&mut out);
        assert_eq!(&out[..], b"Connection: close\r\nETag: \"v\"\r\n");
        assert_eq!(f.names().count(), 2);
    }

    #[test]
    fn lines_are_written_in_wire_shape_whatever_their_layout_in_the_head() {
        // as received: no space after a colon, a trailing space, a removed
        // line between two that are otherwise one run
        let mut f = fields(
            b"A:1\r\nB: 2 \r\nC: 3\r\nD: 4\r\nX: 5\r\nE: 6\r\nF: 7",
            &[
                ("A", "1"),
                ("B", "2"),
                ("C", "3"),
                ("D", "4"),
                ("X", "5"),
                ("E", "6"),
                ("F", "7"),
            ],
        );
        assert!(f.remove(&HeaderName::from_static("x")));
        let mut out = BytesMut::new();
        f.write_h1(&mut out);
        let expected = "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 6\r\nF: 7\r\n";
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        // packed without separators, as a stored head may be
        let packed = fields(b"Age1ETagv", &[("Age", "1"), ("ETag", "v")]);
        let mut out = BytesMut::new();
        packed.write_h1(&mut out);
        assert_eq!(&out[..], b"Age: 1\r\nETag: v\r\n");
    }

    #[test]
    fn the_map_keeps_values_order_and_spelling() {
        let f = fields(
            b"Set-Cookie: a\r\nX-CuStOm: b\r\nset-cookie: c\r\n",
            &[("Set-Cookie", "a"), ("X-CuStOm", "b"), ("set-cookie", "c")],
        );
        let (map, names) = f.to_map(2);
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a", "c"]);
        let mut out = BytesMut::new();
        super::super::case::headers_to_h1_wire(&map, Some(&names), &mut out);
        assert_eq!(
            &out[..],
            b"Set-Cookie: a\r\nset-cookie: c\r\nX-CuStOm: b\r\n".as_slice()
        );
    }

    #[test]
    fn connection_tokens_follow_the_lines_as_parsed_added_and_removed() {
        let mut f = fields(
            b"Connection: Keep-Alive , x-trace\r\nX-A: 1\r\nconnection: close\r\n",
            &[
                ("Connection", "Keep-Alive , x-trace"),
                ("X-A", "1"),
                ("connection", "close"),
            ],
        );
        let t = f.connection_tokens();
        assert!(t.keep_alive() && t.close() && t.names_other_fields() && !t.upgrade());
        assert_eq!(
            t,
            HMap::from_iter([(
                http::header::CONNECTION,
                HeaderValue::from_static("Keep-Alive , x-trace")
            ),])
            .connection_tokens()
            .union(ConnectionTokens::of_value(b"close"))
        );
        assert!(f.remove(&http::header::CONNECTION));
        assert_eq!(f.connection_tokens(), ConnectionTokens::default());
        let name = http::header::CONNECTION;
        let case = CaseHeaderName::new(Bytes::from_static(b"Connection"));
        f.add(case, name, HeaderValue::from_static("upgrade"));
        let t = f.connection_tokens();
        assert!(t.upgrade() && !t.close() && !t.keep_alive() && !t.names_other_fields());
    }

    #[test]
    fn values_of_known_and_other_names_are_found_whatever_their_case() {
        let f = fields(
            b"CONTENT-LENGTH: 5\r\nX-Other: a\r\n",
            &[("CONTENT-LENGTH", "5"), ("X-Other", "a")],
        );
        let cl = http::header::CONTENT_LENGTH;
        assert_eq!(f.values(&cl).collect::<Vec<_>>(), [b"5"]);
        assert_eq!(f.values(&http::header::CONNECTION).count(), 0);
        let other = HeaderName::from_static("x-other");
        assert_eq!(f.values(&other).collect::<Vec<_>>(), [b"a"]);
        let f = fields(b"X_Under^1: u\r\n", &[("X_Under^1", "u")]);
        let under = HeaderName::from_static("x_under^1");
        assert_eq!(f.values(&under).collect::<Vec<_>>(), [b"u"]);
        assert_eq!(f.values(&HeaderName::from_static("x_under~1")).count(), 0);
    }

    #[test]
    fn the_hop_by_hop_fields_are_numbered_first() {
        assert_eq!(KNOWN[..7], HOP_BY_HOP_FIELDS);
        let f = fields(
            b"Upgrade: h2c\r\nX-A: 1\r\nConnection: upgrade\r\nContent-Length: 0\r\n",
            &[
                ("Upgrade", "h2c"),
                ("X-A", "1"),
                ("Connection", "upgrade"),
                ("Content-Length", "0"),
            ],
        );
        assert_eq!(
            u32::from(f.hop_by_hop_present()),
            f.present_of(&HOP_BY_HOP_FIELDS)
        );
        assert_eq!(f.hop_by_hop_present(), 0b101);
    }

    #[test]
    fn ranges_outside_the_head_are_refused() {
        let r = RawFields::new(Bytes::from_static(b"A: b"), [(0..1, 3..9)].into_iter());
        assert!(r.is_none());
    }
}
