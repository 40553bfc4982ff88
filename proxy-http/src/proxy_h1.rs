//! One request/response exchange with an HTTP/1.1 upstream.
//!
//! Stages, in order: send the request header (after `upstream_request_filter`),
//! send the request body (replaying the retry buffer first, each piece through
//! `request_body_filter`), read the response header (forwarding informational
//! responses), run `upstream_response_filter` and `response_filter`, then stream
//! the body through the two body filters. A `101 Switching Protocols` answer to
//! an `Upgrade` request turns the exchange into a two-way byte pipe.

use bytes::Bytes;
use futures_util::FutureExt;
use proxy_core::error::{Error, ErrorType, Result, RetryType};
use proxy_core::http::FieldLines;
use proxy_core::protocols::http::client::HttpSession as ClientSession;
use proxy_core::protocols::http::hop_by_hop;
use proxy_core::protocols::http::v1::common;

use crate::proxy::HttpProxy;
use crate::proxy_cache::Admission;
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;

/// Classify an error from sending the request upstream. A connection that
/// fails this way (reset, closed) may be a pooled one the upstream closed
/// while it sat idle: the request may then be resent on a fresh connection
/// (`ReusedOnly`, decided by `error_while_proxy`). A write timeout is the
/// upstream's fault but not retried; a framing error (e.g. a body shorter
/// than the Content-Length a phase left in place) is ours: internal, 500.
fn send_failed(mut e: Box<Error>) -> Box<Error> {
    match e.etype() {
        ErrorType::WriteError | ErrorType::ConnectionClosed | ErrorType::ReadError => {
            e.as_up();
            e.set_retry_type(RetryType::ReusedOnly);
        }
        ErrorType::WriteTimedout => e.as_up(),
        _ => e.as_in(),
    }
    e
}

/// An error after a response byte came back: never retried (the upstream
/// has acted on the request).
pub(crate) fn after_response(mut e: Box<Error>) -> Box<Error> {
    e.as_up();
    e.set_retry(false);
    e
}

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// Exchange the request in `session` with the upstream behind `client`.
    pub(crate) async fn proxy_h1(
        &self,
        session: &mut Session,
        client: &mut ClientSession,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        let upgrade = session.is_upgrade_req();
        let mut req = Box::new(session.req_header().clone());
        hop_by_hop::strip_request(&mut req, upgrade);
        // RFC 9110 §6.2: a proxy sends its own HTTP version
        req.set_version(http::Version::HTTP_11);
        // The proxy answers `Expect: 100-continue` itself when it reads the body.
        req.remove_header_named(&http::header::EXPECT);
        if !session.is_body_empty() && !req.has_field(&http::header::CONTENT_LENGTH) {
            // Transfer-Encoding is hop-by-hop (RFC 9112 §6.1): a body of unknown
            // length is re-chunked on this hop.
            req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        self.cache_upstream_request(session, &mut req);
        self.inner
            .upstream_request_filter(session, &mut req, ctx)
            .await?;
        client
            .write_request_header(req)
            .await
            .map_err(send_failed)?;

        if let Err(e) = self.send_request_body(session, client, ctx).await {
            // The upstream may have answered early (e.g. 413) and stopped reading:
            // forward its answer if there is one, else fail with the write error.
            if e.esource() != &proxy_core::ErrorSource::Upstream {
                return Err(e);
            }
            if client.read_response_header().await.is_err() {
                return Err(e);
            }
            session.set_keepalive(None);
        } else {
            // the client session marks "closed before any byte" as ReusedOnly
            client
                .read_response_header_for(&mut session.downstream_session)
                .await
                .map_err(|e| e.into_up())?;
        }

        // Informational responses: 100 was answered by the proxy itself;
        // others (e.g. 103 Early Hints, RFC 8297) are forwarded as they come.
        let mut resp = loop {
            let Some(head) = client.take_response_header() else {
                return Error::e_explain(ErrorType::InternalError, "no response header after read");
            };
            let status = head.status_code().as_u16();
            if !(100..200).contains(&status) || status == 101 {
                break head;
            }
            if status != 100 {
                let mut info = head;
                hop_by_hop::strip_response(&mut info, false);
                session
                    .downstream_session
                    .write_response_header(info)
                    .await
                    .map_err(|e| e.into_down())?;
            }
            client
                .read_response_header()
                .await
                .map_err(after_response)?;
        };

        let status = resp.status_code().as_u16();
        if status == 101 && !client.was_upgraded() {
            return Err(after_response(Error::explain(
                ErrorType::InvalidHTTPHeader,
                "upstream answered 101 to a request that did not ask to upgrade",
            )));
        }
        if resp.has_field(&http::header::TRANSFER_ENCODING) {
            if !common::is_only_chunked(&*resp) {
                // a coding this proxy cannot pass on: the body cannot be forwarded as is
                return Err(after_response(Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "upstream response has a transfer coding other than chunked",
                )));
            }
            // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which a
            // proxy must remove
            resp.remove_header(&http::header::CONTENT_LENGTH);
        }
        let switching = status == 101;
        self.inner
            .upstream_response_filter(session, &mut resp, ctx)
            .await?;
        if !switching {
            if let Admission::ServeStored =
                self.cache_admit_response(session, &mut resp, ctx).await?
            {
                return Box::pin(self.serve_from_cache(session, ctx)).await;
            }
            self.add_cache_status(session, &mut resp);
        }
        self.inner.response_filter(session, &mut resp, ctx).await?;
        hop_by_hop::strip_response(&mut resp, switching);
        let end = client.response_done() && !switching;
        if end {
            self.cache_body(session, None, true).await;
        }
        // held back to go out with the first body piece (see send_response_body)
        session
            .downstream_session
            .write_response_header(resp)
            .await
            .map_err(|e| e.into_down())?;
        if end {
            session
                .downstream_session
                .finish_body()
                .await
                .map_err(|e| e.into_down())?;
        }

        if switching {
            return Box::pin(self.pipe_upgraded(session, client)).await;
        }
        if !end {
            self.send_response_body(session, client, ctx).await?;
        }
        Ok(())
    }

    /// Send the request body upstream: the pieces kept from an earlier attempt
    /// first, then the rest as it arrives from the client.
    async fn send_request_body(
        &self,
        session: &mut Session,
        client: &mut ClientSession,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        if session.is_body_empty() {
            return client.finish_request_body().await.map_err(send_failed);
        }
        let replay: Vec<Bytes> = session.retry_buffer.chunks().to_vec();
        let complete = session.retry_buffer.is_complete();
        let last = replay.len().saturating_sub(1);
        for (i, piece) in replay.into_iter().enumerate() {
            let end = complete && i == last;
            self.forward_request_piece(session, client, Some(piece), end, ctx)
                .await?;
        }
        if complete {
            return client.finish_request_body().await.map_err(send_failed);
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
            self.forward_request_piece(session, client, piece, end, ctx)
                .await?;
            if end {
                return client.finish_request_body().await.map_err(send_failed);
            }
        }
    }

    async fn forward_request_piece(
        &self,
        session: &mut Session,
        client: &mut ClientSession,
        mut body: Option<Bytes>,
        end: bool,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        self.inner
            .request_body_filter(session, &mut body, end, ctx)
            .await?;
        match body {
            Some(b) if !b.is_empty() => client.write_request_body(&b).await.map_err(send_failed),
            _ => Ok(()),
        }
    }

    /// Stream the response body to the client through the body filters,
    /// sleeping when a filter asks to throttle.
    async fn send_response_body(
        &self,
        session: &mut Session,
        client: &mut ClientSession,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        let mut first = true;
        loop {
            let mut body = if first {
                first = false;
                // The head waits to go out with the first body piece; if that
                // piece is not already here (a slow or streamed body), send
                // the head now rather than hold it back for the wait.
                match client.read_response_body().now_or_never() {
                    Some(r) => r,
                    None => {
                        session
                            .downstream_session
                            .flush_response_header()
                            .await
                            .map_err(|e| e.into_down())?;
                        client.read_response_body().await
                    }
                }
            } else {
                client.read_response_body().await
            }
            .map_err(after_response)?;
            let end = body.is_none() || client.response_done();
            let delay_up = self
                .inner
                .upstream_response_body_filter(session, &mut body, end, ctx)?;
            self.cache_body(session, body.as_ref(), end).await;
            let delay_down = self
                .inner
                .response_body_filter(session, &mut body, end, ctx)?;
            session
                .write_response_body(body, end)
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

    /// After `101 Switching Protocols` (RFC 9110 §15.2.2), relay bytes both
    /// ways. When one side ends its stream, the other side's write half is
    /// shut (a half-close is passed on) and the remaining direction keeps
    /// flowing until it ends too.
    async fn pipe_upgraded(&self, session: &mut Session, client: &mut ClientSession) -> Result<()> {
        session.set_keepalive(None);
        session
            .downstream_session
            .flush_response_header()
            .await
            .map_err(|e| e.into_down())?;
        let downstream = &mut session.downstream_session;
        let (mut down_open, mut up_open) = (true, true);
        while down_open || up_open {
            // both reads are raw `read_buf` calls after the switch: cancel safe
            tokio::select! {
                d = downstream.read_request_body(), if down_open => match d.map_err(|e| e.into_down())? {
                    Some(b) => client.write_request_body(&b).await.map_err(|e| e.into_up())?,
                    None => {
                        down_open = false;
                        client.shutdown().await;
                    }
                },
                u = client.read_response_body(), if up_open => match u.map_err(|e| e.into_up())? {
                    Some(b) => downstream.write_response_body(&b).await.map_err(|e| e.into_down())?,
                    None => {
                        up_open = false;
                        downstream.shutdown().await;
                    }
                },
            }
        }
        Ok(())
    }
}
