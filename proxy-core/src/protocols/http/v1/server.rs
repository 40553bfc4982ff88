//! The HTTP/1.1 server session: read requests from and write responses to
//! a downstream client (RFC 9112).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Method, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::body::{BodyReader, BodyWriter};
use super::common::{
    self, HeaderLimits, KeepaliveStatus, TransferCoding, DEFAULT_HEADER_TIMEOUT_SECS,
    DEFAULT_KEEPALIVE_SECS, INIT_HEADER_BUF_SIZE,
};
use super::head::{self, HeadParse};
use super::idle_timer::IdleTimer;
use crate::error::{Error, ErrorType, Result};
use crate::http::{FieldLines, RequestHeader, ResponseHeader};
use crate::protocols::{SocketAddr, Stream};

/// `Expect: 100-continue` handling (RFC 9110 §10.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContinueState {
    /// The request did not ask for it (or has no body).
    NotExpected,
    /// The request asked; `100 Continue` goes out on the first body read.
    Expected,
    /// Sent, or made moot by a final response.
    Done,
}

/// How long [`HttpSession::close_lingering`] keeps reading before it closes.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// How many bytes [`HttpSession::close_lingering`] reads and discards at most.
pub const LINGER_BYTES: usize = 1 << 20;

/// One downstream HTTP/1.1 connection, serving one request at a time.
///
/// Call [`HttpSession::read_request`], read the body with
/// [`HttpSession::read_body_bytes`], answer with
/// [`HttpSession::write_response_header`], [`HttpSession::write_body`] and
/// [`HttpSession::finish_body`], then [`HttpSession::reuse`] to get a session
/// for the next request on the same connection.
#[derive(Debug)]
pub struct HttpSession {
    stream: Stream,
    /// Bytes read but not yet consumed (head, body, pipelined requests).
    buf: BytesMut,
    request_header: Option<Box<RequestHeader>>,
    /// A request head has been read (not just an empty header made by `req_header_mut`).
    request_read: bool,
    body_reader: BodyReader,
    body_writer: BodyWriter,
    /// The response head, serialized but held back so that it goes out in
    /// one write with the first body piece (or at `finish_body`).
    pending_head: BytesMut,
    response_written: Option<Box<ResponseHeader>>,
    keepalive: KeepaliveStatus,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    header_timeout: Option<Duration>,
    limits: HeaderLimits,
    continue_state: ContinueState,
    /// The request asked for a persistent connection (RFC 9112 §9.3).
    request_keepalive: bool,
    /// Something (the response, an error, close-delimited framing) requires
    /// closing after this response.
    must_close: bool,
    upgraded: bool,
    body_empty: bool,
    body_bytes_read: usize,
    body_bytes_sent: usize,
    /// This session follows an earlier request on the same connection.
    reused: bool,
    client_addr: Option<SocketAddr>,
    server_addr: Option<SocketAddr>,
    /// The wait for the next request's timer, kept across requests.
    idle_timer: IdleTimer,
}

impl HttpSession {
    /// A session on a freshly accepted connection, with the default
    /// header limits (64 KiB / 256 headers), header timeout (60 s) and
    /// keep-alive (60 s), and no body read/write timeouts.
    pub fn new(stream: Stream) -> Self {
        let client_addr = stream.peer_addr();
        let server_addr = stream.local_addr();
        HttpSession {
            stream,
            buf: BytesMut::new(),
            request_header: None,
            request_read: false,
            body_reader: BodyReader::Done,
            body_writer: BodyWriter::Pending,
            pending_head: BytesMut::new(),
            response_written: None,
            keepalive: KeepaliveStatus::Timeout(Duration::from_secs(DEFAULT_KEEPALIVE_SECS)),
            read_timeout: None,
            write_timeout: None,
            header_timeout: Some(Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS)),
            limits: HeaderLimits::default(),
            continue_state: ContinueState::NotExpected,
            request_keepalive: false,
            must_close: false,
            upgraded: false,
            body_empty: true,
            body_bytes_read: 0,
            body_bytes_sent: 0,
            reused: false,
            client_addr,
            server_addr,
            idle_timer: IdleTimer::default(),
        }
    }

    /// Wait, holding no buffer, until the next request's first byte arrives.
    /// Returns `false` if the wait timed out (the keep-alive timeout on a
    /// reused connection, the header timeout on a fresh one) and the
    /// connection should be closed quietly. Call before
    /// [`HttpSession::read_request`] to keep an idle connection small.
    ///
    /// # Errors
    /// `ReadError` if the socket fails.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_request(&mut self) -> Result<bool> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        let timeout = self.first_byte_timeout();
        let stream = &self.stream;
        let ready = |cx: &mut std::task::Context<'_>| stream.poll_read_ready(cx);
        let readable = match timeout {
            // the timer is moved lazily: it may stay armed up to a quarter
            // of the timeout early, and is moved on when it fires early
            Some(t) => {
                let deadline = tokio::time::Instant::now() + t;
                self.idle_timer.wait(deadline, t / 4, ready).await
            }
            None => Some(std::future::poll_fn(ready).await),
        };
        match readable {
            Some(Ok(())) => Ok(true),
            None => Ok(false),
            Some(Err(e)) => {
                Err(Error::because(ErrorType::ReadError, "waiting for a request", e).into_down())
            }
        }
    }

    /// The connection's timer, free while a request is in flight: an
    /// upstream exchange made for this connection may wait with it
    /// ([`crate::protocols::http::client::HttpSession::read_response_header_for`]).
    pub(crate) fn idle_timer(&mut self) -> &mut IdleTimer {
        &mut self.idle_timer
    }

    /// How long to wait for a request's first byte.
    fn first_byte_timeout(&self) -> Option<Duration> {
        if self.reused {
            match self.keepalive {
                KeepaliveStatus::Timeout(d) => Some(d),
                KeepaliveStatus::Infinite | KeepaliveStatus::Off => None,
            }
        } else {
            self.header_timeout
        }
    }

    /// Read and parse the request head. Returns the head's size in bytes, or
    /// `Ok(None)` if the client closed the connection (or, on a reused
    /// connection, the keep-alive idle timeout expired) before sending a byte.
    ///
    /// # Errors
    /// All with source Downstream: `InvalidHTTPHeader` for a malformed head;
    /// `HTTPStatus(431)` for a head over the limits; `HTTPStatus(400)` for
    /// ambiguous framing (Content-Length with Transfer-Encoding, conflicting
    /// or non-numeric Content-Length, Transfer-Encoding not ending in chunked
    /// or in an HTTP/1.0 request, several Host headers); `ReadTimedout` when
    /// the head is not complete within the header timeout; `ConnectionClosed`
    /// when the client closes in the middle of the head.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read so far stay buffered in the session.
    pub async fn read_request(&mut self) -> Result<Option<usize>> {
        self.read_request_inner().await.map_err(|e| {
            self.must_close = true;
            e.into_down()
        })
    }

    async fn read_request_inner(&mut self) -> Result<Option<usize>> {
        if self.request_read {
            return Error::e_explain(
                ErrorType::InternalError,
                "read_request called twice on one session; use reuse()",
            );
        }
        if self.buf.is_empty() {
            let first_byte_timeout = self.first_byte_timeout();
            // wait first, allocate the head buffer only once bytes arrive
            let read = match common::wait_readable(
                &self.stream,
                first_byte_timeout,
                "waiting for a request",
            )
            .await
            {
                Ok(()) => {
                    common::read_more(
                        &mut self.stream,
                        &mut self.buf,
                        INIT_HEADER_BUF_SIZE,
                        first_byte_timeout,
                        "waiting for a request",
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match read {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if self.reused && e.etype() == &ErrorType::ReadTimedout => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        // set when the head turns out to need more reads: most heads arrive
        // whole, and then the clock is not read at all
        let mut deadline = None;
        let (req, len) = loop {
            match head::parse_request(&mut self.buf, &self.limits)? {
                HeadParse::Complete(req, len) => break (req, len),
                HeadParse::Partial => {
                    let left = self.header_timeout.map(|t| {
                        let now = tokio::time::Instant::now();
                        deadline
                            .get_or_insert(now + t)
                            .saturating_duration_since(now)
                    });
                    let n = common::read_more(
                        &mut self.stream,
                        &mut self.buf,
                        INIT_HEADER_BUF_SIZE,
                        left,
                        "reading request header",
                    )
                    .await?;
                    if n == 0 {
                        return Error::e_explain(
                            ErrorType::ConnectionClosed,
                            "client closed before the request header was complete",
                        );
                    }
                }
            }
        };
        self.body_reader = request_body_reader(&req)?;
        self.body_empty = self.body_reader.is_done();
        self.request_keepalive = common::is_keepalive(req.http_version(), &req);
        self.continue_state = if req.http_version() == Version::HTTP_11
            && !self.body_empty
            && common::header_has_token(&req, &header::EXPECT, "100-continue")
        {
            ContinueState::Expected
        } else {
            ContinueState::NotExpected
        };
        self.request_header = Some(Box::new(req));
        self.request_read = true;
        Ok(Some(len))
    }

    /// The request header; an empty `GET /` before [`HttpSession::read_request`]
    /// succeeded (see [`HttpSession::try_req_header`]).
    pub fn req_header(&self) -> &RequestHeader {
        match self.request_header.as_deref() {
            Some(r) => r,
            None => empty_request(),
        }
    }

    /// The request header, if one has been read.
    pub fn try_req_header(&self) -> Option<&RequestHeader> {
        self.request_header.as_deref()
    }

    /// The request header, mutable (e.g. to rewrite it before proxying). An
    /// empty `GET /` before a request was read; changing it does not count
    /// as reading a request.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.request_header
            .get_or_insert_with(|| Box::new(empty_request().clone()))
    }

    /// The client's address, when the transport has one.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.client_addr.as_ref()
    }

    /// Our own address on this connection, when the transport has one.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.server_addr.as_ref()
    }

    /// A one-line description for logs: `GET /path, Host: example.org`.
    pub fn request_summary(&self) -> String {
        match self.request_header.as_deref() {
            None => "(no request)".to_owned(),
            Some(r) => format!(
                "{} {}, Host: {}",
                r.method(),
                String::from_utf8_lossy(r.raw_path()),
                r.field_values(&header::HOST)
                    .next()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
            ),
        }
    }

    /// The final response header written, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        // a head still held back is not written: it can be replaced
        self.response_written
            .as_deref()
            .filter(|_| self.pending_head.is_empty())
    }

    /// Send a response head that is still held back (waiting to go out with
    /// the first body piece). Call before waiting for a body that may be slow
    /// to come (e.g. a streamed upstream response).
    ///
    /// # Errors
    /// `WriteError`/`WriteTimedout` (source Downstream).
    pub async fn flush_response_header(&mut self) -> Result<()> {
        if self.pending_head.is_empty() {
            return Ok(());
        }
        let head = std::mem::take(&mut self.pending_head);
        self.write_raw(&head, "writing response header").await
    }

    /// Whether the request asks to switch protocols (RFC 9110 §7.8).
    pub fn is_upgrade_req(&self) -> bool {
        self.request_header
            .as_deref()
            .is_some_and(|r| common::is_upgrade(r.http_version(), r))
    }

    /// Whether a `101 Switching Protocols` was sent: both directions are now
    /// raw byte streams.
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Whether the request body has been read completely.
    pub fn is_body_done(&self) -> bool {
        self.body_reader.is_done()
    }

    /// Whether the request has no body at all.
    pub fn is_body_empty(&self) -> bool {
        self.body_empty
    }

    /// Request body bytes read so far (after de-chunking).
    pub fn body_bytes_read(&self) -> usize {
        self.body_bytes_read
    }

    /// Response body bytes written so far (before chunk framing).
    pub fn body_bytes_sent(&self) -> usize {
        self.body_bytes_sent
    }

    /// Timeout for each read of the request body; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Timeout for each write to the client; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Time allowed from the first byte of a request to its complete head
    /// (also the wait for the first byte on a new connection); default 60 s.
    pub fn set_header_read_timeout(&mut self, timeout: Option<Duration>) {
        self.header_timeout = timeout;
    }

    /// Limits on the request head (default 64 KiB, 256 headers).
    pub fn set_header_limits(&mut self, limits: HeaderLimits) {
        self.limits = limits;
    }

    /// Keep-alive, in seconds, Pingora's convention: `None` closes after this
    /// response; `Some(0)` waits forever for the next request; `Some(s)`
    /// waits `s` seconds. Default 60 s.
    pub fn set_keepalive(&mut self, seconds: Option<u64>) {
        self.keepalive = KeepaliveStatus::from_secs(seconds);
    }

    /// The keep-alive setting in [`HttpSession::set_keepalive`]'s convention.
    pub fn get_keepalive(&self) -> Option<u64> {
        self.keepalive.as_secs()
    }

    /// Whether the connection will be kept open after this response
    /// (RFC 9112 §9.3, the keep-alive setting, the response's framing and
    /// any error so far).
    pub fn will_keepalive(&self) -> bool {
        self.keepalive != KeepaliveStatus::Off
            && self.request_keepalive
            && !self.must_close
            && !self.upgraded
    }

    /// The next piece (at most [`super::common::BODY_BUF_LIMIT`], 60 KiB)
    /// of the request body, `Ok(None)` at its end. After a `101` these are
    /// the client's raw bytes until it closes. Sends `100 Continue` first
    /// when the request expects it and no response was written yet.
    ///
    /// # Errors
    /// Source Downstream: `ConnectionClosed` when the body is cut short,
    /// `H1Error` for bad chunked framing, `ReadTimedout`, `ReadError`;
    /// `InternalError` before a request was read.
    ///
    /// # Cancel safety
    /// Not cancel safe for chunked bodies; drop the session after cancelling.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if !self.request_read {
            return Err(
                Error::explain(ErrorType::InternalError, "body read before the request").into_in(),
            );
        }
        if self.continue_state == ContinueState::Expected {
            self.continue_state = ContinueState::Done;
            if self.response_written.is_none() {
                self.write_raw(b"HTTP/1.1 100 Continue\r\n\r\n", "writing 100 Continue")
                    .await?;
            }
        }
        match self
            .body_reader
            .read(&mut self.stream, &mut self.buf, self.read_timeout)
            .await
        {
            Ok(Some(b)) => {
                self.body_bytes_read += b.len();
                Ok(Some(b))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.must_close = true;
                Err(e.into_down())
            }
        }
    }

    /// Read and discard the rest of the request body so the connection can
    /// serve another request.
    ///
    /// # Errors
    /// As [`HttpSession::read_body_bytes`].
    pub async fn drain_request_body(&mut self) -> Result<()> {
        if !self.request_read || self.upgraded {
            return Ok(());
        }
        // no 100 Continue for a body nobody wants: close instead if one was expected
        if self.continue_state == ContinueState::Expected {
            self.continue_state = ContinueState::Done;
            self.must_close = true;
            return Ok(());
        }
        while self.read_body_bytes().await?.is_some() {}
        Ok(())
    }

    async fn write_raw(&mut self, data: &[u8], what: &'static str) -> Result<()> {
        let r = async {
            common::write_all(&mut self.stream, data, self.write_timeout, what).await?;
            common::flush(&mut self.stream, self.write_timeout, what).await
        }
        .await;
        r.map_err(|e| {
            self.must_close = true;
            e.into_down()
        })
    }

    /// Write a response header.
    ///
    /// An informational (1xx) header other than 101 is written as is and the
    /// response continues. `101 Switching Protocols` to an upgrade request
    /// turns the connection into a raw byte pipe in both directions. A final
    /// header fixes the body framing (RFC 9112 §6.3): none for HEAD requests
    /// and 204/304; `Content-Length` if set; else `Transfer-Encoding:
    /// chunked` (added) for an HTTP/1.1 client; else close-delimited. It
    /// also sets `Connection: close`, or `Connection: keep-alive` for a
    /// persistent HTTP/1.0 client.
    ///
    /// # Errors
    /// `InternalError` before a request was read or after a final header;
    /// `H1Error` for 101 to a request that did not ask to upgrade;
    /// `InvalidHTTPHeader` for an invalid Content-Length in `header`;
    /// `WriteTimedout`/`WriteError`.
    pub async fn write_response_header(&mut self, mut header: Box<ResponseHeader>) -> Result<()> {
        let Some(req) = self.request_header.as_deref().filter(|_| self.request_read) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "response written before a request was read",
            )
            .into_in());
        };
        if self.response_written.is_some() {
            if self.pending_head.is_empty() {
                return Err(Error::explain(
                    ErrorType::InternalError,
                    "a final response header was already written",
                )
                .into_in());
            }
            // the earlier head never reached the wire (e.g. an error came
            // before the first body piece): this one replaces it
            self.pending_head.clear();
            self.response_written = None;
            self.body_writer = BodyWriter::Pending;
        }
        let status = header.status_code();
        let is_head = *req.method() == Method::HEAD;
        let client_version = req.http_version();
        let is_upgrade_req = common::is_upgrade(client_version, req);
        if status.is_informational()
            && status != http::StatusCode::SWITCHING_PROTOCOLS
            && client_version == Version::HTTP_10
        {
            // RFC 9110 §15.2: never send a 1xx response to an HTTP/1.0 client
            return Ok(());
        }
        if status.is_informational() && status != http::StatusCode::SWITCHING_PROTOCOLS {
            if status == http::StatusCode::CONTINUE {
                self.continue_state = ContinueState::Done;
            }
            let mut out = BytesMut::new();
            head::response_to_wire(&header, &mut out);
            return self.write_raw(&out, "writing informational response").await;
        }
        if self.continue_state == ContinueState::Expected {
            // final answer before asking for the body: the client may or may
            // not send it, so the connection cannot be reused (RFC 9110 §10.1.1)
            self.must_close = true;
        }
        self.continue_state = ContinueState::Done;
        if status == http::StatusCode::SWITCHING_PROTOCOLS {
            if !is_upgrade_req {
                return Err(Error::explain(
                    ErrorType::H1Error,
                    "101 Switching Protocols for a request that did not ask to upgrade",
                )
                .into_in());
            }
            let mut out = BytesMut::new();
            head::response_to_wire(&header, &mut out);
            self.write_raw(&out, "writing 101 response").await?;
            self.upgraded = true;
            self.body_reader = BodyReader::UntilClose;
            self.body_writer = BodyWriter::UntilClose;
            self.response_written = Some(header);
            return Ok(());
        }

        self.body_writer = if is_head
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED
        {
            BodyWriter::NoBody
        } else {
            match common::transfer_coding(&*header) {
                TransferCoding::Chunked if client_version == Version::HTTP_11 => {
                    header.remove_header_named(&header::CONTENT_LENGTH);
                    BodyWriter::Chunked
                }
                TransferCoding::Absent => {
                    match common::content_length(&*header, ErrorType::InvalidHTTPHeader)
                        .map_err(Error::into_in)?
                    {
                        Some(len) => BodyWriter::ContentLength { remaining: len },
                        None if client_version == Version::HTTP_11 => {
                            header.insert_header(header::TRANSFER_ENCODING, "chunked")?;
                            BodyWriter::Chunked
                        }
                        None => {
                            self.must_close = true;
                            BodyWriter::UntilClose
                        }
                    }
                }
                // a coding we cannot frame for this client: send it close-delimited
                _ => {
                    header.remove_header(&header::TRANSFER_ENCODING);
                    header.remove_header(&header::CONTENT_LENGTH);
                    self.must_close = true;
                    BodyWriter::UntilClose
                }
            }
        };
        if !common::is_keepalive(Version::HTTP_11, &*header) {
            // the response itself says close
            self.must_close = true;
        }
        if self.will_keepalive() {
            if client_version == Version::HTTP_10 {
                header.insert_header(header::CONNECTION, "keep-alive")?;
            }
        } else {
            header.insert_header(header::CONNECTION, "close")?;
        }
        // room for a typical head and a small body copied behind it
        let mut out = BytesMut::with_capacity(2048);
        head::response_to_wire(&header, &mut out);
        self.response_written = Some(header);
        if self.body_writer == BodyWriter::NoBody {
            return self.write_raw(&out, "writing response header").await;
        }
        // held back: sent with the first body piece or by finish_body
        self.pending_head = out;
        Ok(())
    }

    /// Write a piece of the response body, framed as the header decided
    /// (chunked: one chunk per call; empty data writes nothing). After a
    /// `101`, raw bytes. Discarded for body-less responses.
    ///
    /// # Errors
    /// `H1Error` before the header, after [`HttpSession::finish_body`] or past
    /// the Content-Length; `WriteTimedout`/`WriteError` (source Downstream).
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        match self
            .body_writer
            .write(
                &mut self.stream,
                &mut self.pending_head,
                data,
                self.write_timeout,
            )
            .await
        {
            Ok(n) => {
                self.body_bytes_sent += n;
                Ok(())
            }
            Err(e) => {
                self.must_close = true;
                Err(e.into_down())
            }
        }
    }

    /// Whether [`HttpSession::write_body_file`] can send the response body
    /// now: the transport is a plain socket (not TLS) and the response,
    /// already written, is framed by Content-Length or by closing.
    pub fn can_write_body_file(&self) -> bool {
        self.body_writer.can_write_file() && self.stream.can_send_file()
    }

    /// Send `len` bytes of `file` from byte `offset` as (part of) the
    /// response body with sendfile(2), without copying them through user
    /// space; the held-back head goes first.
    ///
    /// # Errors
    /// As [`HttpSession::write_body`], plus `WriteError` when `file` is
    /// shorter than `offset + len`; after an error the connection is closed.
    pub async fn write_body_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<()> {
        match self
            .body_writer
            .write_file(
                &mut self.stream,
                &mut self.pending_head,
                file,
                offset,
                len,
                self.write_timeout,
            )
            .await
        {
            Ok(n) => {
                self.body_bytes_sent += n as usize;
                Ok(())
            }
            Err(e) => {
                self.must_close = true;
                Err(e.into_down())
            }
        }
    }

    /// End the response body (the last chunk when chunked) and flush.
    ///
    /// # Errors
    /// `H1Error` if a Content-Length body is short (the connection will be
    /// closed); `WriteTimedout`/`WriteError`.
    pub async fn finish_body(&mut self) -> Result<()> {
        if self.body_writer == BodyWriter::UntilClose {
            // close-delimited: the end of the body is the end of the connection
            self.must_close = true;
        }
        self.body_writer
            .finish(&mut self.stream, &mut self.pending_head, self.write_timeout)
            .await
            .map_err(|e| {
                self.must_close = true;
                e.into_down()
            })
    }

    /// End the response body with `trailers` in the trailer section of the
    /// last chunk (RFC 9112 §7.1.2) when the body is chunked; otherwise
    /// (Content-Length, close-delimited, no body) the trailers cannot be
    /// sent and this is [`HttpSession::finish_body`].
    ///
    /// # Errors
    /// As [`HttpSession::finish_body`].
    pub async fn finish_body_with_trailers(&mut self, trailers: &http::HeaderMap) -> Result<()> {
        if self.body_writer != BodyWriter::Chunked || trailers.is_empty() {
            return self.finish_body().await;
        }
        self.body_writer
            .finish_with_trailers(
                &mut self.stream,
                &mut self.pending_head,
                trailers,
                self.write_timeout,
            )
            .await
            .map_err(|e| {
                self.must_close = true;
                e.into_down()
            })
    }

    /// Whether the response has been completely written.
    pub fn is_response_done(&self) -> bool {
        self.response_written.is_some() && self.body_writer.is_finished()
    }

    /// A session for the next request on this connection, if the connection
    /// can be kept: keep-alive holds (see [`HttpSession::will_keepalive`]),
    /// the response is finished, and the request body was (or can now be)
    /// read completely. Bytes of a pipelined next request already buffered
    /// are carried over; so are the timeouts, limits and keep-alive setting.
    /// Otherwise the connection is shut down and `None` returned.
    ///
    /// # Cancel safety
    /// Not cancel safe (it may drain the request body); dropping it closes
    /// the connection.
    pub async fn reuse(mut self) -> Option<HttpSession> {
        if self.prepare_reuse().await {
            Some(self)
        } else {
            None
        }
    }

    /// [`HttpSession::reuse`] in place: `true` when this session is now
    /// ready for the next request, `false` when the connection was shut down.
    /// Lets a caller keep the session where it is (boxed, say) instead of
    /// moving it out and back.
    ///
    /// # Cancel safety
    /// As [`HttpSession::reuse`].
    pub async fn prepare_reuse(&mut self) -> bool {
        if self.will_keepalive()
            && self.is_response_done()
            && self.drain_request_body().await.is_ok()
            && self.will_keepalive()
        {
            self.buf = common::compact(std::mem::take(&mut self.buf));
            self.request_header = None;
            self.request_read = false;
            self.body_reader = BodyReader::Done;
            self.body_writer = BodyWriter::Pending;
            self.pending_head = BytesMut::new();
            self.response_written = None;
            self.continue_state = ContinueState::NotExpected;
            self.request_keepalive = false;
            self.must_close = false;
            self.upgraded = false;
            self.body_empty = true;
            self.body_bytes_read = 0;
            self.body_bytes_sent = 0;
            self.reused = true;
            return true;
        }
        self.shutdown().await;
        false
    }

    /// Flush and close our side of the connection; errors are ignored (the
    /// client may be gone already).
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Answer a request whose head could not be read (malformed, too large,
    /// ambiguous framing) with `resp`, marked `Connection: close`; the
    /// connection must then be closed (see [`HttpSession::close_lingering`]).
    /// `resp` should carry no body (e.g. `gen_error_response`).
    ///
    /// # Errors
    /// Downstream write errors.
    pub async fn write_rejection(&mut self, mut resp: ResponseHeader) -> Result<()> {
        self.must_close = true;
        resp.insert_header(header::CONNECTION, "close")?;
        let mut out = BytesMut::new();
        head::response_to_wire(&resp, &mut out);
        self.write_raw(&out, "writing error response").await
    }

    /// Close the connection after a response the client may still be sending
    /// a request to (an error answered before the request body was read):
    /// send FIN, then read and discard what the client still sends for at most
    /// [`LINGER_TIME`] and [`LINGER_BYTES`], then drop the socket.
    ///
    /// Closing a socket with unread received bytes makes the kernel answer
    /// with a reset, which can destroy the response before the client reads
    /// it (RFC 9112 §9.6; nginx's `lingering_close`).
    ///
    /// # Cancel safety
    /// Dropping the future closes the connection at once.
    pub async fn close_lingering(mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + LINGER_TIME;
        // on the heap: this path is rare, and a stack buffer would enlarge
        // every connection task's future
        let mut buf = vec![0u8; 4096];
        let mut total = 0usize;
        while total < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => total += n,
                _ => break,
            }
        }
    }

    /// The underlying stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Give up the session and return the stream with any bytes read but not
    /// consumed (e.g. to hand an upgraded connection to another protocol).
    pub fn into_inner(self) -> (Stream, BytesMut) {
        (self.stream, self.buf)
    }
}

/// RFC 9112 §6.3 for a request: how its body is delimited.
fn request_body_reader(req: &RequestHeader) -> Result<BodyReader> {
    let bad = |msg: &'static str| Error::explain(ErrorType::HTTPStatus(400), msg);
    if req.field_values(&header::HOST).nth(1).is_some() {
        // RFC 9112 §3.2: more than one Host is answered 400
        return Err(bad("more than one Host header"));
    }
    let te = common::transfer_coding(req);
    if te != TransferCoding::Absent {
        if req.has_field(&header::CONTENT_LENGTH) {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        if req.http_version() == Version::HTTP_10 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        return match te {
            // RFC 9112 §6.1: a transfer coding the server does not know → 501
            TransferCoding::Chunked if !common::is_only_chunked(req) => Err(Error::explain(
                ErrorType::HTTPStatus(501),
                "request Transfer-Encoding has a coding other than chunked",
            )),
            TransferCoding::Chunked => Ok(BodyReader::chunked()),
            _ => Err(bad(
                "Transfer-Encoding of a request does not end in chunked",
            )),
        };
    }
    Ok(common::content_length(req, ErrorType::HTTPStatus(400))?
        .map_or(BodyReader::Done, BodyReader::content_length))
}

fn empty_request() -> &'static RequestHeader {
    static EMPTY: std::sync::OnceLock<RequestHeader> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| RequestHeader::from(http::Request::new(()).into_parts().0))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
