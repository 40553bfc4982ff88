//! One HTTP/2 stream as a server session: a request and its response.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::StatusCode;

use super::coalesce::Coalescing;
use super::convert::{request_from_h2, response_to_h2};
use super::options::H2Options;
use super::send_body::{send_with_capacity, SendBodyError};
use crate::error::{Error, ErrorType, OrErr, Result};
use crate::http::{FieldLines, RequestHeader, ResponseHeader};
use crate::protocols::{SocketAddr, Stream};
use crate::tls::SslDigest;

/// The largest last piece of a response body sent without first reserving
/// flow-control capacity for it, in bytes: one DATA frame at the default
/// SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
const DIRECT_LAST_PIECE: usize = 16_384;

/// A server-side HTTP/2 connection (`h2`'s), driven by polling `accept`.
pub type H2Connection = h2::server::Connection<Coalescing<Stream>, Bytes>;

/// Run the server side of the HTTP/2 handshake on `stream` with `options`:
/// read the client preface and SETTINGS, send ours.
///
/// # Errors
/// `H2Error` (downstream) when the client does not speak HTTP/2 or the
/// connection fails during the handshake.
pub async fn handshake(stream: Stream, options: &H2Options) -> Result<H2Connection> {
    options
        .builder()
        .handshake(Coalescing::new(stream))
        .await
        .or_err(ErrorType::H2Error, "HTTP/2 handshake failed")
        .map_err(|e| e.into_down())
}

/// The facts of the connection a stream belongs to, shared by its streams.
#[derive(Debug, Default)]
pub struct ConnInfo {
    /// The client's address.
    pub client_addr: Option<SocketAddr>,
    /// Our address.
    pub server_addr: Option<SocketAddr>,
    /// The TLS handshake's facts; `None` for h2c.
    pub ssl_digest: Option<Arc<SslDigest>>,
}

impl ConnInfo {
    /// The facts of `stream` (read before it is handed to `h2`).
    pub fn of(stream: &Stream) -> Self {
        ConnInfo {
            client_addr: stream.peer_addr(),
            server_addr: stream.local_addr(),
            ssl_digest: stream.ssl_digest(),
        }
    }
}

/// The response side of the stream.
#[derive(Debug)]
enum Sender {
    /// No final header on the wire yet.
    Head(SendResponse<Bytes>),
    /// The header is sent; the body follows.
    Body(SendStream<Bytes>),
    /// The response ended (or the stream was reset).
    Done,
}

/// One HTTP/2 stream, served like an HTTP/1 request: read the request
/// header (already done when the session is made) and body, write a
/// response header and body. Keep-alive does not apply: the connection
/// lives on for other streams.
#[derive(Debug)]
pub struct HttpSession {
    request: RequestHeader,
    body: RecvStream,
    body_done: bool,
    body_empty: bool,
    sender: Sender,
    /// The final response header written, sent or still held back.
    response_written: Option<Box<ResponseHeader>>,
    /// Whether `response_written` is still to be sent.
    head_pending: bool,
    continue_sent: bool,
    bytes_read: usize,
    bytes_sent: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    conn: Arc<ConnInfo>,
}

fn h2_err(e: h2::Error, what: &'static str) -> Box<Error> {
    let etype = if e.is_io() {
        ErrorType::ConnectionClosed
    } else {
        ErrorType::H2Error
    };
    Error::because(etype, what, e).into_down()
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
            Err(_) => Err(Error::explain(etype, what).into_down()),
        },
        None => fut.await,
    }
}

impl HttpSession {
    /// A session for a stream `h2` accepted: `request` its head and body,
    /// `respond` its response side, `conn` its connection's facts.
    ///
    /// # Errors
    /// `InvalidHTTPHeader` if the head cannot be a request (see
    /// [`request_from_h2`]); the stream is then reset with `PROTOCOL_ERROR`.
    pub fn new(
        request: http::Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        conn: Arc<ConnInfo>,
    ) -> Result<Self> {
        let (parts, body) = request.into_parts();
        let request = match request_from_h2(parts) {
            Ok(r) => r,
            Err(e) => {
                respond.send_reset(h2::Reason::PROTOCOL_ERROR);
                return Err(e.into_down());
            }
        };
        let body_empty = body.is_end_stream()
            || request
                .field_values(&http::header::CONTENT_LENGTH)
                .next()
                .is_some_and(|v| v == b"0");
        Ok(HttpSession {
            request,
            body,
            body_done: body_empty,
            body_empty,
            sender: Sender::Head(respond),
            response_written: None,
            head_pending: false,
            continue_sent: false,
            bytes_read: 0,
            bytes_sent: 0,
            read_timeout: None,
            write_timeout: None,
            conn,
        })
    }

    /// The request header.
    pub fn req_header(&self) -> &RequestHeader {
        &self.request
    }

    /// The request header, mutable.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.request
    }

    /// The next piece of request body, `Ok(None)` at its end. What is read
    /// is released to the client's flow-control window, so a client sends
    /// only as fast as the body is consumed. Answers `Expect: 100-continue`
    /// (RFC 9110 §10.1.1) with a `100` before the first read.
    ///
    /// # Errors
    /// `ReadTimedout` past the read timeout; `H2Error` when the client reset
    /// the stream or the connection failed; `ConnectionClosed` on I/O errors.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if self.body_done {
            return Ok(None);
        }
        self.send_continue_if_expected();
        let timeout = self.read_timeout;
        let body = &mut self.body;
        let piece = bounded(
            timeout,
            ErrorType::ReadTimedout,
            "reading HTTP/2 request body",
            async {
                loop {
                    match body.data().await {
                        None => return Ok(None),
                        Some(Err(e)) => return Err(h2_err(e, "reading HTTP/2 request body")),
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
        match &piece {
            Some(b) => {
                self.bytes_read += b.len();
                if self.body.is_end_stream() {
                    self.body_done = true;
                }
            }
            None => self.body_done = true,
        }
        Ok(piece)
    }

    fn send_continue_if_expected(&mut self) {
        if self.continue_sent || self.response_written.is_some() {
            return;
        }
        self.continue_sent = true;
        let expects = self
            .request
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if let (true, Sender::Head(respond)) = (expects, &mut self.sender) {
            let mut cont = http::Response::new(());
            *cont.status_mut() = StatusCode::CONTINUE;
            let _ = respond.send_informational(cont);
        }
    }

    /// Read and discard the rest of the request body.
    ///
    /// # Errors
    /// As [`HttpSession::read_body_bytes`].
    pub async fn drain_request_body(&mut self) -> Result<()> {
        while self.read_body_bytes().await?.is_some() {}
        Ok(())
    }

    /// Write a response header. Informational ones (1xx but 101) go out at
    /// once; a final one is held back to go out with the first body piece
    /// (or as a single HEADERS frame with END_STREAM when there is none), and
    /// a held-back one may still be replaced.
    ///
    /// # Errors
    /// `InternalError` for `101` (no such thing in HTTP/2, RFC 9113 §8.6) or
    /// a second final header once one is on the wire; `H2Error` if the
    /// stream is gone.
    pub async fn write_response_header(&mut self, header: Box<ResponseHeader>) -> Result<()> {
        let status = header.status_code();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::explain(
                ErrorType::InternalError,
                "101 Switching Protocols cannot be sent on HTTP/2",
            )
            .into_in());
        }
        if status.is_informational() {
            if let Sender::Head(respond) = &mut self.sender {
                if status == StatusCode::CONTINUE {
                    self.continue_sent = true;
                }
                respond
                    .send_informational(response_to_h2(&header))
                    .map_err(|e| h2_err(e, "writing informational response"))?;
            }
            return Ok(());
        }
        if self.response_written.is_some() && !self.head_pending {
            return Err(Error::explain(
                ErrorType::InternalError,
                "a final response header was already written",
            )
            .into_in());
        }
        self.response_written = Some(header);
        self.head_pending = true;
        Ok(())
    }

    /// Send the held-back response header now, the stream staying open for a body.
    ///
    /// # Errors
    /// `H2Error` if the stream is gone.
    pub async fn flush_response_header(&mut self) -> Result<()> {
        self.send_head(false)
    }

    fn send_head(&mut self, end: bool) -> Result<()> {
        if !self.head_pending {
            return Ok(());
        }
        let Some(head) = self.response_written.as_deref() else {
            return Ok(());
        };
        let Sender::Head(respond) = &mut self.sender else {
            return Ok(());
        };
        let resp = response_to_h2(head);
        let stream = respond
            .send_response(resp, end)
            .map_err(|e| h2_err(e, "writing response header"))?;
        self.head_pending = false;
        self.sender = if end {
            Sender::Done
        } else {
            Sender::Body(stream)
        };
        Ok(())
    }

    /// Write a piece of the response body, waiting for the client's
    /// flow-control window (stream and connection, RFC 9113 §5.2) to take it.
    ///
    /// # Errors
    /// `InternalError` before a response header or after the body ended;
    /// `WriteTimedout` past the write timeout; `H2Error` when the client
    /// reset the stream or the connection failed.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.send_data(Bytes::copy_from_slice(data), false).await
    }

    /// Write a piece of the response body without copying it, ending the
    /// response with it when `end`: the piece's last DATA frame carries
    /// END_STREAM (RFC 9113 §8.1), so no empty DATA frame follows. An empty
    /// piece with `end` is [`HttpSession::finish_body`]; without, nothing.
    ///
    /// # Errors
    /// As [`HttpSession::write_body`].
    pub async fn write_body_bytes(&mut self, data: Bytes, end: bool) -> Result<()> {
        match (data.is_empty(), end) {
            (true, true) => self.finish_body().await,
            (true, false) => Ok(()),
            (false, _) => self.send_data(data, end).await,
        }
    }

    async fn send_data(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.response_written.is_none() {
            return Err(Error::explain(
                ErrorType::InternalError,
                "response body written before a header",
            )
            .into_in());
        }
        self.send_head(false)?;
        let Sender::Body(stream) = &mut self.sender else {
            return Err(
                Error::explain(ErrorType::InternalError, "response already ended").into_in(),
            );
        };
        let len = data.len();
        if data.is_empty() || (end && data.len() <= DIRECT_LAST_PIECE) {
            // An empty end, or the last piece of a small body, goes out
            // without reserving capacity first (two fewer trips through the
            // h2 connection's lock), and without a write timeout, as nothing
            // here waits: h2 holds the piece until the client's window takes
            // it, and a stream holds at most one such piece.
            stream
                .send_data(data, end)
                .map_err(|e| h2_err(e, "writing response body"))?;
        } else {
            bounded(
                self.write_timeout,
                ErrorType::WriteTimedout,
                "writing HTTP/2 response body",
                async {
                    send_with_capacity(stream, data, end)
                        .await
                        .map_err(|e| match e {
                            SendBodyError::H2(e) => h2_err(e, "writing response body"),
                            SendBodyError::Closed => Error::explain(
                                ErrorType::H2Error,
                                "stream closed while writing response body",
                            )
                            .into_down(),
                        })
                },
            )
            .await?;
        }
        self.bytes_sent += len;
        if end {
            self.sender = Sender::Done;
        }
        Ok(())
    }

    /// End the response: the held-back header alone with END_STREAM, or an
    /// empty DATA frame with END_STREAM after a body. Nothing if already ended.
    ///
    /// # Errors
    /// As [`HttpSession::write_body`].
    pub async fn finish_body(&mut self) -> Result<()> {
        match self.sender {
            Sender::Done => Ok(()),
            Sender::Head(_) if self.head_pending => self.send_head(true),
            Sender::Head(_) => Err(Error::explain(
                ErrorType::InternalError,
                "response finished before a header",
            )
            .into_in()),
            Sender::Body(_) => self.send_data(Bytes::new(), true).await,
        }
    }

    /// End the response with a trailer section (HEADERS with END_STREAM,
    /// RFC 9113 §8.1), after the header (sent now if still held back) and
    /// the body written so far.
    ///
    /// # Errors
    /// `InternalError` before a response header or after the response
    /// ended; `H2Error` if the stream is gone.
    pub fn write_trailers(&mut self, trailers: http::HeaderMap) -> Result<()> {
        self.send_head(false)?;
        let Sender::Body(stream) = &mut self.sender else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "response trailers written before a header or after the end",
            )
            .into_in());
        };
        stream
            .send_trailers(trailers)
            .map_err(|e| h2_err(e, "writing response trailers"))?;
        self.sender = Sender::Done;
        Ok(())
    }

    /// Reset the stream (`CANCEL`) unless its response has ended: the
    /// client learns that no more of it is coming.
    pub fn shutdown(&mut self) {
        match &mut self.sender {
            Sender::Head(r) => r.send_reset(h2::Reason::CANCEL),
            Sender::Body(s) => s.send_reset(h2::Reason::CANCEL),
            Sender::Done => {}
        }
        self.sender = Sender::Done;
    }

    /// Timeout of each body read; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Timeout of each body write; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// `GET /path, Host: example.org`, for logs.
    pub fn request_summary(&self) -> String {
        let host = self
            .request
            .field_values(&http::header::HOST)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("");
        format!(
            "{} {}, Host: {host}",
            self.request.method,
            String::from_utf8_lossy(self.request.raw_path())
        )
    }

    /// The final response header written, if any (sent or held back).
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.response_written.as_deref()
    }

    /// Whether the request body was read completely.
    pub fn is_body_done(&self) -> bool {
        self.body_done
    }

    /// Whether the request has no body (END_STREAM on its HEADERS, or
    /// `Content-Length: 0`).
    pub fn is_body_empty(&self) -> bool {
        self.body_empty
    }

    /// Request body bytes read so far.
    pub fn body_bytes_read(&self) -> usize {
        self.bytes_read
    }

    /// Response body bytes sent so far.
    pub fn body_bytes_sent(&self) -> usize {
        self.bytes_sent
    }

    /// Whether the response has ended.
    pub fn response_finished(&self) -> bool {
        matches!(self.sender, Sender::Done)
    }

    /// The facts of this stream's connection.
    pub fn conn_info(&self) -> &ConnInfo {
        &self.conn
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
