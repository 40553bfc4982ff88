//! Prometheus metrics: the framework's own metric families and the HTTP app
//! that serves them.
//!
//! Every metric lives in the `prometheus` crate's default registry
//! ([`prometheus::default_registry`]), so counters a program registers there
//! itself (`prometheus::register_int_counter!`) appear on `/metrics` beside
//! the framework's. The crate is re-exported as [`prometheus`] so a program
//! uses the same version as the framework.
//!
//! ```no_run
//! use proxy_core::metrics::prometheus::{register_int_counter, IntCounter};
//! use proxy_core::server::Server;
//! use proxy_core::services::listening::Service;
//!
//! // a program's own counter: on /metrics beside the framework's
//! let rejections: IntCounter =
//!     register_int_counter!("myproxy_rejections_total", "Requests refused.").unwrap();
//! rejections.inc();
//!
//! let mut server = Server::new(None).unwrap();
//! let mut metrics = Service::prometheus_http_service();
//! metrics.add_tcp("127.0.0.1:6192");
//! server.add_service(metrics);
//! server.run_forever();
//! ```
//!
//! The framework's families are listed on [`FrameworkMetrics`]; the user
//! guide's metrics reference (`docs/05-production.md`) has the same table.
//!
//! Cost: label children are resolved once (per service, when a proxy or
//! connector is built), so the per-request path only adds to atomic
//! counters; active connections are read from the listening service's own
//! connection count at scrape time ([`connections`]).

pub mod app;
pub mod connections;
mod families;
pub mod upstream;

pub use app::PrometheusHttpApp;
pub use families::{framework, status_class, FrameworkMetrics, STATUS_CLASSES, TIME_BUCKETS};
pub use prometheus;
pub use upstream::UpstreamMetrics;
