//! The HTTP connector: client sessions over the transport connector's pooled streams.

use std::time::Duration;

use crate::connectors::{ConnectorOptions, TransportConnector, DEFAULT_UPSTREAM_TIMEOUT};
use crate::error::Result;
use crate::metrics::UpstreamMetrics;
use crate::protocols::http::client::HttpSession;
use crate::protocols::http::v1::client::HttpSession as Http1Session;
use crate::upstreams::peer::{HttpPeer, Peer};

/// Makes (or reuses) HTTP client sessions to [`HttpPeer`]s.
///
/// Every session speaks HTTP/1.1 for now (HTTP/2 upstreams come with their
/// own issue). The peer's `read_timeout` and `write_timeout` are applied to
/// each session; a peer that sets none gets [`DEFAULT_UPSTREAM_TIMEOUT`]
/// (60 s, as nginx), so a silent upstream never holds a request forever.
pub struct Connector {
    transport: TransportConnector,
}

impl Connector {
    /// A connector whose pool follows `options` (default: 128 idle connections).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        Connector {
            transport: TransportConnector::new(options),
        }
    }

    /// A session to `peer` and whether its connection came from the pool.
    ///
    /// # Errors
    /// The connect errors of [`TransportConnector::new_stream`]:
    /// `ConnectRefused`, `ConnectTimedout`, `ConnectNoRoute`, `ConnectError`.
    pub async fn get_http_session(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        let (stream, reused) = self.transport.get_stream(peer).await?;
        let mut session = Http1Session::new(stream);
        session.set_read_timeout(peer.read_timeout().or(Some(DEFAULT_UPSTREAM_TIMEOUT)));
        session.set_write_timeout(peer.write_timeout().or(Some(DEFAULT_UPSTREAM_TIMEOUT)));
        Ok((HttpSession::H1(session), reused))
    }

    /// Give a session back: its connection goes to the pool if the exchange
    /// finished cleanly and keep-alive holds, and is closed otherwise.
    /// `idle_timeout` bounds how long it may wait there (`Some(0)`: close).
    pub async fn release_http_session(
        &self,
        session: HttpSession,
        peer: &HttpPeer,
        idle_timeout: Option<Duration>,
    ) {
        if let Some(stream) = session.reuse().await {
            self.transport
                .release_stream(stream, peer.reuse_hash(), idle_timeout);
        }
    }

    /// The transport connector underneath, with its pool.
    pub fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// Count opened and reused connections (see
    /// [`TransportConnector::set_metrics`]).
    pub fn set_metrics(&mut self, metrics: Option<UpstreamMetrics>) {
        self.transport.set_metrics(metrics);
    }
}
