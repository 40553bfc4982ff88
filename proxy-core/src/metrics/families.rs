//! The framework's metric families, registered once in the default registry.

use std::sync::OnceLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

/// Histogram buckets of the framework's durations, in seconds: 100 µs to
/// 60 s, fine at the low end where loopback and LAN requests fall.
pub const TIME_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The values of the `status_class` label, indexed by [`status_class`]:
/// `none` (no response was sent, e.g. the client went away first), then
/// `1xx` to `5xx` by the first digit of the status code.
pub const STATUS_CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index into [`STATUS_CLASSES`] of a response status: `None` (no response)
/// and codes outside 100..=599 map to 0 (`none`).
pub fn status_class(status: Option<u16>) -> usize {
    match status {
        Some(code @ 100..=599) => usize::from(code / 100),
        _ => 0,
    }
}

/// The framework's metric families. Each is registered in the default
/// registry the first time [`framework`] is called; all use the label
/// `service` (the listening service's name, e.g. `Proxy HTTP Service`)
/// unless said otherwise.
///
/// | name | type | labels | unit |
/// |---|---|---|---|
/// | `proxy_requests_total` | counter | `service`, `status_class` | requests |
/// | `proxy_request_duration_seconds` | histogram | `service` | seconds |
/// | `proxy_upstream_connect_duration_seconds` | histogram | `service` | seconds |
/// | `proxy_upstream_connections_total` | counter | `service`, `kind` (`opened`, `reused`) | connections |
/// | `proxy_downstream_connections_active` | gauge | `service` | connections |
/// | `proxy_downstream_body_bytes_total` | counter | `service`, `direction` (`in`, `out`) | bytes |
/// | `proxy_errors_total` | counter | `service`, `error_type`, `error_source` | errors |
/// | `proxy_lb_backend_healthy` | gauge | `backend` | 1 healthy, 0 not |
///
/// `proxy_downstream_connections_active` is not a field: it is read at
/// scrape time from each listening service ([`super::connections`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct FrameworkMetrics {
    /// `proxy_requests_total{service, status_class}`: requests answered (or
    /// abandoned, `status_class="none"`), counted when the request ends.
    /// Requests refused before a valid head was read (400, 431) count too.
    pub requests: IntCounterVec,
    /// `proxy_request_duration_seconds{service}`: from the start of reading
    /// the request head to the end of the response (and of the `logging`
    /// phase), in seconds; buckets [`TIME_BUCKETS`].
    pub request_duration: HistogramVec,
    /// `proxy_upstream_connect_duration_seconds{service}`: time to open a
    /// new upstream connection (TCP or Unix connect), in seconds; reused
    /// connections and failed connects are not observed.
    pub upstream_connect_duration: HistogramVec,
    /// `proxy_upstream_connections_total{service, kind}`: upstream
    /// connections a request used, `kind="opened"` (new) or `kind="reused"`
    /// (from the pool). reused / (opened + reused) is the pool's reuse ratio.
    pub upstream_connections: IntCounterVec,
    /// `proxy_downstream_body_bytes_total{service, direction}`: body bytes
    /// of requests read from clients (`in`) and of responses sent to clients
    /// (`out`): payload bytes, without heads or chunked framing.
    pub downstream_body_bytes: IntCounterVec,
    /// `proxy_errors_total{service, error_type, error_source}`: failed
    /// requests by [`crate::ErrorType`] name (e.g. `ConnectRefused`) and
    /// source (`Upstream`, `Downstream`, `Internal`, `Unset`).
    pub errors: IntCounterVec,
    /// `proxy_lb_backend_healthy{backend}`: 1 while a load-balanced backend
    /// (`ip:port` or Unix path) is healthy, 0 while it is not; set by the
    /// load balancer's health checks.
    pub backend_healthy: IntGaugeVec,
}

/// The framework's metric families, registered in the default registry on
/// the first call.
///
/// A family whose name is already taken in the default registry (a program
/// registered its own metric of the same name first) is still counted but
/// not exported; a warning names it.
pub fn framework() -> &'static FrameworkMetrics {
    static METRICS: OnceLock<FrameworkMetrics> = OnceLock::new();
    METRICS.get_or_init(FrameworkMetrics::register)
}

impl FrameworkMetrics {
    fn register() -> Self {
        let m = FrameworkMetrics {
            requests: counter_vec(
                "proxy_requests_total",
                "Requests ended, by service and response status class (none: no response sent).",
                &["service", "status_class"],
            ),
            request_duration: histogram_vec(
                "proxy_request_duration_seconds",
                "Time from the start of reading a request head to the end of its response, in seconds.",
            ),
            upstream_connect_duration: histogram_vec(
                "proxy_upstream_connect_duration_seconds",
                "Time to open a new upstream connection, in seconds.",
            ),
            upstream_connections: counter_vec(
                "proxy_upstream_connections_total",
                "Upstream connections used by requests: opened new or reused from the pool.",
                &["service", "kind"],
            ),
            downstream_body_bytes: counter_vec(
                "proxy_downstream_body_bytes_total",
                "Body bytes read from clients (in) and sent to clients (out).",
                &["service", "direction"],
            ),
            errors: counter_vec(
                "proxy_errors_total",
                "Failed requests by error type and source.",
                &["service", "error_type", "error_source"],
            ),
            backend_healthy: gauge_vec(
                "proxy_lb_backend_healthy",
                "1 while a load-balanced backend passes its health checks, 0 while it does not.",
                &["backend"],
            ),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(m.requests.clone()),
            Box::new(m.request_duration.clone()),
            Box::new(m.upstream_connect_duration.clone()),
            Box::new(m.upstream_connections.clone()),
            Box::new(m.downstream_body_bytes.clone()),
            Box::new(m.errors.clone()),
            Box::new(m.backend_healthy.clone()),
        ];
        for c in collectors {
            let name = c.desc().first().map(|d| d.fq_name.clone());
            if let Err(e) = prometheus::register(c) {
                log::warn!("metric {name:?} not exported: {e}");
            }
        }
        m
    }
}

// The constructors below only fail on an invalid name or label (empty, bad
// characters, a duplicate or reserved label). Their arguments are the
// constants above, all valid, and `families_register_and_export` in the
// tests below builds every one of them: the `expect`s cannot fire.

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("constant, valid counter definition")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("constant, valid gauge definition")
}

fn histogram_vec(name: &str, help: &str) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(TIME_BUCKETS.to_vec());
    HistogramVec::new(opts, &["service"]).expect("constant, valid histogram definition")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    #[test]
    fn status_codes_map_to_their_class() {
        let cases = [
            (None, "none"),
            (Some(100), "1xx"),
            (Some(101), "1xx"),
            (Some(200), "2xx"),
            (Some(304), "3xx"),
            (Some(404), "4xx"),
            (Some(599), "5xx"),
            (Some(600), "none"),
            (Some(99), "none"),
        ];
        for (status, class) in cases {
            assert_eq!(STATUS_CLASSES[status_class(status)], class, "{status:?}");
        }
    }

    #[test]
    fn families_register_and_export() {
        let m = framework();
        m.requests
            .with_label_values(&["families-test", "2xx"])
            .inc();
        m.request_duration
            .with_label_values(&["families-test"])
            .observe(0.003);
        m.backend_healthy.with_label_values(&["10.0.0.1:80"]).set(1);
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&prometheus::gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("# TYPE proxy_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains("proxy_requests_total{service=\"families-test\",status_class=\"2xx\"} 1")
        );
        assert!(text.contains(
            "proxy_request_duration_seconds_bucket{service=\"families-test\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("proxy_lb_backend_healthy{backend=\"10.0.0.1:80\"} 1"));
    }
}
