//! # proxy-lb
//!
//! Load balancing for the proxy framework: a [`LoadBalancer`] picks one of a
//! set of [`Backend`]s for each request with a [`selection`] algorithm,
//! leaves out the ones its [`health_check`] found dead, and keeps the set
//! current from a [`discovery`] source (a static list, or DNS names
//! re-resolved on a schedule). It runs its checks and discovery as a
//! background service of the server.
//!
//! The tutorial's load balancer (Part 2), with the crate path renamed:
//!
//! ```
//! use std::time::Duration;
//! use proxy_core::services::background::background_service;
//! use proxy_core::upstreams::peer::HttpPeer;
//! use proxy_lb::health_check::TcpHealthCheck;
//! use proxy_lb::selection::RoundRobin;
//! use proxy_lb::LoadBalancer;
//!
//! let mut upstreams =
//!     LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:343"])
//!         .unwrap();
//! upstreams.set_health_check(TcpHealthCheck::new());
//! upstreams.health_check_frequency = Some(Duration::from_secs(1));
//! let background = background_service("health_check", upstreams);
//! let upstreams = background.task(); // Arc<LoadBalancer<RoundRobin>>
//! // server.add_service(background);
//!
//! // in `upstream_peer`:
//! let upstream = upstreams.select(b"", 256).unwrap();
//! let peer = Box::new(HttpPeer::new(upstream, false, String::new()));
//! # let _ = peer;
//! ```

mod backend;
mod backends;
pub mod discovery;
mod health;
pub mod health_check;
mod load_balancer;
mod metrics;
pub mod selection;

pub use backend::Backend;
pub use backends::Backends;
pub use health::BackendHealth;
pub use load_balancer::{LoadBalancer, PassiveHealth};

/// What a load-balancing program usually imports: [`LoadBalancer`],
/// [`selection::RoundRobin`] and [`health_check::TcpHealthCheck`].
pub mod prelude {
    pub use crate::health_check::TcpHealthCheck;
    pub use crate::selection::RoundRobin;
    pub use crate::LoadBalancer;
}
