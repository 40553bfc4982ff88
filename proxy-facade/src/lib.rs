//! # proxy-facade
//!
//! The framework in one crate: `proxy-core` at the root (so `server`,
//! `services`, `listeners`, `connectors`, `protocols`, `upstreams`, `http` and
//! the error types sit where Pingora users expect them), the proxy under
//! [`proxy`] (feature `proxy`, on by default), rate limiting under `limits`
//! (feature `limits`), and a [`prelude`] with what a proxy program imports.
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

/// Rate estimation, in-flight counting and keyed rate limiting in fixed
/// memory without locks (feature `limits`): [`limits::Rate`],
/// [`limits::Inflight`], [`limits::RateLimiter`], [`limits::Estimator`].
#[cfg(feature = "limits")]
pub mod limits {
    pub use proxy_limits::*;
}

/// What a proxy program imports: `Server`, `Opt`, `HttpPeer`, the error
/// types, the header types and, with the `proxy` feature, `ProxyHttp`,
/// `Session` and `http_proxy_service`.
pub mod prelude {
    pub use proxy_core::prelude::*;
    #[cfg(feature = "proxy")]
    pub use proxy_http::prelude::*;
}
