//! One request/response exchange with an HTTP/2 upstream, for a client on
//! either protocol (h1 → h2, h2 → h2).
//!
//! Stages, in the same order and at the same points as the HTTP/1 exchange
//! ([`crate::proxy_h1`]): `upstream_request_filter`, then the request
//! header (translated by `request_to_h2`: `Host` → `:authority`,
//! connection-specific fields dropped, `TE: trailers` kept), the request
//! body (the retry buffer first, each piece through `request_body_filter`),
//! the response header through `upstream_response_filter` and
//! `response_filter`, the body through `upstream_response_body_filter` and
//! `response_body_filter`, and last the trailers through
//! `upstream_response_trailer_filter` and `response_trailer_filter`, which
//! go to the client as HTTP/2 trailers or as the trailer section of a
//! chunked HTTP/1.1 body.
//!
//! The request body is sent whole before the response is read, as with an
//! HTTP/1 upstream: unary and server-streaming gRPC work; a bidirectional
//! stream that waits for a reply before sending more does not.

use bytes::Bytes;
use proxy_core::error::{Error, ErrorType, Result};
use proxy_core::protocols::http::hop_by_hop;
use proxy_core::protocols::http::v2::client::HttpSession as H2Client;

use crate::proxy::HttpProxy;
use crate::proxy_cache::Admission;
use crate::proxy_h1::after_response;
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// Exchange the request in `session` with the HTTP/2 upstream stream `client`.
    pub(crate) async fn proxy_to_h2(
        &self,
        session: &mut Session,
        client: &mut H2Client,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        let mut req = Box::new(session.req_header().clone());
        // The proxy answers `Expect: 100-continue` itself when it reads the body.
        req.remove_header_named(&http::header::EXPECT);
        // RFC 9113 §8.2.2: no message framing of HTTP/1.1 on an HTTP/2 hop
        req.remove_header_named(&http::header::TRANSFER_ENCODING);
        req.set_version(http::Version::HTTP_2);
        self.cache_upstream_request(session, &mut req);
        self.inner
            .upstream_request_filter(session, &mut req, ctx)
            .await?;
        let no_body = session.is_body_empty() && session.retry_buffer.chunks().is_empty();
        client.write_request_header(req, no_body).await?;
        if !no_body {
            self.send_request_body_h2(session, client, ctx).await?;
        }
        client.read_response_header().await?;

        let Some(mut resp) = client.take_response_header() else {
            return Error::e_explain(ErrorType::InternalError, "no response header after read");
        };
        self.inner
            .upstream_response_filter(session, &mut resp, ctx)
            .await?;
        if let Admission::ServeStored = self.cache_admit_response(session, &mut resp, ctx).await? {
            return Box::pin(self.serve_from_cache(session, ctx)).await;
        }
        self.add_cache_status(session, &mut resp);
        self.inner.response_filter(session, &mut resp, ctx).await?;
        hop_by_hop::strip_response(&mut resp, false);
        let headers_only = client.response_finished();
        if headers_only {
            self.cache_body(session, None, true).await;
        }
        session
            .downstream_session
            .write_response_header(resp)
            .await
            .map_err(|e| e.into_down())?;
        if headers_only {
            // e.g. a trailers-only gRPC answer: HEADERS with END_STREAM
            return session
                .downstream_session
                .finish_body()
                .await
                .map_err(|e| e.into_down());
        }
        session
            .downstream_session
            .flush_response_header()
            .await
            .map_err(|e| e.into_down())?;
        self.send_response_body_h2(session, client, ctx).await?;
        self.send_response_trailers_h2(session, client, ctx).await
    }

    /// Send the request body: the pieces kept from an earlier attempt
    /// first, then the rest as it arrives from the client; the last piece
    /// carries END_STREAM.
    async fn send_request_body_h2(
        &self,
        session: &mut Session,
        client: &mut H2Client,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        let replay: Vec<Bytes> = session.retry_buffer.chunks().to_vec();
        let complete = session.retry_buffer.is_complete() || session.is_body_empty();
        let last = replay.len().saturating_sub(1);
        for (i, piece) in replay.into_iter().enumerate() {
            let end = complete && i == last;
            self.forward_request_piece_h2(session, client, Some(piece), end, ctx)
                .await?;
        }
        if complete {
            return client.finish_request_body().await;
        }
        loop {
            let piece = session
                .downstream_session
                .read_request_body()
                .await
                .map_err(|e| e.into_down())?;
            let end = piece.is_none() || session.is_body_done();
            if let Some(p) = &piece {
                session.retry_buffer.record(p);
            }
            if end {
                session.retry_buffer.set_complete();
            }
            self.forward_request_piece_h2(session, client, piece, end, ctx)
                .await?;
            if end {
                return client.finish_request_body().await;
            }
        }
    }

    async fn forward_request_piece_h2(
        &self,
        session: &mut Session,
        client: &mut H2Client,
        mut body: Option<Bytes>,
        end: bool,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        self.inner
            .request_body_filter(session, &mut body, end, ctx)
            .await?;
        match body {
            Some(b) if !b.is_empty() => client.write_request_body(b, end).await,
            _ => Ok(()),
        }
    }

    /// Stream the response body to the client through the body filters,
    /// sleeping when a filter asks to throttle. The response is not ended
    /// here: trailers may follow.
    async fn send_response_body_h2(
        &self,
        session: &mut Session,
        client: &mut H2Client,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        loop {
            let mut body = client.read_response_body().await.map_err(after_response)?;
            let end = body.is_none() || client.response_body_done();
            let delay_up = self
                .inner
                .upstream_response_body_filter(session, &mut body, end, ctx)?;
            self.cache_body(session, body.as_ref(), end).await;
            let delay_down = self
                .inner
                .response_body_filter(session, &mut body, end, ctx)?;
            session
                .write_response_body(body, false)
                .await
                .map_err(|e| e.into_down())?;
            if end {
                return Ok(());
            }
            if let Some(d) = delay_up.max(delay_down) {
                tokio::time::sleep(d).await;
            }
        }
    }

    /// Read the upstream's trailers, run the two trailer filters, and end
    /// the response: with the trailers, with the bytes
    /// `response_trailer_filter` asked to send instead, or plainly when
    /// there are none.
    async fn send_response_trailers_h2(
        &self,
        session: &mut Session,
        client: &mut H2Client,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        let trailers = client
            .read_response_trailers()
            .await
            .map_err(after_response)?;
        let Some(mut trailers) = trailers else {
            return session
                .downstream_session
                .finish_body()
                .await
                .map_err(|e| e.into_down());
        };
        self.inner
            .upstream_response_trailer_filter(session, &mut trailers, ctx)?;
        let instead = self
            .inner
            .response_trailer_filter(session, &mut trailers, ctx)
            .await?;
        if let Some(bytes) = instead {
            return session
                .write_response_body(Some(bytes), true)
                .await
                .map_err(|e| e.into_down());
        }
        session
            .downstream_session
            .write_response_trailers(*trailers)
            .await
            .map_err(|e| e.into_down())
    }
}
