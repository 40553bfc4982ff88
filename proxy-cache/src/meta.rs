//! [`CacheMeta`]: what the cache knows about a stored response besides its
//! body: the stored response header and the times that decide whether it may
//! be served (RFC 9111 §4.2).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_core::error::{Error, ErrorType, OrErr, Result};
use proxy_core::http::ResponseHeader;

use crate::key::HashBinary;

/// The metadata of a stored response. Cheap to clone (one reference count):
/// a hit hands the caller a clone of the stored meta; changing a clone
/// copies it first.
///
/// Times, all wall-clock ([`SystemTime`]):
/// - `created`: when the response was generated at the origin, as far as
///   the cache can tell: the time it was received minus its corrected
///   initial age (RFC 9111 §4.2.3). So [`CacheMeta::age`] is `now - created`.
/// - `updated`: when the entry was last stored or revalidated.
/// - `fresh_until`: `created` plus the freshness lifetime (§4.2.1). A
///   response that must be revalidated every time has `fresh_until ==
///   created`.
///
/// Stale serving windows, in seconds after `fresh_until` (RFC 5861):
/// `stale_while_revalidate_sec` and `stale_if_error_sec`; both 0 when the
/// response forbids serving stale (`must-revalidate`, `proxy-revalidate`,
/// `s-maxage`, RFC 9111 §5.2.2.2/§5.2.2.8/§5.2.2.10).
#[derive(Debug, Clone)]
pub struct CacheMeta(Arc<MetaInner>);

#[derive(Debug, Clone)]
struct MetaInner {
    fresh_until: SystemTime,
    created: SystemTime,
    updated: SystemTime,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    variance: Option<HashBinary>,
    header: ResponseHeader,
}

impl CacheMeta {
    /// A meta for `header`, fresh until `fresh_until`, created (and updated)
    /// at `created`, with the two stale windows in seconds.
    pub fn new(
        fresh_until: SystemTime,
        created: SystemTime,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
        header: ResponseHeader,
    ) -> Self {
        CacheMeta(Arc::new(MetaInner {
            fresh_until,
            created,
            updated: created,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            variance: None,
            header,
        }))
    }

    fn inner_mut(&mut self) -> &mut MetaInner {
        Arc::make_mut(&mut self.0)
    }

    /// Until when the response is fresh.
    pub fn fresh_until(&self) -> SystemTime {
        self.0.fresh_until
    }

    /// When the response was generated (see the type's doc).
    pub fn created(&self) -> SystemTime {
        self.0.created
    }

    /// When the entry was last stored or revalidated.
    pub fn updated(&self) -> SystemTime {
        self.0.updated
    }

    /// Whether the response is fresh at `now` (RFC 9111 §4.2: its age is
    /// below its freshness lifetime).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.0.fresh_until
    }

    /// The freshness lifetime in whole seconds (`fresh_until - created`).
    pub fn fresh_sec(&self) -> u64 {
        self.0
            .fresh_until
            .duration_since(self.0.created)
            .map_or(0, |d| d.as_secs())
    }

    /// The response's current age at `now` (RFC 9111 §4.2.3), zero if
    /// `now` is before `created` (a clock step).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.0.created).unwrap_or_default()
    }

    /// The stale-while-revalidate window in seconds (RFC 5861 §3).
    pub fn stale_while_revalidate_sec(&self) -> u32 {
        self.0.stale_while_revalidate_sec
    }

    /// The stale-if-error window in seconds (RFC 5861 §4).
    pub fn stale_if_error_sec(&self) -> u32 {
        self.0.stale_if_error_sec
    }

    /// Whether a stale copy may be served at `now` while it is revalidated
    /// in the background: `now` is within `stale_while_revalidate_sec` after
    /// `fresh_until`.
    pub fn serve_stale_while_revalidate(&self, now: SystemTime) -> bool {
        within(self.0.fresh_until, self.0.stale_while_revalidate_sec, now)
    }

    /// Whether a stale copy may be served at `now` because the origin
    /// failed: `now` is within `stale_if_error_sec` after `fresh_until`.
    pub fn serve_stale_if_error(&self, now: SystemTime) -> bool {
        within(self.0.fresh_until, self.0.stale_if_error_sec, now)
    }

    /// Forbid serving this response stale (both windows to 0).
    pub fn disable_serve_stale(&mut self) {
        let m = self.inner_mut();
        m.stale_while_revalidate_sec = 0;
        m.stale_if_error_sec = 0;
    }

    /// The variance digest of the variant this meta describes, if any.
    pub fn variance(&self) -> Option<HashBinary> {
        self.0.variance
    }

    /// Record which variant this meta describes.
    pub fn set_variance(&mut self, variance: Option<HashBinary>) {
        self.inner_mut().variance = variance;
    }

    /// The stored response header.
    pub fn response_header(&self) -> &ResponseHeader {
        &self.0.header
    }

    /// The stored response header, to change (copies a shared meta first).
    pub fn response_header_mut(&mut self) -> &mut ResponseHeader {
        &mut self.inner_mut().header
    }

    /// A copy of the stored response header.
    pub fn response_header_copy(&self) -> ResponseHeader {
        self.0.header.clone()
    }

    /// After a successful revalidation (RFC 9111 §4.3.4): new times and
    /// windows, the header already merged by the caller. `updated` becomes
    /// `now`.
    pub fn revalidated(
        &mut self,
        fresh_until: SystemTime,
        created: SystemTime,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
        now: SystemTime,
    ) {
        let m = self.inner_mut();
        m.fresh_until = fresh_until;
        m.created = created;
        m.updated = now;
        m.stale_while_revalidate_sec = stale_while_revalidate_sec;
        m.stale_if_error_sec = stale_if_error_sec;
    }

    /// Mark the entry expired as of `now` (used to force revalidation).
    pub fn expire(&mut self, now: SystemTime) {
        let m = self.inner_mut();
        if m.fresh_until > now {
            m.fresh_until = now;
        }
    }

    /// The compact binary form `MemCache` and `DiskCache` keep (see
    /// [`CacheMeta::deserialize`]). Layout, all integers little endian:
    ///
    /// ```text
    /// u8 format version (1)
    /// u64 fresh_until, u64 created, u64 updated   (milliseconds since the Unix epoch)
    /// u32 stale_while_revalidate_sec, u32 stale_if_error_sec
    /// u8 has_variance, [16] variance if present
    /// u16 status, u8 version (9 = 0.9, 10, 11, 20, 30), u16 reason length, reason bytes
    /// u32 header count, then per header: u16 name length, name (as received), u32 value length, value
    /// ```
    pub fn serialize(&self) -> Vec<u8> {
        let m = &*self.0;
        let h = &m.header;
        let mut out = Vec::with_capacity(self.serialized_len());
        out.push(FORMAT_VERSION);
        for t in [m.fresh_until, m.created, m.updated] {
            out.extend_from_slice(&to_millis(t).to_le_bytes());
        }
        out.extend_from_slice(&m.stale_while_revalidate_sec.to_le_bytes());
        out.extend_from_slice(&m.stale_if_error_sec.to_le_bytes());
        match m.variance {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&h.status_code().as_u16().to_le_bytes());
        out.push(version_code(h.http_version()));
        let reason = stored_reason(h).as_bytes();
        out.extend_from_slice(&(reason.len() as u16).to_le_bytes());
        out.extend_from_slice(reason);
        let count_at = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut count = 0u32;
        for (name, value) in h.field_line_iter() {
            // names are at most 64 KiB and values at most 4 GiB: a header
            // block past the proxy's limits was never accepted
            let (Ok(nl), Ok(vl)) = (u16::try_from(name.len()), u32::try_from(value.len())) else {
                continue;
            };
            out.extend_from_slice(&nl.to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&vl.to_le_bytes());
            out.extend_from_slice(value);
            count += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
        out
    }

    /// The length in bytes of [`CacheMeta::serialize`]'s output, computed
    /// without building it (what a storage that keeps the serialized form
    /// holds for the meta).
    pub fn serialized_len(&self) -> usize {
        let m = &*self.0;
        let h = &m.header;
        // version, three times, two windows, the variance flag, status,
        // HTTP version, reason length and header count
        let fixed = 1 + 3 * 8 + 2 * 4 + 1 + 2 + 1 + 2 + 4;
        let variance = if m.variance.is_some() { 16 } else { 0 };
        let reason = stored_reason(h).len();
        let fields: usize = h
            .field_line_iter()
            .filter(|(name, value)| {
                u16::try_from(name.len()).is_ok() && u32::try_from(value.len()).is_ok()
            })
            .map(|(name, value)| 2 + name.len() + 4 + value.len())
            .sum();
        fixed + variance + reason + fields
    }

    /// Read back what [`CacheMeta::serialize`] wrote.
    ///
    /// # Errors
    /// `InternalError` with the reason for a truncated buffer, an unknown
    /// format version, or an invalid status, header name or value.
    pub fn deserialize(buf: &[u8]) -> Result<CacheMeta> {
        Self::read(buf, Lines::Check)
    }

    /// [`CacheMeta::deserialize`] for bytes that [`CacheMeta::serialize`]
    /// wrote in this process and that never left its memory (`MemCache`'s
    /// entries, read back on every hit): the header's names and values were
    /// checked when it was made and are not checked again.
    ///
    /// # Errors
    /// As [`CacheMeta::deserialize`], less the checks of names and values.
    pub(crate) fn deserialize_own(buf: &[u8]) -> Result<CacheMeta> {
        Self::read(buf, Lines::Trust)
    }

    fn read(buf: &[u8], lines: Lines) -> Result<CacheMeta> {
        let mut r = Reader { buf, at: 0 };
        let v = r.u8()?;
        if v != FORMAT_VERSION {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("cache meta format version {v}, expected {FORMAT_VERSION}"),
            );
        }
        let fresh_until = from_millis(r.u64()?);
        let created = from_millis(r.u64()?);
        let updated = from_millis(r.u64()?);
        let swr = r.u32()?;
        let sie = r.u32()?;
        let variance = match r.u8()? {
            0 => None,
            _ => Some(<HashBinary>::try_from(r.take(16)?).or_err(
                ErrorType::InternalError,
                "cache meta: variance is not 16 bytes",
            )?),
        };
        let status = r.u16()?;
        let version = version_from_code(r.u8()?);
        let reason_len = usize::from(r.u16()?);
        let reason = std::str::from_utf8(r.take(reason_len)?)
            .or_err(ErrorType::InternalError, "cache meta: reason is not UTF-8")?;
        let count = r.u32()? as usize;
        // The lines stay in one copy of the header block, as received: a
        // hit copies, changes and writes them without building a map. A
        // first walk finds the block's end, checking every length.
        let start = r.at;
        for _ in 0..count {
            let nl = usize::from(r.u16()?);
            r.take(nl)?;
            let vl = r.u32()? as usize;
            r.take(vl)?;
        }
        let stored = &buf[start..r.at];
        let block = bytes::Bytes::copy_from_slice(stored);
        let ranges = LineRanges {
            block: stored,
            at: 0,
            left: count,
        };
        let reason = (!reason.is_empty()).then_some(reason);
        let header = match lines {
            Lines::Check => {
                ResponseHeader::from_field_lines(status, version, reason, block, ranges)
            }
            Lines::Trust => {
                ResponseHeader::from_trusted_field_lines(status, version, reason, block, ranges)
            }
        }
        .or_err(ErrorType::InternalError, "cache meta: invalid header")?;
        Ok(CacheMeta(Arc::new(MetaInner {
            fresh_until,
            created,
            updated,
            stale_while_revalidate_sec: swr,
            stale_if_error_sec: sie,
            variance,
            header,
        })))
    }
}

/// Whether [`CacheMeta::read`] checks the header's names and values.
#[derive(Clone, Copy)]
enum Lines {
    Check,
    Trust,
}

/// The name and value ranges of serialized field lines, within the block
/// they were written in (whose lengths the caller has walked and checked).
#[derive(Clone)]
struct LineRanges<'a> {
    block: &'a [u8],
    at: usize,
    left: usize,
}

impl Iterator for LineRanges<'_> {
    type Item = (std::ops::Range<usize>, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        let mut r = Reader {
            buf: self.block,
            at: self.at,
        };
        let nl = usize::from(r.u16().ok()?);
        let name = r.at..r.at + nl;
        r.take(nl).ok()?;
        let vl = r.u32().ok()? as usize;
        let value = r.at..r.at + vl;
        r.take(vl).ok()?;
        self.at = r.at;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

const FORMAT_VERSION: u8 = 1;

/// The reason phrase as serialized: at most 65,535 bytes (its length is a
/// `u16`), cut at a character boundary so it reads back as UTF-8.
fn stored_reason(h: &ResponseHeader) -> &str {
    let reason = h.get_reason_phrase().unwrap_or("");
    let mut end = reason.len().min(u16::MAX as usize);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn within(fresh_until: SystemTime, window_sec: u32, now: SystemTime) -> bool {
    window_sec > 0 && now < fresh_until + Duration::from_secs(u64::from(window_sec))
}

fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn version_code(v: http::Version) -> u8 {
    match v {
        http::Version::HTTP_09 => 9,
        http::Version::HTTP_10 => 10,
        http::Version::HTTP_2 => 20,
        http::Version::HTTP_3 => 30,
        _ => 11,
    }
}

fn version_from_code(c: u8) -> http::Version {
    match c {
        9 => http::Version::HTTP_09,
        10 => http::Version::HTTP_10,
        20 => http::Version::HTTP_2,
        30 => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Error::e_explain(ErrorType::InternalError, "cache meta: truncated");
        };
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Fallback freshness for responses, for users who want what nginx's
/// `proxy_cache_valid` or Varnish's `default_ttl` give: a lifetime per
/// status for responses that carry no freshness information of their own,
/// and default stale windows. The framework's default policy uses none
/// (RFC 9111 alone).
#[derive(Debug, Clone, Copy)]
pub struct CacheMetaDefaults {
    fresh: FreshDefault,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
}

#[derive(Debug, Clone, Copy)]
enum FreshDefault {
    PerStatus(fn(http::StatusCode) -> Option<u32>),
    Uniform(u32),
}

impl CacheMetaDefaults {
    /// `fresh_sec_fn(status)`: the freshness lifetime in seconds for a
    /// response with that status and no freshness information (`None`: not
    /// cacheable without it). The windows are the stale-while-revalidate and
    /// stale-if-error seconds used when the response names none.
    pub const fn new(
        fresh_sec_fn: fn(http::StatusCode) -> Option<u32>,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
    ) -> Self {
        CacheMetaDefaults {
            fresh: FreshDefault::PerStatus(fresh_sec_fn),
            stale_while_revalidate_sec,
            stale_if_error_sec,
        }
    }

    /// `ttl_sec` seconds for every status that is cacheable by default
    /// (RFC 9110 §15.1: 200, 203, 204, 206, 300, 301, 308, 404, 405, 410,
    /// 414, 501), like Varnish's `default_ttl`; no stale windows.
    pub const fn uniform(ttl_sec: u32) -> Self {
        CacheMetaDefaults {
            fresh: FreshDefault::Uniform(ttl_sec),
            stale_while_revalidate_sec: 0,
            stale_if_error_sec: 0,
        }
    }

    /// The fallback lifetime in seconds for `status`, if any.
    pub fn fresh_sec(&self, status: http::StatusCode) -> Option<u32> {
        match self.fresh {
            FreshDefault::PerStatus(f) => f(status),
            FreshDefault::Uniform(ttl) => matches!(
                status.as_u16(),
                200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
            )
            .then_some(ttl),
        }
    }

    /// The default stale-while-revalidate window, seconds.
    pub fn serve_stale_while_revalidate_sec(&self) -> u32 {
        self.stale_while_revalidate_sec
    }

    /// The default stale-if-error window, seconds.
    pub fn serve_stale_if_error_sec(&self) -> u32 {
        self.stale_if_error_sec
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header() -> ResponseHeader {
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.set_reason_phrase(Some("Fine")).unwrap();
        h.append_header("Content-Type", "text/plain").unwrap();
        h.append_header("x-Mixed-Case", "a").unwrap();
        h.append_header("x-mixed-case", "b").unwrap();
        h
    }

    #[test]
    fn serialize_round_trip_keeps_case_order_and_times() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut m = CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, header());
        m.set_variance(Some([3; 16]));
        let bytes = m.serialize();
        assert_eq!(m.serialized_len(), bytes.len());
        let back = CacheMeta::deserialize(&bytes).unwrap();
        assert_eq!(back.serialized_len(), bytes.len());
        let plain = CacheMeta::new(now, now, 0, 0, ResponseHeader::build(204, None).unwrap());
        assert_eq!(plain.serialized_len(), plain.serialize().len());
        assert_eq!(back.fresh_until(), m.fresh_until());
        assert_eq!(back.created(), now);
        assert_eq!(back.stale_while_revalidate_sec(), 5);
        assert_eq!(back.stale_if_error_sec(), 7);
        assert_eq!(back.variance(), Some([3; 16]));
        let h = back.response_header();
        assert_eq!(h.status, 200);
        assert_eq!(h.get_reason_phrase(), Some("Fine"));
        let names: Vec<_> = h
            .case_header_iter()
            .map(|(n, v)| (n.to_vec(), v.clone()))
            .collect();
        assert_eq!(names.len(), 3);
        assert_eq!(names[0].0, b"Content-Type");
        assert_eq!(names[1].0, b"x-Mixed-Case");
        assert_eq!(names[2].1, "b");
    }

    #[test]
    fn truncated_or_garbage_is_an_error_not_a_panic() {
        let bytes = CacheMeta::new(UNIX_EPOCH, UNIX_EPOCH, 0, 0, header()).serialize();
        for n in 0..bytes.len() {
            assert!(CacheMeta::deserialize(&bytes[..n]).is_err(), "prefix {n}");
        }
        assert!(CacheMeta::deserialize(&[2, 0, 0]).is_err());
    }

    #[test]
    fn freshness_age_and_stale_windows() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1000);
        let mut m = CacheMeta::new(t0 + Duration::from_secs(10), t0, 30, 0, header());
        assert!(m.is_fresh(t0 + Duration::from_secs(9)));
        assert!(!m.is_fresh(t0 + Duration::from_secs(10)));
        assert_eq!(m.fresh_sec(), 10);
        assert_eq!(m.age(t0 + Duration::from_secs(4)), Duration::from_secs(4));
        assert_eq!(m.age(t0 - Duration::from_secs(4)), Duration::ZERO);
        assert!(m.serve_stale_while_revalidate(t0 + Duration::from_secs(39)));
        assert!(!m.serve_stale_while_revalidate(t0 + Duration::from_secs(40)));
        assert!(!m.serve_stale_if_error(t0 + Duration::from_secs(11)));
        let shared = m.clone();
        m.disable_serve_stale();
        assert!(!m.serve_stale_while_revalidate(t0 + Duration::from_secs(11)));
        assert_eq!(
            shared.stale_while_revalidate_sec(),
            30,
            "clone is copy-on-write"
        );
    }
}
