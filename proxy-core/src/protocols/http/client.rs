//! The protocol-agnostic upstream session the proxy works with.

use std::time::Duration;

use bytes::Bytes;

use super::v1::client::HttpSession as HttpSessionV1;
use super::v2::client::HttpSession as HttpSessionV2;
use super::ServerSession;
use crate::error::Result;
use crate::http::{RequestHeader, ResponseHeader};
use crate::protocols::Stream;

/// An upstream HTTP session, one variant per protocol. Every method
/// delegates; see [`v1::client::HttpSession`](super::v1::client::HttpSession)
/// and [`v2::client::HttpSession`](super::v2::client::HttpSession) for details.
/// The proxy's HTTP/2 exchange uses the HTTP/2 session directly
/// ([`HttpSession::as_http2_mut`]) for what only it has (trailers).
#[derive(Debug)]
pub enum HttpSession {
    /// HTTP/1.x.
    H1(HttpSessionV1),
    /// One stream of a (possibly shared) HTTP/2 connection.
    H2(HttpSessionV2),
}

impl HttpSession {
    /// The connection, for the pool, if the response was read completely,
    /// keep-alive holds and no unexpected bytes arrived; `None` closes it.
    /// Always `None` for HTTP/2: dropping the stream frees its slot, and the
    /// connection stays with the HTTP/2 connector.
    pub async fn reuse(self) -> Option<Stream> {
        match self {
            HttpSession::H1(s) => s.reuse().await,
            HttpSession::H2(_) => None,
        }
    }

    /// Write the request head; returns its size in bytes.
    ///
    /// # Errors
    /// As `v1::client::HttpSession::write_request_header`.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<usize> {
        match self {
            HttpSession::H1(s) => s.write_request_header(req).await,
            HttpSession::H2(s) => s.write_request_header(req, false).await.map(|()| 0),
        }
    }

    /// Write a piece of the request body.
    ///
    /// # Errors
    /// As `v1::client::HttpSession::write_body`.
    pub async fn write_request_body(&mut self, data: &[u8]) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.write_body(data).await,
            HttpSession::H2(s) => {
                s.write_request_body(Bytes::copy_from_slice(data), false)
                    .await
            }
        }
    }

    /// End the request body.
    ///
    /// # Errors
    /// As `v1::client::HttpSession::finish_body`.
    pub async fn finish_request_body(&mut self) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.finish_body().await,
            HttpSession::H2(s) => s.finish_request_body().await,
        }
    }

    /// Read the next response head (1xx ones included).
    ///
    /// # Errors
    /// As `v1::client::HttpSession::read_response_header`.
    pub async fn read_response_header(&mut self) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.read_response_header().await,
            HttpSession::H2(s) => s.read_response_header().await,
        }
    }

    /// As [`HttpSession::read_response_header`], for a request made on
    /// behalf of `downstream`: an HTTP/1.1 upstream is waited on with the
    /// timer `downstream`'s HTTP/1.1 connection keeps for its idle waits
    /// (free while its request is in flight, moved lazily), so a response
    /// does not register and cancel a timer of its own in the runtime.
    ///
    /// # Errors
    /// As [`HttpSession::read_response_header`].
    pub async fn read_response_header_for(&mut self, downstream: &mut ServerSession) -> Result<()> {
        match (self, downstream.idle_timer()) {
            (HttpSession::H1(s), Some(timer)) => s.read_response_header_with(timer).await,
            (s, _) => s.read_response_header().await,
        }
    }

    /// The TLS facts of the upstream connection (version, cipher, ALPN, SNI
    /// sent, the server's certificate, whether the session was resumed);
    /// `None` over plaintext.
    pub fn ssl_digest(&self) -> Option<std::sync::Arc<crate::tls::SslDigest>> {
        match self {
            HttpSession::H1(s) => s.stream().ssl_digest(),
            HttpSession::H2(s) => s.conn().ssl_digest(),
        }
    }

    /// The last response header read.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        match self {
            HttpSession::H1(s) => s.resp_header(),
            HttpSession::H2(s) => s.response_header(),
        }
    }

    /// Take the last response header read out of the session, to forward it
    /// without a copy; [`HttpSession::response_header`] is `None` afterwards.
    pub fn take_response_header(&mut self) -> Option<Box<ResponseHeader>> {
        match self {
            HttpSession::H1(s) => s.take_resp_header(),
            HttpSession::H2(s) => s.take_response_header(),
        }
    }

    /// The next piece of response body, `Ok(None)` at its end.
    ///
    /// # Errors
    /// As `v1::client::HttpSession::read_body_bytes`.
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            HttpSession::H1(s) => s.read_body_bytes().await,
            HttpSession::H2(s) => s.read_response_body().await,
        }
    }

    /// Whether the response body was read completely.
    pub fn response_done(&self) -> bool {
        match self {
            HttpSession::H1(s) => s.is_body_done(),
            HttpSession::H2(s) => s.response_body_done(),
        }
    }

    /// Timeout of each read; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            HttpSession::H1(s) => s.set_read_timeout(timeout),
            HttpSession::H2(s) => s.set_read_timeout(timeout),
        }
    }

    /// Timeout of each write; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            HttpSession::H1(s) => s.set_write_timeout(timeout),
            HttpSession::H2(s) => s.set_write_timeout(timeout),
        }
    }

    /// Whether a 101 was received.
    pub fn was_upgraded(&self) -> bool {
        match self {
            HttpSession::H1(s) => s.was_upgraded(),
            HttpSession::H2(_) => false,
        }
    }

    /// Close our side of the connection.
    pub async fn shutdown(&mut self) {
        match self {
            HttpSession::H1(s) => s.shutdown().await,
            HttpSession::H2(s) => s.shutdown(),
        }
    }

    /// The HTTP/1 session, if this is one.
    pub fn as_http1(&self) -> Option<&HttpSessionV1> {
        match self {
            HttpSession::H1(s) => Some(s),
            HttpSession::H2(_) => None,
        }
    }

    /// The HTTP/2 session, if this is one.
    pub fn as_http2(&self) -> Option<&HttpSessionV2> {
        match self {
            HttpSession::H2(s) => Some(s),
            HttpSession::H1(_) => None,
        }
    }

    /// The HTTP/2 session, mutable, if this is one.
    pub fn as_http2_mut(&mut self) -> Option<&mut HttpSessionV2> {
        match self {
            HttpSession::H2(s) => Some(s),
            HttpSession::H1(_) => None,
        }
    }

    /// The HTTP/1 session, by value (e.g. for `reuse`).
    pub fn into_http1(self) -> Option<HttpSessionV1> {
        match self {
            HttpSession::H1(s) => Some(s),
            HttpSession::H2(_) => None,
        }
    }
}

impl From<HttpSessionV2> for HttpSession {
    fn from(s: HttpSessionV2) -> Self {
        HttpSession::H2(s)
    }
}

impl From<HttpSessionV1> for HttpSession {
    fn from(s: HttpSessionV1) -> Self {
        HttpSession::H1(s)
    }
}
