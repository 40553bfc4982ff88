//! The HTTP connector: client sessions over HTTP/1.1 or HTTP/2, by the
//! peer's ALPN preference, over the transport connector's connections.
//!
//! - [`ALPN::H1`] (the default): HTTP/1.1, one request at a time per
//!   connection, idle connections in the transport connector's pool.
//! - [`ALPN::H2`]: HTTP/2 only; over TLS the server must agree by ALPN
//!   (else `H2Downgrade`), over cleartext the connection starts with the
//!   HTTP/2 preface (prior knowledge, RFC 9113 §3.3).
//! - [`ALPN::H2H1`]: over TLS, HTTP/2 when the server picks `h2`, HTTP/1.1
//!   when it picks `http/1.1` (or nothing); over cleartext, HTTP/1.1.
//!
//! HTTP/2 connections are shared: see `connectors/http2.rs` for how streams
//! are spread over them and when they close.

use std::time::{Duration, Instant};

use crate::connectors::http2::H2Registry;
use crate::connectors::{ConnectorOptions, TransportConnector, DEFAULT_UPSTREAM_TIMEOUT};
use crate::error::{Error, ErrorType, Result};
use crate::metrics::UpstreamMetrics;
use crate::protocols::http::client::HttpSession;
use crate::protocols::http::v1::client::HttpSession as Http1Session;
use crate::protocols::http::v2::client::{self as h2client, ClientOptions};
use crate::protocols::Stream;
use crate::upstreams::peer::{HttpPeer, Peer, ALPN};

/// Makes (or reuses) HTTP client sessions to [`HttpPeer`]s.
///
/// The peer's `read_timeout` and `write_timeout` are applied to each
/// session; a peer that sets none gets [`DEFAULT_UPSTREAM_TIMEOUT`] (60 s,
/// as nginx), so a silent upstream never holds a request forever.
pub struct Connector {
    transport: TransportConnector,
    h2: H2Registry,
    metrics: Option<UpstreamMetrics>,
}

impl Connector {
    /// A connector whose pool follows `options` (default: 128 idle
    /// connections; the same number caps idle HTTP/2 connections per peer).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        let options = options.unwrap_or_default();
        Connector {
            h2: H2Registry::new(options.keepalive_pool_size),
            transport: TransportConnector::new(Some(options)),
            metrics: None,
        }
    }

    /// A session to `peer` and whether its connection was reused (from the
    /// HTTP/1.1 pool, or an open HTTP/2 connection with a free stream).
    ///
    /// # Errors
    /// The connect errors of [`TransportConnector::new_stream`]
    /// (`ConnectRefused`, `ConnectTimedout`, `ConnectNoRoute`,
    /// `ConnectError`, `TLSHandshakeFailure`...); `H2Downgrade` when the
    /// peer asks for HTTP/2 only and the TLS server did not agree to it;
    /// `H2Error` when the HTTP/2 handshake fails.
    ///
    /// # Cancel safety
    /// Dropping the future closes a connection being made; nothing leaks.
    pub async fn get_http_session(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        let alpn = peer.get_alpn().copied().unwrap_or_default();
        if alpn == ALPN::H1 {
            let (stream, reused) = self.transport.get_stream(peer).await?;
            return Ok((self.h1_session(stream, peer), reused));
        }
        let key = peer.reuse_hash();
        if let Some(s) = self.h2.reuse(key) {
            self.count_reused();
            return Ok((self.h2_session(s, peer), true));
        }
        if alpn == ALPN::H2H1 {
            if let Some(stream) = self.transport.reused_stream(peer).await {
                self.count_reused();
                return Ok((self.h1_session(stream, peer), true));
            }
        }
        // one new connection at a time per HTTP/2 peer; the others share it
        let gate = self.h2.gate(key, alpn == ALPN::H2);
        let _held = match &gate {
            Some(g) => {
                let held = g.lock().await;
                if let Some(s) = self.h2.reuse(key) {
                    self.count_reused();
                    return Ok((self.h2_session(s, peer), true));
                }
                Some(held)
            }
            None => None,
        };
        let started = Instant::now();
        // boxed, as in `TransportConnector::get_stream`: a new connection's
        // futures stay out of the room of every request on a pooled one
        let stream = Box::pin(self.transport.new_stream(peer)).await?;
        let speaks_h2 = match stream.ssl_digest() {
            Some(d) => d.is_h2(),
            None => alpn == ALPN::H2,
        };
        if !speaks_h2 {
            if alpn == ALPN::H2 {
                return Err(Error::explain(
                    ErrorType::H2Downgrade,
                    format!(
                        "{peer} did not agree to HTTP/2 by ALPN, and the peer allows no HTTP/1.1"
                    ),
                )
                .into_up());
            }
            self.count_opened(started);
            return Ok((self.h1_session(stream, peer), false));
        }
        let options = ClientOptions {
            max_streams: peer.options.max_h2_streams,
            idle_timeout: peer.idle_timeout(),
            default_authority: default_authority(peer),
            ..ClientOptions::default()
        };
        let conn = Box::pin(h2client::handshake(stream, &options))
            .await
            .map_err(|e| e.more_context(format!("peer: {peer}")))?;
        self.count_opened(started);
        let Some(session) = conn.new_session() else {
            return Err(Error::explain(
                ErrorType::H2Error,
                format!("new HTTP/2 connection to {peer} refused its first stream"),
            )
            .into_up());
        };
        self.h2.add(key, conn);
        Ok((self.h2_session(session, peer), false))
    }

    fn h1_session(&self, stream: Stream, peer: &HttpPeer) -> HttpSession {
        let mut session = Http1Session::new(stream);
        session.set_read_timeout(peer.read_timeout().or(Some(DEFAULT_UPSTREAM_TIMEOUT)));
        session.set_write_timeout(peer.write_timeout().or(Some(DEFAULT_UPSTREAM_TIMEOUT)));
        HttpSession::H1(session)
    }

    fn h2_session(&self, mut session: h2client::HttpSession, peer: &HttpPeer) -> HttpSession {
        session.set_read_timeout(peer.read_timeout().or(Some(DEFAULT_UPSTREAM_TIMEOUT)));
        session.set_write_timeout(peer.write_timeout().or(Some(DEFAULT_UPSTREAM_TIMEOUT)));
        HttpSession::H2(session)
    }

    fn count_reused(&self) {
        if let Some(m) = &self.metrics {
            m.reused();
        }
    }

    fn count_opened(&self, started: Instant) {
        if let Some(m) = &self.metrics {
            m.opened(started.elapsed());
        }
    }

    /// Give a session back. HTTP/1.1: its connection goes to the pool if
    /// the exchange finished cleanly and keep-alive holds, and is closed
    /// otherwise; `idle_timeout` bounds how long it may wait there
    /// (`Some(0)`: close). HTTP/2: the stream's slot is freed (the stream is
    /// reset if unfinished); the connection stays open for other streams
    /// (its idle timeout was fixed when it was made).
    pub async fn release_http_session(
        &self,
        session: HttpSession,
        peer: &HttpPeer,
        idle_timeout: Option<Duration>,
    ) {
        match session {
            HttpSession::H2(s) => self.h2.release(peer.reuse_hash(), s),
            HttpSession::H1(s) if s.can_reuse() => {
                self.transport
                    .release_stream(s.into_stream(), peer.reuse_hash(), idle_timeout);
            }
            // boxed: the close is the rare case, and its future would
            // otherwise widen every request's
            HttpSession::H1(mut s) => Box::pin(async move { s.shutdown().await }).await,
        }
    }

    /// The transport connector underneath, with its pool.
    pub fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// Open upstream HTTP/2 connections, all peers (closing ones the
    /// registry has not yet met included).
    pub fn h2_connection_count(&self) -> usize {
        self.h2.connection_count()
    }

    /// Count opened and reused connections (see
    /// [`TransportConnector::set_metrics`]); an HTTP/2 stream on an open
    /// connection counts as reused.
    pub fn set_metrics(&mut self, metrics: Option<UpstreamMetrics>) {
        self.metrics = metrics.clone();
        self.transport.set_metrics(metrics);
    }
}

/// The `:authority` of a request to `peer` that has no `Host`: its SNI, or
/// its address.
fn default_authority(peer: &HttpPeer) -> String {
    if peer.sni().is_empty() {
        peer.address().to_string()
    } else {
        peer.sni().to_string()
    }
}
