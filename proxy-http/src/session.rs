//! [`Session`]: one downstream request as the phases see it.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytes::Bytes;
use proxy_cache::HttpCache;
use proxy_core::error::Result;
use proxy_core::http::ResponseHeader;
use proxy_core::protocols::http::error_resp::gen_error_response;
use proxy_core::protocols::http::ServerSession;
use proxy_core::tls::SslDigest;

use crate::retry_buffer::RetryBuffer;

/// One downstream request and the per-request state the framework keeps for it.
///
/// Derefs to the protocol session ([`ServerSession`]), so `session.req_header()`,
/// `session.client_addr()`, `session.set_keepalive(..)` and the other
/// protocol-level calls work directly.
pub struct Session {
    /// The downstream protocol session.
    pub downstream_session: Box<ServerSession>,
    /// The request body read so far on its way upstream, kept (up to
    /// [`RetryBuffer::CAPACITY`] bytes) so a retry can send it again.
    pub(crate) retry_buffer: RetryBuffer,
    /// The TLS facts of the last upstream connection, set once connected.
    pub(crate) upstream_ssl_digest: Option<Arc<SslDigest>>,
    /// The cache state of this request: off until a phase calls
    /// `session.cache.enable(..)` (see `ProxyHttp::request_cache_filter`).
    pub cache: HttpCache,
    /// This request is the framework's own background refresh of a stale
    /// entry (stale-while-revalidate): it revalidates instead of serving.
    pub(crate) background_refresh: bool,
}

impl Session {
    /// Wrap a downstream session whose request header has been read (the
    /// session itself or already boxed: it is kept boxed).
    pub fn new(downstream_session: impl Into<Box<ServerSession>>) -> Self {
        Session {
            downstream_session: downstream_session.into(),
            retry_buffer: RetryBuffer::default(),
            upstream_ssl_digest: None,
            cache: HttpCache::new(),
            background_refresh: false,
        }
    }

    /// The TLS facts of the upstream connection this request went to
    /// (server certificate, version, cipher, ALPN, resumed or not), from
    /// `connected_to_upstream` on; `None` before, or over plaintext. The
    /// downstream side's facts are [`ServerSession::ssl_digest`].
    pub fn upstream_ssl_digest(&self) -> Option<&Arc<SslDigest>> {
        self.upstream_ssl_digest.as_ref()
    }

    /// Read the next piece of the request body; `Ok(None)` at its end.
    ///
    /// What a phase reads here is consumed: it is not sent upstream.
    ///
    /// # Errors
    /// Downstream read errors and timeouts, and framing errors (e.g. an invalid
    /// chunk size, RFC 9112 §7.1) as `H1Error`.
    ///
    /// # Cancel safety
    /// Not cancel safe for a chunked body (a dropped read may lose its place
    /// in the framing): after dropping it, answer and close the connection.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        self.downstream_session.read_request_body().await
    }

    /// Answer with a bodyless error response of status `code` (e.g. 401, 502).
    ///
    /// Does nothing if a final response header was already sent: the status
    /// can no longer change, and the connection will be closed instead.
    ///
    /// # Errors
    /// Downstream write errors.
    ///
    /// # Cancel safety
    /// A dropped call may leave a partial response on the wire; the
    /// connection is then not reused.
    pub async fn respond_error(&mut self, code: u16) -> Result<()> {
        if self.response_written().is_some() {
            return Ok(());
        }
        let resp = gen_error_response(code);
        self.write_response_header(Box::new(resp), true).await
    }

    /// Answer with an error response of status `code` and the given body.
    ///
    /// # Errors
    /// Downstream write errors, or an invalid status code.
    pub async fn respond_error_with_body(&mut self, code: u16, body: Bytes) -> Result<()> {
        if self.response_written().is_some() {
            return Ok(());
        }
        let mut resp = gen_error_response(code);
        resp.set_content_length(body.len())?;
        self.write_response_header(Box::new(resp), body.is_empty())
            .await?;
        if !body.is_empty() {
            self.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }

    /// Send a response header downstream; `end_of_stream` ends the response
    /// with no body. The header is on the wire when this returns.
    ///
    /// # Errors
    /// Downstream write errors.
    pub async fn write_response_header(
        &mut self,
        resp: Box<ResponseHeader>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.downstream_session.write_response_header(resp).await?;
        if end_of_stream {
            self.downstream_session.finish_body().await
        } else {
            self.downstream_session.flush_response_header().await
        }
    }

    /// Send a piece of the response body downstream; `end_of_stream` finishes
    /// the body (the last chunk of a chunked body, RFC 9112 §7.1).
    ///
    /// # Errors
    /// Downstream write errors.
    pub async fn write_response_body(
        &mut self,
        data: Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        // the last piece and the end go together (on HTTP/2, one DATA
        // frame with END_STREAM instead of an empty one after it)
        self.downstream_session
            .write_response_body_bytes(data.unwrap_or_default(), end_of_stream)
            .await
    }
}

impl Deref for Session {
    type Target = ServerSession;
    fn deref(&self) -> &Self::Target {
        &self.downstream_session
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.downstream_session
    }
}
