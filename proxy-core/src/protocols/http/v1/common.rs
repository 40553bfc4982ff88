//! Rules shared by the HTTP/1.1 client and server sessions: limits,
//! keep-alive (RFC 9112 §9.3), header token lists and timed socket I/O.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderName, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::idle_timer::IdleTimer;
use crate::error::{Error, ErrorType, OrErr, Result};
use crate::http::FieldLines;
use crate::protocols::Stream;

/// Most headers accepted in one message head (Pingora's limit).
pub const MAX_HEADERS: usize = 256;
/// Default limit on the size of a message head (request/status line plus
/// header lines), in bytes.
pub const MAX_HEADER_SIZE: usize = 64 * 1024;
/// Initial size of the buffer a head is read into, in bytes; it grows up to
/// the head limit only when a head needs it.
pub const INIT_HEADER_BUF_SIZE: usize = 4 * 1024;
/// Largest piece of body returned by one read, in bytes (60 KiB).
///
/// A piece goes to the other side in one send. It stays under 64 KiB so that
/// the send fits in one segmentation-offload (TSO/GSO) packet, whose 64 KiB
/// limit counts the headers too: a 64 KiB piece left a tail of a few dozen
/// bytes in a second packet, and under a pacing congestion control (BBR
/// without the `fq` qdisc, as on loopback) that tail waited for a pacing
/// timer of its own. See `docs/benchmarks.md`, section "Latest (2026-11-25,
/// 04:50)".
pub const BODY_BUF_LIMIT: usize = 60 * 1024;
// A piece with its chunk framing when re-chunked (size line and CRLF, at
// most 16 bytes) and the largest IPv6 and TCP headers (40 + 60 bytes) must
// fit in one 64 KiB offload packet (see above).
const _: () = assert!(BODY_BUF_LIMIT + 16 + 40 + 60 <= 64 * 1024);
/// Longest chunk-size line (size, extensions, CRLF) accepted, in bytes.
pub const MAX_CHUNK_HEAD_SIZE: usize = 8 * 1024;
/// Most trailer bytes accepted after the last chunk, in bytes.
pub const MAX_TRAILER_SIZE: usize = 64 * 1024;
/// Default header read timeout (first byte to complete head), in seconds.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 60;
/// Default keep-alive idle timeout, in seconds.
pub const DEFAULT_KEEPALIVE_SECS: u64 = 60;

/// Limits on a message head. A head over either limit is answered 431 by
/// the server (RFC 6585 §5) and is an error for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Most bytes in the head, request/status line included. Default 64 KiB.
    pub max_size: usize,
    /// Most header fields; capped at [`MAX_HEADERS`] (256, the default).
    pub max_headers: usize,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        HeaderLimits {
            max_size: MAX_HEADER_SIZE,
            max_headers: MAX_HEADERS,
        }
    }
}

/// Whether and how long an idle connection waits for the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveStatus {
    /// Wait at most this long for the first byte of the next request.
    Timeout(Duration),
    /// Wait forever.
    Infinite,
    /// Close after the current response.
    Off,
}

impl KeepaliveStatus {
    /// Pingora's `set_keepalive` convention: `None` → off, `Some(0)` →
    /// infinite, `Some(s)` → `s` seconds.
    pub fn from_secs(secs: Option<u64>) -> Self {
        match secs {
            None => KeepaliveStatus::Off,
            Some(0) => KeepaliveStatus::Infinite,
            Some(s) => KeepaliveStatus::Timeout(Duration::from_secs(s)),
        }
    }

    /// The inverse of [`KeepaliveStatus::from_secs`].
    pub fn as_secs(&self) -> Option<u64> {
        match self {
            KeepaliveStatus::Off => None,
            KeepaliveStatus::Infinite => Some(0),
            KeepaliveStatus::Timeout(d) => Some(d.as_secs().max(1)),
        }
    }
}

/// Whether a comma-separated header (all its field lines) lists `token`,
/// compared case-insensitively (RFC 9110 §5.6.1).
pub fn header_has_token(headers: &impl FieldLines, name: &HeaderName, token: &str) -> bool {
    headers
        .field_values(name)
        .any(|v| value_has_token(v, token))
}

fn value_has_token(v: &[u8], token: &str) -> bool {
    v.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// RFC 9112 §9.3: whether a message of `version` with `headers` asks for a
/// persistent connection. HTTP/1.1 is persistent unless `Connection: close`;
/// HTTP/1.0 only with `Connection: keep-alive`; anything older never.
pub fn is_keepalive(version: Version, headers: &impl FieldLines) -> bool {
    let tokens = headers.connection_tokens();
    if tokens.close() {
        return false;
    }
    match version {
        Version::HTTP_11 => true,
        Version::HTTP_10 => tokens.keep_alive(),
        _ => false,
    }
}

/// RFC 9110 §7.8: an HTTP/1.1 request with `Upgrade` listed in `Connection`
/// and an `Upgrade` header asks to switch protocols.
pub fn is_upgrade(version: Version, headers: &impl FieldLines) -> bool {
    version == Version::HTTP_11
        && headers.has_field(&http::header::UPGRADE)
        && headers.connection_tokens().upgrade()
}

/// RFC 9112 §6.3 rule 5: the message's Content-Length, if it has one.
/// Several field lines or a list of identical values (`42, 42`) count as
/// one value; differing values or anything but digits are an error of kind
/// `etype`.
pub fn content_length(headers: &impl FieldLines, etype: ErrorType) -> Result<Option<u64>> {
    let mut found: Option<u64> = None;
    for v in headers.field_values(&http::header::CONTENT_LENGTH) {
        for part in v.split(|b| *b == b',') {
            let part = part.trim_ascii();
            let n = parse_decimal(part).ok_or_else(|| {
                Error::explain(
                    etype.clone(),
                    format!("invalid Content-Length {:?}", String::from_utf8_lossy(v)),
                )
            })?;
            match found {
                Some(prev) if prev != n => {
                    return Err(Error::explain(
                        etype,
                        format!("conflicting Content-Length values {prev} and {n}"),
                    ))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// What a message's Transfer-Encoding says about its framing (RFC 9112 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferCoding {
    /// No Transfer-Encoding header.
    Absent,
    /// The final coding is `chunked` (applied once).
    Chunked,
    /// Transfer-Encoding is present but its final coding is not `chunked`.
    NotChunked,
    /// `chunked` is applied more than once, or the list is empty.
    Invalid,
}

/// Whether the Transfer-Encoding of `headers` is `chunked` alone, with no
/// other coding (e.g. not `gzip, chunked`): the only coding this proxy can
/// take off and put back on another hop.
pub fn is_only_chunked(headers: &impl FieldLines) -> bool {
    let mut codings = headers
        .field_values(&http::header::TRANSFER_ENCODING)
        .flat_map(|v| v.split(|b| *b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty());
    matches!(codings.next(), Some(c) if c.eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none()
}

/// Classify the Transfer-Encoding of `headers` (all field lines, in order).
pub fn transfer_coding(headers: &impl FieldLines) -> TransferCoding {
    let mut codings = 0usize;
    let mut chunked_at: Option<usize> = None;
    let mut chunked_twice = false;
    let mut any = false;
    for v in headers.field_values(&http::header::TRANSFER_ENCODING) {
        any = true;
        for c in v.split(|b| *b == b',') {
            let c = c.trim_ascii();
            if c.is_empty() {
                continue;
            }
            if c.eq_ignore_ascii_case(b"chunked") {
                chunked_twice |= chunked_at.is_some();
                chunked_at = Some(codings);
            }
            codings += 1;
        }
    }
    if !any {
        return TransferCoding::Absent;
    }
    if codings == 0 || chunked_twice {
        return TransferCoding::Invalid;
    }
    if chunked_at == Some(codings - 1) {
        TransferCoding::Chunked
    } else {
        TransferCoding::NotChunked
    }
}

/// Await `fut` for at most `timeout` (`None`: no limit); on expiry an error
/// of kind `ReadTimedout`/`WriteTimedout` (per `etype`) naming `what`.
///
/// The timer starts when `fut` first has to wait, not before: most writes,
/// and reads of data already in the socket, finish at their first poll and
/// then never touch the runtime's timer wheel.
pub(crate) fn timed<T, F>(
    timeout: Option<Duration>,
    etype: ErrorType,
    what: &'static str,
    fut: F,
) -> Timed<F>
where
    F: Future<Output = Result<T>>,
{
    Timed {
        fut,
        sleep: None,
        timeout,
        etype,
        what,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timed`].
    pub(crate) struct Timed<F> {
        #[pin]
        fut: F,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        timeout: Option<Duration>,
        etype: ErrorType,
        what: &'static str,
    }
}

impl<T, F> Future for Timed<F>
where
    F: Future<Output = Result<T>>,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(r) = this.fut.poll(cx) {
            return Poll::Ready(r);
        }
        let Some(d) = *this.timeout else {
            return Poll::Pending;
        };
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep(d)));
        }
        match this.sleep.as_pin_mut().map(|s| s.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(timed_out(this.etype.clone(), this.what, d))),
            _ => Poll::Pending,
        }
    }
}

/// The error of a wait that ran past `d`: `etype` (`ReadTimedout` or
/// `WriteTimedout`) naming `what`.
fn timed_out(etype: ErrorType, what: &str, d: Duration) -> Box<Error> {
    Error::explain(
        etype,
        format!("{what} timed out after {} ms", d.as_millis()),
    )
}

/// Read once from `io` into `buf`, making room for at least `want` bytes
/// (reusing spare capacity when there is enough). Returns the number of bytes
/// read; 0 means the peer closed its side.
/// Wait until `io` has something to read, without a buffer: an idle
/// connection waiting for its next request then costs no read buffer.
pub(crate) async fn wait_readable(
    io: &Stream,
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    timed(timeout, ErrorType::ReadTimedout, what, async {
        std::future::poll_fn(|cx| io.poll_read_ready(cx))
            .await
            .or_err(ErrorType::ReadError, what)
    })
    .await
}

/// [`wait_readable`] with a connection's reusable `timer` (moved lazily,
/// see [`IdleTimer`]) instead of a timer registered and cancelled in the
/// runtime's wheel for this one wait.
pub(crate) async fn wait_readable_with(
    io: &Stream,
    timer: &mut IdleTimer,
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    let Some(t) = timeout else {
        return wait_readable(io, None, what).await;
    };
    let deadline = tokio::time::Instant::now() + t;
    match timer
        .wait(deadline, t / 4, |cx| io.poll_read_ready(cx))
        .await
    {
        Some(r) => r.or_err(ErrorType::ReadError, what),
        None => Err(timed_out(ErrorType::ReadTimedout, what, t)),
    }
}

pub(crate) async fn read_more(
    io: &mut Stream,
    buf: &mut BytesMut,
    want: usize,
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<usize> {
    let spare = buf.capacity() - buf.len();
    if spare < want.min(4096) {
        // Reclaims the buffer's own allocation when every piece split off it
        // has been dropped (the steady state of a streamed body: no
        // allocation per read); allocates otherwise.
        buf.reserve(want);
    }
    timed(timeout, ErrorType::ReadTimedout, what, async {
        io.read_buf(buf).await.or_err(ErrorType::ReadError, what)
    })
    .await
}

/// Write all of `data` to `io` within `timeout`.
/// Bodies up to this many bytes are copied behind the held-back head and
/// sent with a plain write; larger ones go out in one vectored write.
const SMALL_WRITE_COPY: usize = 4096;

/// Write `pending` (bytes held back, e.g. a message head) followed by
/// `data` as one vectored write when the transport supports it, then clear
/// `pending`. Saves a syscall per message compared to two writes.
pub(crate) async fn write_all_after(
    io: &mut Stream,
    pending: &mut BytesMut,
    data: &[u8],
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    use bytes::Buf;
    if pending.is_empty() {
        return write_all(io, data, timeout, what).await;
    }
    if data.len() <= SMALL_WRITE_COPY {
        // a small copy is cheaper than a vectored write
        pending.extend_from_slice(data);
        let r = write_all(io, pending, timeout, what).await;
        pending.clear();
        return r;
    }
    let r = timed(timeout, ErrorType::WriteTimedout, what, async {
        let mut chain = Buf::chain(&pending[..], data);
        io.write_all_buf(&mut chain)
            .await
            .or_err(ErrorType::WriteError, what)
    })
    .await;
    pending.clear();
    r
}

/// The most bytes asked of one sendfile(2) call (the kernel caps a call
/// near 2 GiB anyway; smaller calls let a timeout be noticed sooner).
const SEND_FILE_MAX: usize = 1 << 30;

/// Write the bytes held back in `pending` (the message head), then `len`
/// bytes of `file` from byte `offset` with sendfile(2) (see
/// [`crate::protocols::IO::poll_send_file`]). `pending` is empty afterwards.
///
/// # Errors
/// `WriteTimedout` past `timeout`; `WriteError` from the socket, when the
/// transport cannot send files, or when `file` ends before `offset + len`
/// (the body is then short: the caller must close the connection).
pub(crate) async fn send_file_after(
    io: &mut Stream,
    pending: &mut BytesMut,
    file: &std::fs::File,
    offset: u64,
    len: u64,
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    if !pending.is_empty() {
        let r = write_all(io, pending, timeout, what).await;
        pending.clear();
        r?;
    }
    let io: &Stream = io;
    timed(timeout, ErrorType::WriteTimedout, what, async move {
        let end = offset.saturating_add(len);
        let mut at = offset;
        while at < end {
            let want = usize::try_from(end - at).map_or(SEND_FILE_MAX, |n| n.min(SEND_FILE_MAX));
            let n = std::future::poll_fn(|cx| io.poll_send_file(cx, file, at, want))
                .await
                .or_err(ErrorType::WriteError, what)?;
            if n == 0 {
                return Error::e_explain(
                    ErrorType::WriteError,
                    format!("{what}: the file ends {} bytes short", end - at),
                );
            }
            at += n as u64;
        }
        Ok(())
    })
    .await
}

pub(crate) async fn write_all(
    io: &mut Stream,
    data: &[u8],
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    timed(timeout, ErrorType::WriteTimedout, what, async {
        io.write_all(data).await.or_err(ErrorType::WriteError, what)
    })
    .await
}

/// Flush `io` within `timeout`.
pub(crate) async fn flush(
    io: &mut Stream,
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    timed(timeout, ErrorType::WriteTimedout, what, async {
        io.flush().await.or_err(ErrorType::WriteError, what)
    })
    .await
}

/// Give a read buffer that survives into the next request its own small
/// allocation, so an idle connection does not pin a large one.
pub(crate) fn compact(buf: BytesMut) -> BytesMut {
    if buf.is_empty() {
        BytesMut::new()
    } else {
        BytesMut::from(&buf[..])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::HMap;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HMap {
        let mut h = HMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn keepalive_rules_for_each_version() {
        assert!(is_keepalive(Version::HTTP_11, &headers(&[])));
        assert!(!is_keepalive(
            Version::HTTP_11,
            &headers(&[("connection", "Close")])
        ));
        assert!(!is_keepalive(Version::HTTP_10, &headers(&[])));
        assert!(is_keepalive(
            Version::HTTP_10,
            &headers(&[("connection", "Keep-Alive")])
        ));
        assert!(!is_keepalive(Version::HTTP_09, &headers(&[])));
    }

    #[test]
    fn content_length_merges_identical_and_rejects_conflicts() {
        let e = ErrorType::HTTPStatus(400);
        assert_eq!(content_length(&headers(&[]), e.clone()).unwrap(), None);
        assert_eq!(
            content_length(&headers(&[("content-length", "42, 42")]), e.clone()).unwrap(),
            Some(42)
        );
        assert_eq!(
            content_length(
                &headers(&[("content-length", "7"), ("content-length", "7")]),
                e.clone()
            )
            .unwrap(),
            Some(7)
        );
        assert!(content_length(
            &headers(&[("content-length", "7"), ("content-length", "8")]),
            e.clone()
        )
        .is_err());
        assert!(content_length(&headers(&[("content-length", "+7")]), e.clone()).is_err());
        assert!(content_length(&headers(&[("content-length", "")]), e.clone()).is_err());
        assert!(
            content_length(&headers(&[("content-length", "99999999999999999999")]), e).is_err()
        );
    }

    #[test]
    fn transfer_coding_classification() {
        assert_eq!(transfer_coding(&headers(&[])), TransferCoding::Absent);
        assert_eq!(
            transfer_coding(&headers(&[("transfer-encoding", "Chunked")])),
            TransferCoding::Chunked
        );
        assert_eq!(
            transfer_coding(&headers(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ])),
            TransferCoding::Chunked
        );
        assert_eq!(
            transfer_coding(&headers(&[("transfer-encoding", "chunked, gzip")])),
            TransferCoding::NotChunked
        );
        assert_eq!(
            transfer_coding(&headers(&[("transfer-encoding", "chunked, chunked")])),
            TransferCoding::Invalid
        );
        assert_eq!(
            transfer_coding(&headers(&[("transfer-encoding", "")])),
            TransferCoding::Invalid
        );
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(is_upgrade(
            Version::HTTP_11,
            &headers(&[
                ("upgrade", "websocket"),
                ("connection", "keep-alive, Upgrade")
            ])
        ));
        assert!(!is_upgrade(
            Version::HTTP_11,
            &headers(&[("upgrade", "websocket")])
        ));
        assert!(!is_upgrade(
            Version::HTTP_10,
            &headers(&[("upgrade", "websocket"), ("connection", "upgrade")])
        ));
    }
}
