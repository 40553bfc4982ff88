//! The per-service request metrics of an [`crate::HttpProxy`], label
//! children resolved once when the proxy is built so that a request costs a
//! few atomic adds and one histogram observation, never a label lookup.

use std::time::Instant;

use proxy_core::error::{Error, ErrorSource};
use proxy_core::metrics::prometheus::{Histogram, IntCounter};
use proxy_core::metrics::{framework, status_class, UpstreamMetrics, STATUS_CLASSES};
use proxy_core::protocols::http::ServerSession;

/// `proxy_requests_total`, `proxy_request_duration_seconds`,
/// `proxy_downstream_body_bytes_total` and `proxy_errors_total` of one
/// service (see [`proxy_core::metrics::FrameworkMetrics`]).
pub(crate) struct ServiceMetrics {
    service: Box<str>,
    /// One child per [`STATUS_CLASSES`] entry, in that order.
    requests: [IntCounter; STATUS_CLASSES.len()],
    duration: Histogram,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
}

impl ServiceMetrics {
    /// The children of the service named `service`.
    pub(crate) fn new(service: &str) -> Self {
        let m = framework();
        ServiceMetrics {
            service: service.into(),
            requests: STATUS_CLASSES.map(|class| m.requests.with_label_values(&[service, class])),
            duration: m.request_duration.with_label_values(&[service]),
            bytes_in: m.downstream_body_bytes.with_label_values(&[service, "in"]),
            bytes_out: m.downstream_body_bytes.with_label_values(&[service, "out"]),
        }
    }

    /// The upstream-connection metrics of the same service.
    pub(crate) fn upstream(&self) -> UpstreamMetrics {
        UpstreamMetrics::for_service(&self.service)
    }

    /// Count a request that ended, begun at `started`: its status class (from
    /// the response `downstream` sent, if any), its duration and its body bytes.
    pub(crate) fn request_done(&self, downstream: &ServerSession, started: Instant) {
        let status = downstream
            .response_written()
            .map(|r| r.status_code().as_u16());
        self.requests[status_class(status)].inc();
        self.duration.observe(started.elapsed().as_secs_f64());
        // each add is an atomic read-modify-write: skipped for no bytes (a
        // GET's request body, an empty response)
        for (counter, n) in [
            (&self.bytes_in, downstream.body_bytes_read()),
            (&self.bytes_out, downstream.body_bytes_sent()),
        ] {
            if n > 0 {
                counter.inc_by(n as u64);
            }
        }
    }

    /// Count a request refused before its head was read, answered `code`
    /// (0: not answered), begun at `started`.
    pub(crate) fn request_rejected(&self, code: u16, started: Instant) {
        let status = (code != 0).then_some(code);
        self.requests[status_class(status)].inc();
        self.duration.observe(started.elapsed().as_secs_f64());
    }

    /// Count a failed request by its error type and source. On the error
    /// path only: this one looks its labels up.
    pub(crate) fn error(&self, e: &Error) {
        let source = match e.esource() {
            ErrorSource::Unset => "Unset",
            s => s.as_str(),
        };
        framework()
            .errors
            .with_label_values(&[&self.service, e.etype().as_str(), source])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_core::error::ErrorType;

    #[test]
    fn errors_and_rejections_count_under_the_service() {
        let m = ServiceMetrics::new("service-metrics-test");
        let started = Instant::now();
        m.request_rejected(400, started);
        m.request_rejected(0, started);
        m.error(&Error::new(ErrorType::ConnectRefused).into_up());
        m.error(&Error::new(ErrorType::InternalError));
        let f = framework();
        let req = |class| {
            f.requests
                .with_label_values(&["service-metrics-test", class])
                .get()
        };
        assert_eq!((req("4xx"), req("none"), req("2xx")), (1, 1, 0));
        let errors = f
            .errors
            .with_label_values(&["service-metrics-test", "ConnectRefused", "Upstream"])
            .get();
        assert_eq!(errors, 1);
        let unset = f
            .errors
            .with_label_values(&["service-metrics-test", "InternalError", "Unset"])
            .get();
        assert_eq!(unset, 1);
        let h = f
            .request_duration
            .with_label_values(&["service-metrics-test"]);
        assert_eq!(h.get_sample_count(), 2);
    }
}
