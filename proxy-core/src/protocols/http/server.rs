//! The protocol-agnostic downstream session the proxy works with.

use std::time::Duration;

use bytes::Bytes;

use super::v1::idle_timer::IdleTimer;
use super::v1::server::HttpSession as SessionV1;
use super::v2::server::HttpSession as SessionV2;
use crate::error::{Error, ErrorType, Result};
use crate::http::{RequestHeader, ResponseHeader};
use crate::protocols::{SocketAddr, Stream};

/// A downstream HTTP session, one variant per protocol.
/// Every method delegates to the variant's session; see
/// [`v1::server::HttpSession`](super::v1::server::HttpSession) for details.
#[derive(Debug)]
pub enum Session {
    /// HTTP/1.x.
    H1(SessionV1),
    /// One HTTP/2 stream.
    H2(SessionV2),
}

impl Session {
    /// The session for the next request on the same connection, once this
    /// response is finished, the request body fully read and keep-alive
    /// holds; `None` means the connection is closed. Bytes of a pipelined
    /// next request that were already read are kept.
    pub async fn reuse(self) -> Option<Session> {
        match self {
            Session::H1(s) => s.reuse().await.map(Session::H1),
            Session::H2(_) => None,
        }
    }

    /// [`Session::reuse`] for a boxed session, without moving it out of its
    /// box: the same box back, ready for the next request, or `None`.
    pub async fn reuse_boxed(mut self: Box<Self>) -> Option<Box<Self>> {
        match &mut *self {
            Session::H1(s) => {
                if s.prepare_reuse().await {
                    Some(self)
                } else {
                    None
                }
            }
            Session::H2(_) => None,
        }
    }

    /// An HTTP/1.x session over an accepted stream.
    pub fn new_http1(stream: Stream) -> Self {
        Session::H1(SessionV1::new(stream))
    }

    /// The HTTP/1.x connection's idle-wait timer (none for an HTTP/2 stream).
    pub(crate) fn idle_timer(&mut self) -> Option<&mut IdleTimer> {
        match self {
            Session::H1(s) => Some(s.idle_timer()),
            Session::H2(_) => None,
        }
    }

    /// Wait, holding no buffer, for the next request's first byte; `false`
    /// when the wait timed out and the connection should be closed.
    ///
    /// # Errors
    /// As `v1::server::HttpSession::wait_for_request`.
    pub async fn wait_for_request(&mut self) -> Result<bool> {
        match self {
            Session::H1(s) => s.wait_for_request().await,
            Session::H2(_) => Ok(true),
        }
    }

    /// Read the request head; `Ok(None)` if the client closed (or went idle
    /// past the keep-alive timeout) first.
    ///
    /// # Errors
    /// As `v1::server::HttpSession::read_request`.
    pub async fn read_request(&mut self) -> Result<Option<usize>> {
        match self {
            Session::H1(s) => s.read_request().await,
            Session::H2(_) => Ok(Some(0)),
        }
    }

    /// The request header.
    pub fn req_header(&self) -> &RequestHeader {
        match self {
            Session::H1(s) => s.req_header(),
            Session::H2(s) => s.req_header(),
        }
    }

    /// The request header, mutable.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        match self {
            Session::H1(s) => s.req_header_mut(),
            Session::H2(s) => s.req_header_mut(),
        }
    }

    /// The next piece of request body, `Ok(None)` at its end.
    ///
    /// # Errors
    /// As `v1::server::HttpSession::read_body_bytes`.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Session::H1(s) => s.read_body_bytes().await,
            Session::H2(s) => s.read_body_bytes().await,
        }
    }

    /// Read and discard the rest of the request body.
    ///
    /// # Errors
    /// As `read_request_body`.
    pub async fn drain_request_body(&mut self) -> Result<()> {
        match self {
            Session::H1(s) => s.drain_request_body().await,
            Session::H2(s) => s.drain_request_body().await,
        }
    }

    /// Write a response header (1xx, 101 or final).
    ///
    /// # Errors
    /// As `v1::server::HttpSession::write_response_header`.
    pub async fn write_response_header(&mut self, header: Box<ResponseHeader>) -> Result<()> {
        match self {
            Session::H1(s) => s.write_response_header(header).await,
            Session::H2(s) => s.write_response_header(header).await,
        }
    }

    /// Write a piece of the response body.
    ///
    /// # Errors
    /// As `v1::server::HttpSession::write_body`.
    pub async fn write_response_body(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Session::H1(s) => s.write_body(data).await,
            Session::H2(s) => s.write_body(data).await,
        }
    }

    /// Whether [`Session::write_response_body_file`] can send the body now:
    /// HTTP/1.x on a plain socket, the response framed by Content-Length or
    /// by closing. Always `false` for HTTP/2 (its DATA frames are built in
    /// user space).
    pub fn can_write_body_file(&self) -> bool {
        match self {
            Session::H1(s) => s.can_write_body_file(),
            Session::H2(_) => false,
        }
    }

    /// Send `len` bytes of `file` from byte `offset` as response body with
    /// sendfile(2) (zero-copy). Check [`Session::can_write_body_file`] first.
    ///
    /// # Errors
    /// As `v1::server::HttpSession::write_body_file`; `H2Error` for HTTP/2.
    pub async fn write_response_body_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<()> {
        match self {
            Session::H1(s) => s.write_body_file(file, offset, len).await,
            Session::H2(_) => Error::e_explain(
                ErrorType::H2Error,
                "an HTTP/2 body cannot be sent from a file",
            ),
        }
    }

    /// Write a piece of the response body, then end the body when `end`.
    /// On HTTP/2 the piece is sent without a copy, and the last one carries
    /// END_STREAM itself (RFC 9113 §8.1) rather than being followed by an
    /// empty DATA frame; on HTTP/1.x this is `write_response_body` then
    /// `finish_body`. An empty piece only ends the body (when `end`).
    ///
    /// # Errors
    /// As `write_response_body` and `finish_body`.
    pub async fn write_response_body_bytes(&mut self, data: Bytes, end: bool) -> Result<()> {
        match self {
            Session::H1(s) => {
                if !data.is_empty() {
                    s.write_body(&data).await?;
                }
                if end {
                    s.finish_body().await?;
                }
                Ok(())
            }
            Session::H2(s) => s.write_body_bytes(data, end).await,
        }
    }

    /// End the response body.
    ///
    /// # Errors
    /// As `v1::server::HttpSession::finish_body`.
    pub async fn finish_body(&mut self) -> Result<()> {
        match self {
            Session::H1(s) => s.finish_body().await,
            Session::H2(s) => s.finish_body().await,
        }
    }

    /// End the response with trailer fields: HTTP/2 sends them as a
    /// trailing HEADERS frame (RFC 9113 §8.1); HTTP/1.1 in the trailer
    /// section of a chunked body (RFC 9112 §7.1.2). A body that is not
    /// chunked cannot carry them: they are dropped and the body is ended.
    ///
    /// # Errors
    /// As [`Session::finish_body`].
    pub async fn write_response_trailers(&mut self, trailers: http::HeaderMap) -> Result<()> {
        match self {
            Session::H1(s) => s.finish_body_with_trailers(&trailers).await,
            Session::H2(s) => s.write_trailers(trailers),
        }
    }

    /// Keep-alive in seconds (`None` off, `Some(0)` forever).
    pub fn set_keepalive(&mut self, seconds: Option<u64>) {
        match self {
            Session::H1(s) => s.set_keepalive(seconds),
            Session::H2(_) => {}
        }
    }

    /// The keep-alive setting.
    pub fn get_keepalive(&self) -> Option<u64> {
        match self {
            Session::H1(s) => s.get_keepalive(),
            Session::H2(_) => None,
        }
    }

    /// Timeout of each body read; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            Session::H1(s) => s.set_read_timeout(timeout),
            Session::H2(s) => s.set_read_timeout(timeout),
        }
    }

    /// Timeout of each write; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            Session::H1(s) => s.set_write_timeout(timeout),
            Session::H2(s) => s.set_write_timeout(timeout),
        }
    }

    /// `GET /path, Host: example.org`, for logs.
    pub fn request_summary(&self) -> String {
        match self {
            Session::H1(s) => s.request_summary(),
            Session::H2(s) => s.request_summary(),
        }
    }

    /// The final response header written, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        match self {
            Session::H1(s) => s.response_written(),
            Session::H2(s) => s.response_written(),
        }
    }

    /// Whether the request asks to switch protocols.
    pub fn is_upgrade_req(&self) -> bool {
        match self {
            Session::H1(s) => s.is_upgrade_req(),
            Session::H2(_) => false,
        }
    }

    /// Whether a 101 was sent.
    pub fn was_upgraded(&self) -> bool {
        match self {
            Session::H1(s) => s.was_upgraded(),
            Session::H2(_) => false,
        }
    }

    /// Whether the request body was read completely.
    pub fn is_body_done(&self) -> bool {
        match self {
            Session::H1(s) => s.is_body_done(),
            Session::H2(s) => s.is_body_done(),
        }
    }

    /// Whether the request has no body.
    pub fn is_body_empty(&self) -> bool {
        match self {
            Session::H1(s) => s.is_body_empty(),
            Session::H2(s) => s.is_body_empty(),
        }
    }

    /// Request body bytes read so far.
    pub fn body_bytes_read(&self) -> usize {
        match self {
            Session::H1(s) => s.body_bytes_read(),
            Session::H2(s) => s.body_bytes_read(),
        }
    }

    /// Response body bytes sent so far.
    pub fn body_bytes_sent(&self) -> usize {
        match self {
            Session::H1(s) => s.body_bytes_sent(),
            Session::H2(s) => s.body_bytes_sent(),
        }
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        match self {
            Session::H1(s) => s.client_addr(),
            Session::H2(s) => s.conn_info().client_addr.as_ref(),
        }
    }

    /// Our address on this connection.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        match self {
            Session::H1(s) => s.server_addr(),
            Session::H2(s) => s.conn_info().server_addr.as_ref(),
        }
    }

    /// The TLS facts of this connection (version, cipher, ALPN, SNI, and the
    /// verified client certificate under mTLS); `None` over plaintext.
    pub fn ssl_digest(&self) -> Option<std::sync::Arc<crate::tls::SslDigest>> {
        match self {
            Session::H1(s) => s.stream().ssl_digest(),
            Session::H2(s) => s.conn_info().ssl_digest.clone(),
        }
    }

    /// Whether the connection will be kept for another request.
    pub fn will_keepalive(&self) -> bool {
        match self {
            Session::H1(s) => s.will_keepalive(),
            Session::H2(_) => false,
        }
    }

    /// Send a response head still held back for the first body piece.
    ///
    /// # Errors
    /// As `v1::server::HttpSession::flush_response_header`.
    pub async fn flush_response_header(&mut self) -> Result<()> {
        match self {
            Session::H1(s) => s.flush_response_header().await,
            Session::H2(s) => s.flush_response_header().await,
        }
    }

    /// Answer a request whose head could not be read; the connection must
    /// then be closed (see `v1::server::HttpSession::write_rejection`).
    ///
    /// # Errors
    /// Downstream write errors.
    pub async fn write_rejection(&mut self, resp: ResponseHeader) -> Result<()> {
        match self {
            Session::H1(s) => s.write_rejection(resp).await,
            Session::H2(s) => {
                s.write_response_header(Box::new(resp)).await?;
                s.finish_body().await
            }
        }
    }

    /// Bound the time from a request head's first byte to its end (and, on
    /// a fresh connection, the wait for that first byte).
    pub fn set_header_read_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            Session::H1(s) => s.set_header_read_timeout(timeout),
            Session::H2(_) => {}
        }
    }

    /// Close the connection without losing the response to a reset when the
    /// client may still be sending (see `v1::server::HttpSession::close_lingering`).
    pub async fn close_lingering(self) {
        match self {
            Session::H1(s) => s.close_lingering().await,
            Session::H2(_) => {}
        }
    }

    /// Close our side of the connection.
    pub async fn shutdown(&mut self) {
        match self {
            Session::H1(s) => s.shutdown().await,
            Session::H2(s) => s.shutdown(),
        }
    }

    /// The HTTP/1 session, if this is one.
    pub fn as_http1(&self) -> Option<&SessionV1> {
        match self {
            Session::H1(s) => Some(s),
            Session::H2(_) => None,
        }
    }

    /// The HTTP/2 stream session, if this is one.
    pub fn as_http2(&self) -> Option<&SessionV2> {
        match self {
            Session::H2(s) => Some(s),
            Session::H1(_) => None,
        }
    }

    /// The HTTP/1 session, by value, if this is one (e.g. for `reuse`).
    pub fn into_http1(self) -> Option<SessionV1> {
        match self {
            Session::H1(s) => Some(s),
            Session::H2(_) => None,
        }
    }
}

impl From<SessionV2> for Session {
    fn from(s: SessionV2) -> Self {
        Session::H2(s)
    }
}

impl From<SessionV1> for Session {
    fn from(s: SessionV1) -> Self {
        Session::H1(s)
    }
}
