//! One request/response exchange with an HTTP/1.1 upstream.
//!
//! Stages, in order: send the request header (after `upstream_request_filter`),
//! send the request body (replaying the retry buffer first, each piece through
//! `request_body_filter`), read the response header (forwarding informational
//! responses), run `upstream_response_filter` and `response_filter`, then stream
//! the body through the two body filters. A `101 Switching Protocols` answer to
//! an `Upgrade` request turns the exchange into a two-way byte pipe.

use bytes::Bytes;
use proxy_core::error::{Error, ErrorType, Result, RetryType};
use proxy_core::protocols::http::client::HttpSession as ClientSession;
use proxy_core::protocols::http::hop_by_hop;

use crate::proxy::HttpProxy;
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;

/// An upstream error that happened before any response byte came back: the
/// request may be resent on a fresh connection if this one came from the pool
/// (it may have been closed by the upstream while idle).
fn before_response(mut e: Box<Error>) -> Box<Error> {
    e.as_up();
    e.set_retry_type(RetryType::ReusedOnly);
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
        // The proxy answers `Expect: 100-continue` itself when it reads the body.
        req.remove_header("expect");
        if !session.is_body_empty() && !req.headers.contains_key(http::header::CONTENT_LENGTH) {
            // Transfer-Encoding is hop-by-hop (RFC 9112 §6.1): a body of unknown
            // length is re-chunked on this hop.
            req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        self.inner
            .upstream_request_filter(session, &mut req, ctx)
            .await?;
        client
            .write_request_header(req)
            .await
            .map_err(before_response)?;

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
            client
                .read_response_header()
                .await
                .map_err(before_response)?;
        }

        // Informational responses: 100 was answered by the proxy itself;
        // others (e.g. 103 Early Hints, RFC 8297) are forwarded as they come.
        let mut resp = loop {
            let Some(head) = client.take_response_header() else {
                return Error::e_explain(ErrorType::InternalError, "no response header after read");
            };
            let status = head.status.as_u16();
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
                .map_err(|e| e.into_up())?;
        };

        let switching = resp.status.as_u16() == 101 && upgrade;
        self.inner
            .upstream_response_filter(session, &mut resp, ctx)
            .await?;
        self.inner.response_filter(session, &mut resp, ctx).await?;
        hop_by_hop::strip_response(&mut resp, switching);
        let end = client.response_done() && !switching;
        session
            .write_response_header(resp, end)
            .await
            .map_err(|e| e.into_down())?;

        if switching {
            return self.pipe_upgraded(session, client).await;
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
            return client.finish_request_body().await.map_err(before_response);
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
            return client.finish_request_body().await.map_err(before_response);
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
                return client.finish_request_body().await.map_err(before_response);
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
            Some(b) if !b.is_empty() => {
                client.write_request_body(&b).await.map_err(before_response)
            }
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
        loop {
            let mut body = client.read_response_body().await.map_err(|e| e.into_up())?;
            let end = body.is_none() || client.response_done();
            let delay_up = self
                .inner
                .upstream_response_body_filter(session, &mut body, end, ctx)?;
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

    /// After `101 Switching Protocols` (RFC 9110 §15.2.2), relay bytes both ways
    /// until either side closes.
    async fn pipe_upgraded(&self, session: &mut Session, client: &mut ClientSession) -> Result<()> {
        session.set_keepalive(None);
        let downstream = &mut session.downstream_session;
        loop {
            tokio::select! {
                d = downstream.read_request_body() => match d.map_err(|e| e.into_down())? {
                    Some(b) => client.write_request_body(&b).await.map_err(|e| e.into_up())?,
                    None => break,
                },
                u = client.read_response_body() => match u.map_err(|e| e.into_up())? {
                    Some(b) => downstream.write_response_body(&b).await.map_err(|e| e.into_down())?,
                    None => break,
                },
            }
        }
        let _ = client.finish_request_body().await;
        let _ = downstream.finish_body().await;
        Ok(())
    }
}
