//! Upstream connection metrics of one service, resolved once.

use std::time::Duration;

use prometheus::{Histogram, IntCounter};

use super::families::framework;

/// The upstream-connection metrics of one service, label children resolved
/// once so that counting on the request path is an atomic add:
/// `proxy_upstream_connections_total{service, kind}` and
/// `proxy_upstream_connect_duration_seconds{service}` (see
/// [`super::FrameworkMetrics`]).
///
/// Give it to a connector with
/// [`crate::connectors::TransportConnector::set_metrics`].
#[derive(Debug, Clone)]
pub struct UpstreamMetrics {
    opened: IntCounter,
    reused: IntCounter,
    connect_seconds: Histogram,
}

impl UpstreamMetrics {
    /// The metrics of the service named `service` (the value of the
    /// `service` label).
    pub fn for_service(service: &str) -> Self {
        let m = framework();
        UpstreamMetrics {
            opened: m
                .upstream_connections
                .with_label_values(&[service, "opened"]),
            reused: m
                .upstream_connections
                .with_label_values(&[service, "reused"]),
            connect_seconds: m.upstream_connect_duration.with_label_values(&[service]),
        }
    }

    /// Count a new connection that took `took` to open.
    pub fn opened(&self, took: Duration) {
        self.opened.inc();
        self.connect_seconds.observe(took.as_secs_f64());
    }

    /// Count a connection taken from the pool.
    pub fn reused(&self) {
        self.reused.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_to_the_service_children() {
        let m = UpstreamMetrics::for_service("upstream-metrics-test");
        m.opened(Duration::from_millis(2));
        m.reused();
        m.reused();
        let f = framework();
        let get = |kind| {
            f.upstream_connections
                .with_label_values(&["upstream-metrics-test", kind])
                .get()
        };
        assert_eq!((get("opened"), get("reused")), (1, 2));
        let h = f
            .upstream_connect_duration
            .with_label_values(&["upstream-metrics-test"]);
        assert_eq!(h.get_sample_count(), 1);
        assert!((h.get_sample_sum() - 0.002).abs() < 1e-9);
    }
}
