//! `proxy_downstream_connections_active`: read at scrape time from the
//! listening services' own connection counts, so accepting a connection
//! costs nothing more than the count the service keeps anyway.

use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

const NAME: &str = "proxy_downstream_connections_active";
const HELP: &str = "Downstream connections open now (idle keep-alive ones included), by service.";

/// Something that knows how many connections it holds open now.
pub trait LiveCount: Send + Sync {
    /// Connections open now.
    fn live(&self) -> usize;
}

/// Report `counter` as `proxy_downstream_connections_active{service}` for as
/// long as it lives. Several counters under one service name are summed
/// (e.g. a service started twice in tests).
pub fn track_active(service: &str, counter: Weak<dyn LiveCount>) {
    let collector = collector();
    let mut entries = collector.entries.lock();
    entries.retain(|(_, c)| c.strong_count() > 0);
    entries.push((service.to_string(), counter));
}

/// The collector, registered in the default registry on first use.
fn collector() -> &'static ActiveConnections {
    static COLLECTOR: OnceLock<ActiveConnections> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let c = ActiveConnections::default();
        if let Err(e) = prometheus::register(Box::new(c.clone())) {
            log::warn!("metric {NAME} not exported: {e}");
        }
        c
    })
}

/// The collector behind `proxy_downstream_connections_active`; the lock is
/// taken when a service starts and at each scrape, never per connection.
#[derive(Clone, Default)]
struct ActiveConnections {
    entries: Arc<Mutex<Vec<Tracked>>>,
}

/// A service name and its connection count.
type Tracked = (String, Weak<dyn LiveCount>);

fn gauge_vec() -> IntGaugeVec {
    // constant, valid name and label: cannot fail (see `collects_live_counts`)
    IntGaugeVec::new(Opts::new(NAME, HELP), &["service"]).expect("constant, valid gauge")
}

impl Collector for ActiveConnections {
    fn desc(&self) -> Vec<&Desc> {
        static DESC: OnceLock<IntGaugeVec> = OnceLock::new();
        DESC.get_or_init(gauge_vec).desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauges = gauge_vec();
        let entries = self.entries.lock();
        for (service, counter) in entries.iter() {
            let g = gauges.with_label_values(&[service]);
            if let Some(c) = counter.upgrade() {
                g.add(i64::try_from(c.live()).unwrap_or(i64::MAX));
            }
        }
        gauges.collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fixed(AtomicUsize);
    impl LiveCount for Fixed {
        fn live(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn value(service: &str) -> Option<i64> {
        let families = collector().collect();
        let family = families.first()?;
        family
            .get_metric()
            .iter()
            .find(|m| m.get_label()[0].value() == service)
            .map(|m| m.get_gauge().get_value() as i64)
    }

    #[test]
    fn collects_live_counts_summed_by_service_until_dropped() {
        let a: Arc<Fixed> = Arc::new(Fixed(AtomicUsize::new(3)));
        let b: Arc<Fixed> = Arc::new(Fixed(AtomicUsize::new(4)));
        let a_dyn: Arc<dyn LiveCount> = a.clone();
        let b_dyn: Arc<dyn LiveCount> = b.clone();
        track_active("active-test", Arc::downgrade(&a_dyn));
        track_active("active-test", Arc::downgrade(&b_dyn));
        assert_eq!(value("active-test"), Some(7));
        a.0.store(1, Ordering::Relaxed);
        assert_eq!(value("active-test"), Some(5));
        drop((a, a_dyn));
        assert_eq!(value("active-test"), Some(4));
        let text = {
            use prometheus::Encoder;
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&prometheus::gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(
            text.contains("proxy_downstream_connections_active{service=\"active-test\"} 4"),
            "{text}"
        );
    }
}
