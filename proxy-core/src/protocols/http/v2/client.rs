//! HTTP/2 (RFC 9113) upstream: the client side, on the `h2` crate.
//!
//! One TCP/TLS connection carries many streams. [`handshake`] starts a
//! connection and returns a [`ConnectionRef`], a cheap shared handle that
//! counts the streams in flight and knows whether the connection is
//! closing; the connection itself is driven by a task of its own, which
//! also closes it once it has been idle for the peer's idle timeout. Each
//! request is one [`HttpSession`]: it holds a stream slot of the
//! connection until it is dropped.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::poll_fn;
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::HeaderMap;

use super::convert::{request_to_h2, response_from_h2};
use super::send_body::{send_with_capacity, SendBodyError};
use crate::error::{Error, ErrorType, Result};
use crate::http::{RequestHeader, ResponseHeader};
use crate::protocols::Stream;
use crate::tls::SslDigest;

/// The flow-control windows this client announces (stream and connection),
/// in bytes: 8 MiB, as Pingora, so one stream can fill a fast link.
pub const DEFAULT_WINDOW_SIZE: u32 = 8 * 1024 * 1024;

/// The bit of [`ConnectionInner::streams`] that marks a closing connection:
/// no new stream may start on it.
const CLOSING: usize = 1 << (usize::BITS - 1);

/// A waker that does nothing, to ask `h2` once whether a connection still
/// takes new streams without waiting.
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}

/// What every handle of one upstream HTTP/2 connection shares.
#[derive(Debug)]
struct ConnectionInner {
    /// Unique per process, for logs and tests.
    id: u64,
    send_request: SendRequest<Bytes>,
    /// The most streams we open at once (`PeerOptions::max_h2_streams`);
    /// the server's `SETTINGS_MAX_CONCURRENT_STREAMS` may lower it.
    max_streams: usize,
    /// Streams in flight, plus [`CLOSING`] once the connection takes no
    /// more. One atomic, so "take a slot unless closing" and "close if no
    /// slot is taken" cannot race.
    streams: AtomicUsize,
    /// When the last stream ended (milliseconds since `born`).
    idle_since_ms: AtomicU64,
    born: Instant,
    ssl_digest: Option<Arc<SslDigest>>,
    /// `:scheme` of every request: `https` over TLS, else `http`.
    scheme: &'static str,
    /// `:authority` of a request without `Host`.
    default_authority: String,
    /// Wakes the driver task when the connection is marked closing or its
    /// last stream ends while closing, so it drops the connection.
    wake_driver: tokio::sync::Notify,
}

/// A shared handle to one upstream HTTP/2 connection (clone it freely).
///
/// The connection lives while its driver task runs; handles only open
/// streams on it. See the module docs.
#[derive(Debug, Clone)]
pub struct ConnectionRef(Arc<ConnectionInner>);

impl ConnectionRef {
    /// This connection's process-unique id.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The TLS facts of the connection; `None` for h2c.
    pub fn ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.0.ssl_digest.clone()
    }

    /// Streams in flight on this connection.
    pub fn streams_in_use(&self) -> usize {
        self.0.streams.load(Ordering::Acquire) & !CLOSING
    }

    /// The most streams this connection carries at once now:
    /// `min(max_h2_streams, the server's SETTINGS_MAX_CONCURRENT_STREAMS)`
    /// (RFC 9113 §6.5.2), at least 1.
    pub fn stream_limit(&self) -> usize {
        self.0
            .max_streams
            .min(self.0.send_request.current_max_send_streams())
            .max(1)
    }

    /// Whether the connection takes no new stream: it received GOAWAY
    /// (RFC 9113 §6.8), failed, ended, or was closed for idleness.
    pub fn is_closing(&self) -> bool {
        if self.0.streams.load(Ordering::Acquire) & CLOSING != 0 {
            return true;
        }
        // h2 reports a GOAWAY or connection error on the next poll_ready
        // of a fresh handle at once, without waiting
        let mut probe = self.0.send_request.clone();
        let mut cx = Context::from_waker(noop_waker());
        if let Poll::Ready(Err(_)) = probe.poll_ready(&mut cx) {
            self.mark_closing();
            return true;
        }
        false
    }

    /// Take no new stream on this connection; streams in flight finish,
    /// then the connection is closed.
    pub fn mark_closing(&self) {
        self.0.streams.fetch_or(CLOSING, Ordering::AcqRel);
        self.0.wake_driver.notify_one();
    }

    /// Close the connection now if no stream is in flight; `true` if it was
    /// (the connector's cap on idle connections per peer).
    pub fn close_if_unused(&self) -> bool {
        let closed = self
            .0
            .streams
            .compare_exchange(0, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if closed {
            self.0.wake_driver.notify_one();
        }
        closed
    }

    /// Take a stream slot: `None` when the connection is closing or full.
    fn try_acquire(&self) -> Option<StreamSlot> {
        if self.is_closing() {
            return None;
        }
        let limit = self.stream_limit();
        self.0
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n & CLOSING == 0 && n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(StreamSlot(self.clone()))
    }

    /// Close the connection (mark it closing) if no stream is in flight and
    /// none has been for `idle` by `now`; `true` if it was.
    fn close_if_idle(&self, idle: Duration, now: Instant) -> bool {
        let since = Duration::from_millis(self.0.idle_since_ms.load(Ordering::Acquire));
        let idle_for = now.saturating_duration_since(self.0.born + since);
        idle_for >= idle
            && self
                .0
                .streams
                .compare_exchange(0, CLOSING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// How long the connection has had no stream, at `now`; zero while busy.
    pub fn idle_for(&self, now: Instant) -> Duration {
        if self.streams_in_use() > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.0.idle_since_ms.load(Ordering::Acquire));
        now.saturating_duration_since(self.0.born + since)
    }

    /// A session for one request on this connection, if a stream slot is
    /// free (see [`ConnectionRef::stream_limit`]) and it is not closing.
    pub fn new_session(&self) -> Option<HttpSession> {
        let slot = self.try_acquire()?;
        Some(HttpSession::new(self.0.send_request.clone(), slot))
    }
}

/// One taken stream slot of a connection, given back when dropped.
#[derive(Debug)]
struct StreamSlot(ConnectionRef);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let inner = &self.0 .0;
        let ms = u64::try_from(inner.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        inner.idle_since_ms.store(ms, Ordering::Release);
        let before = inner.streams.fetch_sub(1, Ordering::AcqRel);
        if before == CLOSING | 1 {
            // the last stream of a closing connection: let the driver close it
            inner.wake_driver.notify_one();
        }
    }
}

/// Settings of a new upstream HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Most concurrent streams we open (`PeerOptions::max_h2_streams`).
    pub max_streams: usize,
    /// Close the connection once it has carried no stream for this long;
    /// `None` keeps it until the server closes it.
    pub idle_timeout: Option<Duration>,
    /// Each stream's and the connection's receive window, in bytes.
    pub window_size: u32,
    /// `:authority` for a request that has no `Host` (e.g. HTTP/1.0): the
    /// peer's SNI or address.
    pub default_authority: String,
}

impl Default for ClientOptions {
    /// One stream, no idle timeout, 8 MiB windows, no default authority.
    fn default() -> Self {
        ClientOptions {
            max_streams: 1,
            idle_timeout: None,
            window_size: DEFAULT_WINDOW_SIZE,
            default_authority: String::new(),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Run the client side of the HTTP/2 handshake on `stream` (TLS with ALPN
/// `h2`, or cleartext with prior knowledge, RFC 9113 §3.3): send the
/// preface and SETTINGS, and spawn the task that drives the connection.
///
/// # Errors
/// `H2Error` (upstream) when the server does not speak HTTP/2.
///
/// # Cancel safety
/// Dropping the future before it completes closes the connection.
pub async fn handshake(stream: Stream, options: &ClientOptions) -> Result<ConnectionRef> {
    let ssl_digest = stream.ssl_digest();
    let (send_request, connection) = h2::client::Builder::new()
        .initial_window_size(options.window_size)
        .initial_connection_window_size(options.window_size)
        .enable_push(false)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(|e| h2_err(e, "HTTP/2 handshake with upstream"))?;
    let conn = ConnectionRef(Arc::new(ConnectionInner {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        send_request,
        max_streams: options.max_streams.max(1),
        streams: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(0),
        born: Instant::now(),
        scheme: if ssl_digest.is_some() {
            "https"
        } else {
            "http"
        },
        ssl_digest,
        default_authority: options.default_authority.clone(),
        wake_driver: tokio::sync::Notify::new(),
    }));
    tokio::spawn(drive(connection, conn.clone(), options.idle_timeout));
    Ok(conn)
}

/// Drive `connection` until it ends, until it has carried no stream for
/// `idle`, or until it is marked closing and its last stream ended (then it
/// is dropped, which closes the socket). Either way the handle is marked
/// closing so no new stream is started on it.
async fn drive(
    connection: h2::client::Connection<Stream, Bytes>,
    conn: ConnectionRef,
    idle: Option<Duration>,
) {
    tokio::pin!(connection);
    loop {
        let wait = match idle {
            Some(t) => t.saturating_sub(conn.idle_for(Instant::now())).max(
                // busy or just became idle: look again a full period later
                Duration::from_millis(10),
            ),
            None => Duration::MAX,
        };
        tokio::select! {
            r = &mut connection => {
                if let Err(e) = r {
                    log::debug!("upstream HTTP/2 connection {} ended: {e}", conn.id());
                }
                break;
            }
            _ = conn.0.wake_driver.notified() => {
                let n = conn.0.streams.load(Ordering::Acquire);
                if n == CLOSING {
                    log::debug!("closing unused upstream HTTP/2 connection {}", conn.id());
                    break;
                }
            }
            _ = tokio::time::sleep(wait), if idle.is_some() => {
                if let Some(t) = idle {
                    if conn.close_if_idle(t, Instant::now()) {
                        log::debug!("closing idle upstream HTTP/2 connection {}", conn.id());
                        break;
                    }
                }
            }
        }
    }
    conn.mark_closing();
}

/// An error from `h2`, as ours: `ConnectionClosed` for I/O errors, else
/// `H2Error`; source Upstream. A stream the server refused
/// (`REFUSED_STREAM`, RFC 9113 §8.7) or that a GOAWAY from the server cut
/// off (§6.8: streams above its last stream id were not processed) is
/// marked retryable; the proxy retries it only while no response byte has
/// reached the client and the request body can be replayed.
pub(crate) fn h2_err(e: h2::Error, what: &'static str) -> Box<Error> {
    let etype = if e.is_io() {
        ErrorType::ConnectionClosed
    } else {
        ErrorType::H2Error
    };
    let unprocessed =
        e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote());
    let mut err = Error::because(etype, what, e).into_up();
    if unprocessed {
        err.set_retry(true);
    }
    err
}

async fn bounded<T>(
    timeout: Option<Duration>,
    etype: ErrorType,
    what: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::explain(etype, what).into_up()),
        },
        None => fut.await,
    }
}

/// The request side of a stream.
#[derive(Debug)]
enum Sending {
    /// Nothing sent yet.
    Idle(SendRequest<Bytes>),
    /// The header is sent; the body (or trailers) follows.
    Body(SendStream<Bytes>),
    /// END_STREAM sent (or the stream was reset).
    Done,
}

/// The response side of a stream.
#[derive(Debug)]
enum Receiving {
    /// The request header is not sent yet.
    NotStarted,
    /// Waiting for the response header.
    Head(ResponseFuture),
    /// Reading the body.
    Body(RecvStream),
    /// The body ended; the trailers, if any, are still to be read.
    Trailers(RecvStream),
    /// The response ended.
    Done,
}

/// One request/response exchange on an upstream HTTP/2 stream, with the
/// same shape as the HTTP/1 client session: write the request header,
/// body and (optionally) trailers; read the response header, body and
/// trailers. Dropping it before the response ends resets the stream
/// (`CANCEL`) and frees its slot.
#[derive(Debug)]
pub struct HttpSession {
    sending: Sending,
    receiving: Receiving,
    request: Option<Box<RequestHeader>>,
    response: Option<Box<ResponseHeader>>,
    trailers: Option<Box<HeaderMap>>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    bytes_sent: usize,
    bytes_read: usize,
    slot: StreamSlot,
}

impl HttpSession {
    fn new(send_request: SendRequest<Bytes>, slot: StreamSlot) -> Self {
        HttpSession {
            sending: Sending::Idle(send_request),
            receiving: Receiving::NotStarted,
            request: None,
            response: None,
            trailers: None,
            read_timeout: None,
            write_timeout: None,
            bytes_sent: 0,
            bytes_read: 0,
            slot,
        }
    }

    /// The connection this stream belongs to.
    pub fn conn(&self) -> &ConnectionRef {
        &self.slot.0
    }

    /// Timeout of each read; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Timeout of each write; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Open the stream with the request header (see
    /// [`request_to_h2`] for the
    /// translation: `:scheme` is `https` over TLS, else `http`; a request
    /// without `Host` gets the connection's default authority).
    /// `end_of_stream`: the request has no body (HEADERS with END_STREAM).
    ///
    /// # Errors
    /// `InvalidHTTPHeader` (internal) for a head that cannot be sent;
    /// `H2Error` when the connection is closing (retryable after a GOAWAY
    /// or REFUSED_STREAM) or a second header is written.
    pub async fn write_request_header(
        &mut self,
        req: Box<RequestHeader>,
        end_of_stream: bool,
    ) -> Result<()> {
        let Sending::Idle(send_request) = &mut self.sending else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "HTTP/2 request header written twice",
            )
            .into_in());
        };
        let conn = &self.slot.0 .0;
        let h2_req =
            request_to_h2(&req, conn.scheme, &conn.default_authority).map_err(|e| e.into_in())?;
        // wait until h2 lets one more stream start (a queued stream of this
        // handle is not yet open); a GOAWAY fails here
        let timeout = self.write_timeout;
        bounded(
            timeout,
            ErrorType::WriteTimedout,
            "waiting to open an HTTP/2 stream",
            async {
                poll_fn(|cx| send_request.poll_ready(cx))
                    .await
                    .map_err(|e| h2_err(e, "opening an HTTP/2 stream upstream"))
            },
        )
        .await
        .inspect_err(|_| self.slot.0.mark_closing())?;
        let (response, body) = send_request
            .send_request(h2_req, end_of_stream)
            .map_err(|e| {
                if e.is_go_away() || e.is_io() {
                    self.slot.0.mark_closing();
                }
                h2_err(e, "sending HTTP/2 request header upstream")
            })?;
        self.sending = if end_of_stream {
            Sending::Done
        } else {
            Sending::Body(body)
        };
        self.receiving = Receiving::Head(response);
        self.request = Some(req);
        Ok(())
    }

    /// Send a piece of the request body, waiting for the server's
    /// flow-control window (stream and connection, RFC 9113 §5.2) to take
    /// it all. `end_of_stream` ends the request with this piece.
    ///
    /// # Errors
    /// `InternalError` before the header or after the body ended;
    /// `WriteTimedout` past the write timeout; `H2Error` when the server
    /// reset the stream or the connection failed.
    pub async fn write_request_body(&mut self, data: Bytes, end_of_stream: bool) -> Result<()> {
        let Sending::Body(stream) = &mut self.sending else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "HTTP/2 request body written outside the body state",
            )
            .into_in());
        };
        let len = data.len();
        let timeout = self.write_timeout;
        bounded(
            timeout,
            ErrorType::WriteTimedout,
            "writing HTTP/2 request body",
            async {
                send_with_capacity(stream, data, end_of_stream)
                    .await
                    .map_err(|e| match e {
                        SendBodyError::H2(e) => h2_err(e, "writing HTTP/2 request body"),
                        SendBodyError::Closed => Error::explain(
                            ErrorType::H2Error,
                            "upstream stream closed while writing the request body",
                        )
                        .into_up(),
                    })
            },
        )
        .await?;
        self.bytes_sent += len;
        if end_of_stream {
            self.sending = Sending::Done;
        }
        Ok(())
    }

    /// End the request: an empty DATA frame with END_STREAM. Nothing if it
    /// already ended.
    ///
    /// # Errors
    /// As [`HttpSession::write_request_body`].
    pub async fn finish_request_body(&mut self) -> Result<()> {
        match self.sending {
            Sending::Done => Ok(()),
            _ => self.write_request_body(Bytes::new(), true).await,
        }
    }

    /// End the request with a trailer section (HEADERS with END_STREAM,
    /// RFC 9113 §8.1).
    ///
    /// # Errors
    /// `InternalError` outside the body state; `H2Error` if the stream is gone.
    pub fn write_request_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        let Sending::Body(stream) = &mut self.sending else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "HTTP/2 request trailers written outside the body state",
            )
            .into_in());
        };
        stream
            .send_trailers(trailers)
            .map_err(|e| h2_err(e, "writing HTTP/2 request trailers"))?;
        self.sending = Sending::Done;
        Ok(())
    }

    /// Wait for the response header (informational 1xx responses are
    /// skipped by `h2`). Afterwards [`HttpSession::response_header`] holds it.
    ///
    /// # Errors
    /// `ReadTimedout` past the read timeout; `H2Error` when the server reset
    /// the stream (retryable for `REFUSED_STREAM`) or the connection failed.
    pub async fn read_response_header(&mut self) -> Result<()> {
        let Receiving::Head(response) = &mut self.receiving else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "HTTP/2 response header read outside the header state",
            )
            .into_in());
        };
        let timeout = self.read_timeout;
        let resp = bounded(
            timeout,
            ErrorType::ReadTimedout,
            "reading HTTP/2 response header",
            async {
                response
                    .await
                    .map_err(|e| h2_err(e, "reading HTTP/2 response header"))
            },
        )
        .await
        .inspect_err(|e| {
            if e.retry() {
                self.slot.0.mark_closing();
            }
        })?;
        let (parts, body) = resp.into_parts();
        self.response = Some(Box::new(response_from_h2(parts)?));
        self.receiving = if body.is_end_stream() {
            Receiving::Done
        } else {
            Receiving::Body(body)
        };
        Ok(())
    }

    /// The response header read, if any.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    /// Take the response header out of the session, to forward it.
    pub fn take_response_header(&mut self) -> Option<Box<ResponseHeader>> {
        self.response.take()
    }

    /// The request header sent, if any.
    pub fn request_header(&self) -> Option<&RequestHeader> {
        self.request.as_deref()
    }

    /// The next piece of the response body, `Ok(None)` at its end. What is
    /// read is released to the server's flow-control window at once, so
    /// the server sends as fast as the body is consumed.
    ///
    /// # Errors
    /// `ReadTimedout` past the read timeout; `H2Error` when the server reset
    /// the stream or the connection failed.
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        let Receiving::Body(body) = &mut self.receiving else {
            return Ok(None);
        };
        let timeout = self.read_timeout;
        let piece = bounded(
            timeout,
            ErrorType::ReadTimedout,
            "reading HTTP/2 response body",
            async {
                loop {
                    match body.data().await {
                        None => return Ok(None),
                        Some(Err(e)) => return Err(h2_err(e, "reading HTTP/2 response body")),
                        Some(Ok(b)) => {
                            let _ = body.flow_control().release_capacity(b.len());
                            if !b.is_empty() || body.is_end_stream() {
                                return Ok(Some(b));
                            }
                        }
                    }
                }
            },
        )
        .await?;
        if let Some(b) = &piece {
            self.bytes_read += b.len();
        }
        let ended = match &self.receiving {
            Receiving::Body(b) => piece.is_none() || b.is_end_stream(),
            _ => true,
        };
        if ended {
            if let Receiving::Body(b) = std::mem::replace(&mut self.receiving, Receiving::Done) {
                // h2 answers `trailers()` at once when the stream ended on DATA
                self.receiving = Receiving::Trailers(b);
            }
        }
        Ok(piece)
    }

    /// The response trailers (RFC 9113 §8.1), once the body has ended;
    /// `Ok(None)` when the response has none. Reading them ends the response.
    ///
    /// # Errors
    /// `ReadTimedout` past the read timeout; `H2Error` when the server reset
    /// the stream or the connection failed.
    pub async fn read_response_trailers(&mut self) -> Result<Option<Box<HeaderMap>>> {
        if let Some(t) = self.trailers.take() {
            return Ok(Some(t));
        }
        let Receiving::Trailers(body) = &mut self.receiving else {
            return Ok(None);
        };
        let timeout = self.read_timeout;
        let trailers = bounded(
            timeout,
            ErrorType::ReadTimedout,
            "reading HTTP/2 response trailers",
            async {
                body.trailers()
                    .await
                    .map_err(|e| h2_err(e, "reading HTTP/2 response trailers"))
            },
        )
        .await?;
        self.receiving = Receiving::Done;
        Ok(trailers.map(Box::new))
    }

    /// Whether the response body has ended (trailers may still be unread).
    pub fn response_body_done(&self) -> bool {
        matches!(self.receiving, Receiving::Trailers(_) | Receiving::Done)
    }

    /// Whether the whole response, trailers included, has been read.
    pub fn response_finished(&self) -> bool {
        matches!(self.receiving, Receiving::Done)
    }

    /// Request body bytes sent so far.
    pub fn body_bytes_sent(&self) -> usize {
        self.bytes_sent
    }

    /// Response body bytes read so far.
    pub fn body_bytes_read(&self) -> usize {
        self.bytes_read
    }

    /// Reset the stream (`CANCEL`) unless it has ended both ways.
    pub fn shutdown(&mut self) {
        if let Sending::Body(s) = &mut self.sending {
            s.send_reset(h2::Reason::CANCEL);
        }
        self.sending = Sending::Done;
        self.receiving = Receiving::Done;
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
