//! # proxy-facade
//!
//! The framework in one crate: `proxy-core` at the root (so `server`,
//! `services`, `listeners`, `connectors`, `protocols`, `upstreams`, `http` and
//! the error types sit where Pingora users expect them), the proxy under
//! [`proxy`] (feature `proxy`, on by default), load balancing under [`lb`]
//! (feature `lb`, on by default), rate limiting under `limits` (feature
//! `limits`), and a [`prelude`] with what a proxy program imports.
//!
//! The tutorial's first program, with only the crate path changed (this
//! doc test keeps it compiling):
//!
//! ```no_run
//! use async_trait::async_trait;
//! use proxy_facade::prelude::*;
//! use proxy_facade::proxy::{ProxyHttp, Session};
//! use proxy_facade::upstreams::peer::HttpPeer;
//!
//! pub struct MyProxy;
//!
//! #[async_trait]
//! impl ProxyHttp for MyProxy {
//!     type CTX = ();
//!     fn new_ctx(&self) -> Self::CTX {}
//!
//!     async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<Box<HttpPeer>> {
//!         Ok(Box::new(HttpPeer::new(("127.0.0.1", 8000), false, String::new())))
//!     }
//!
//!     async fn upstream_request_filter(
//!         &self,
//!         _session: &mut Session,
//!         upstream_request: &mut proxy_facade::http::RequestHeader,
//!         _ctx: &mut Self::CTX,
//!     ) -> Result<()> {
//!         upstream_request.insert_header("Host", "example.org")?;
//!         Ok(())
//!     }
//! }
//!
//! fn main() {
//!     let mut server = Server::new(Some(Opt::parse_args())).unwrap();
//!     server.bootstrap();
//!     let mut service = http_proxy_service(&server.configuration, MyProxy);
//!     service.add_tcp("0.0.0.0:6188");
//!     server.add_service(service);
//!     server.run_forever();
//! }
//! ```

pub use proxy_core::*;

/// The phase-driven proxy: [`proxy::ProxyHttp`], [`proxy::Session`], [`proxy::http_proxy_service`].
#[cfg(feature = "proxy")]
pub mod proxy {
    pub use proxy_http::*;
}

/// Load balancing: [`lb::LoadBalancer`], [`lb::Backend`], the algorithms in
/// [`lb::selection`], the checks in [`lb::health_check`] and the sources in
/// [`lb::discovery`].
///
/// The tutorial's load balancer (Part 2), with only the crate path renamed
/// and pointed at local backends (this doc test keeps it compiling):
///
/// ```no_run
/// use async_trait::async_trait;
/// use proxy_facade::prelude::*;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// fn main() {
///     let mut my_server = Server::new(None).unwrap();
///     my_server.bootstrap();
///
///     let mut upstreams =
///         LoadBalancer::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:343"]).unwrap();
///     let hc = TcpHealthCheck::new();
///     upstreams.set_health_check(hc);
///     upstreams.health_check_frequency = Some(Duration::from_secs(1));
///     let background = background_service("health_check", upstreams);
///     let upstreams = background.task();
///
///     let mut lb = http_proxy_service(&my_server.configuration, LB(upstreams));
///     lb.add_tcp("0.0.0.0:6188");
///     my_server.add_service(background);
///     my_server.add_service(lb);
///     my_server.run_forever();
/// }
///
/// pub struct LB(Arc<LoadBalancer<RoundRobin>>);
///
/// #[async_trait]
/// impl ProxyHttp for LB {
///     type CTX = ();
///     fn new_ctx(&self) -> () {}
///
///     async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
///         let upstream = self
///             .0
///             .select(b"", 256) // hash doesn't matter for round robin
///             .ok_or_else(|| Error::new_str("no healthy upstream available"))?;
///         println!("upstream peer is: {upstream:?}");
///         let peer = Box::new(HttpPeer::new(upstream, false, String::new()));
///         Ok(peer)
///     }
///
///     async fn upstream_request_filter(
///         &self,
///         _session: &mut Session,
///         upstream_request: &mut RequestHeader,
///         _ctx: &mut Self::CTX,
///     ) -> Result<()> {
///         upstream_request.insert_header("Host", "example.org").unwrap();
///         Ok(())
///     }
/// }
/// ```
#[cfg(feature = "lb")]
pub mod lb {
    pub use proxy_lb::*;
}

/// The HTTP cache (feature `cache`, on by default): [`cache::CacheKey`],
/// [`cache::CacheMeta`], [`cache::MemCache`], the eviction managers, the
/// cache lock, the predictor and the RFC 9111 rules. Enable it per request
/// in `ProxyHttp::request_cache_filter` with `session.cache.enable(..)`.
#[cfg(feature = "cache")]
pub mod cache {
    pub use proxy_cache::*;
}

/// Rate estimation, in-flight counting and keyed rate limiting in fixed
/// memory without locks (feature `limits`): [`limits::Rate`],
/// [`limits::Inflight`], [`limits::RateLimiter`], [`limits::Estimator`].
#[cfg(feature = "limits")]
pub mod limits {
    pub use proxy_limits::*;
}

/// What a proxy program imports: `Server`, `Opt`, `HttpPeer`,
/// `background_service`, the error types, the header types; with the
/// `proxy` feature `ProxyHttp`, `Session` and `http_proxy_service`; with the
/// `lb` feature `LoadBalancer`, `RoundRobin` and `TcpHealthCheck`.
pub mod prelude {
    pub use proxy_core::prelude::*;
    #[cfg(feature = "proxy")]
    pub use proxy_http::prelude::*;
    #[cfg(feature = "lb")]
    pub use proxy_lb::prelude::*;
}
