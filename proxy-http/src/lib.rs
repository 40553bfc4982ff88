//! # proxy-http
//!
//! The phase-driven HTTP proxy. A user implements [`ProxyHttp`] (only
//! `new_ctx` and `upstream_peer` are required) and hands it to
//! [`http_proxy_service`]; the framework reads each request, calls the phases
//! in order, talks to the upstream (pooling connections and retrying when
//! allowed) and streams the response back.
//!
//! ```no_run
//! use async_trait::async_trait;
//! use proxy_core::upstreams::peer::HttpPeer;
//! use proxy_core::Result;
//! use proxy_http::{ProxyHttp, Session};
//!
//! struct MyProxy;
//!
//! #[async_trait]
//! impl ProxyHttp for MyProxy {
//!     type CTX = ();
//!     fn new_ctx(&self) {}
//!     async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
//!         Ok(Box::new(HttpPeer::new(("127.0.0.1", 8000), false, String::new())))
//!     }
//! }
//! ```

mod cache_hit;
mod metrics;
mod proxy;
mod proxy_cache;
mod proxy_h1;
mod proxy_h2;
mod proxy_to_h2;
mod proxy_trait;
pub mod range;
mod ready;
mod retry_buffer;
mod service;
mod session;
mod shutdown_wait;

pub use proxy::HttpProxy;
pub use proxy_cache::PurgeStatus;
pub use proxy_trait::{error_status, FailToProxy, ProxyHttp};
pub use range::{range_header_filter, RangeType};
pub use ready::BoxFuture;
pub use service::{
    http_proxy, http_proxy_service, http_proxy_service_with_name, DEFAULT_SERVICE_NAME,
};
pub use session::Session;

/// What a proxy program usually imports.
pub mod prelude {
    pub use crate::{http_proxy, http_proxy_service, ProxyHttp, Session};
}
