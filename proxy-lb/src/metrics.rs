//! `proxy_lb_backend_healthy{backend}`: each backend's health as a gauge
//! (1 healthy, 0 not), set where health checks and passive health change
//! it. Not on the request path: once per check, per flip, per removal.

use proxy_core::metrics::framework;

use crate::Backend;

/// The `backend` label: the address (`127.0.0.1:8000`), without the weight.
fn label(backend: &Backend) -> String {
    backend.addr.to_string()
}

/// Report `backend` as healthy (1) or not (0).
pub(crate) fn set_backend_healthy(backend: &Backend, healthy: bool) {
    framework()
        .backend_healthy
        .with_label_values(&[&label(backend)])
        .set(i64::from(healthy));
}

/// Stop reporting `backend` (it left the set).
pub(crate) fn forget_backend(backend: &Backend) {
    // an error only says the backend was never reported: nothing to remove
    let _ = framework()
        .backend_healthy
        .remove_label_values(&[&label(backend)]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gauge_follows_health_and_disappears_on_removal() {
        let b = Backend::new_with_weight("127.0.0.9:81", 3).unwrap();
        let gauge = || {
            framework()
                .backend_healthy
                .get_metric_with_label_values(&["127.0.0.9:81"])
                .unwrap()
                .get()
        };
        set_backend_healthy(&b, true);
        assert_eq!(gauge(), 1);
        set_backend_healthy(&b, false);
        assert_eq!(gauge(), 0);
        forget_backend(&b);
        // removing again is harmless
        forget_backend(&b);
        let families = prometheus_text();
        assert!(!families.contains("127.0.0.9:81"), "{families}");
    }

    fn prometheus_text() -> String {
        use proxy_core::metrics::prometheus::{self, Encoder};
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&prometheus::gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }
}
