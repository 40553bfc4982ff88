//! [`TcpHealthCheck`]: a backend is healthy when it accepts a TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use proxy_core::connectors::TransportConnector;
use proxy_core::protocols::SocketAddr as PeerAddr;
use proxy_core::upstreams::peer::BasicPeer;
use proxy_core::Result;

use super::{HealthCheck, HealthObserveCallback};
use crate::Backend;

/// The connect timeout of a TCP check unless the template says otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Healthy when a TCP connection to the backend opens within the timeout
/// (default 1 s); the connection is closed at once.
pub struct TcpHealthCheck {
    /// Passing checks in a row before an unhealthy backend is healthy again. Default 1.
    pub consecutive_success: usize,
    /// Failing checks in a row before a healthy backend is marked unhealthy. Default 1.
    pub consecutive_failure: usize,
    /// How to connect: its options (`connection_timeout` 1 s by default,
    /// `bind_to`, `tcp_keepalive`...) apply to every probe; its address is
    /// replaced by each backend's.
    pub peer_template: BasicPeer,
    /// Told when a backend flips.
    pub health_changed_callback: Option<HealthObserveCallback>,
    connector: TransportConnector,
}

impl std::fmt::Debug for TcpHealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpHealthCheck")
            .field("consecutive_success", &self.consecutive_success)
            .field("consecutive_failure", &self.consecutive_failure)
            .field("peer_template", &self.peer_template)
            .finish_non_exhaustive()
    }
}

impl TcpHealthCheck {
    /// A check with the defaults: thresholds 1, connect timeout 1 s. Boxed,
    /// as `LoadBalancer::set_health_check` takes it.
    pub fn new() -> Box<Self> {
        let mut peer_template = BasicPeer::new(SocketAddr::from(([0, 0, 0, 0], 1)));
        peer_template.options.connection_timeout = Some(DEFAULT_CONNECT_TIMEOUT);
        Box::new(TcpHealthCheck {
            consecutive_success: 1,
            consecutive_failure: 1,
            peer_template,
            health_changed_callback: None,
            connector: TransportConnector::new(None),
        })
    }

    /// Probe with `connector` instead of a default one.
    pub fn set_connector(&mut self, connector: TransportConnector) {
        self.connector = connector;
    }
}

#[async_trait]
impl HealthCheck for TcpHealthCheck {
    /// # Errors
    /// The connect error (`ConnectRefused`, `ConnectTimedout`...), naming the address.
    async fn check(&self, target: &Backend) -> Result<()> {
        let mut peer = self.peer_template.clone();
        peer._address = PeerAddr::Inet(target.addr);
        let _stream = self.connector.new_stream(&peer).await?;
        Ok(())
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(cb) = &self.health_changed_callback {
            cb.observe(target, healthy).await;
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.consecutive_success
        } else {
            self.consecutive_failure
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proxy_core::ErrorType;

    #[tokio::test]
    async fn open_port_passes_closed_port_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Backend::from_addr(listener.local_addr().unwrap(), 1);
        let hc = TcpHealthCheck::new();
        hc.check(&up).await.unwrap();
        drop(listener);
        let e = hc.check(&up).await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::ConnectRefused, "{e}");
        assert!(e.to_string().contains(&up.addr.to_string()), "{e}");
        assert_eq!(hc.health_threshold(true), 1);
        assert_eq!(hc.health_threshold(false), 1);
    }

    #[tokio::test]
    async fn callback_hears_flips() {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut hc = TcpHealthCheck::new();
        let s = seen.clone();
        hc.health_changed_callback = Some(Box::new(move |b: &Backend, h: bool| {
            s.lock().push((b.addr.port(), h));
        }));
        let b = Backend::new("127.0.0.1:9").unwrap();
        hc.health_status_change(&b, false).await;
        assert_eq!(*seen.lock(), [(9, false)]);
    }
}
