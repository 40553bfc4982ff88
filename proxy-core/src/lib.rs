//! # proxy-core
//!
//! The foundation of the proxy framework: the [`Error`] type, HTTP header
//! types, the server lifecycle, listeners, the HTTP/1 wire protocol,
//! upstream connectors, connection pools and peers. It knows nothing of the
//! proxy phases (`proxy-http`), the cache or the load balancer.

pub mod apps;
pub mod connectors;
pub mod error;
pub mod http;
pub mod listeners;
pub mod metrics;
pub mod pools;
pub mod protocols;
pub mod server;
pub mod services;
pub mod tls;
pub mod upstreams;

pub use error::{
    BError, Error, ErrorSource, ErrorType, ErrorType::*, OkOrErr, OrErr, Result, RetryType,
};

/// What a program built on the framework usually imports: the server, its
/// command line, the peer type, background services, the header types and
/// the error types.
pub mod prelude {
    pub use crate::error::{
        BError, Error, ErrorSource, ErrorType, ErrorType::*, OkOrErr, OrErr, Result, RetryType,
    };
    pub use crate::http::prelude::*;
    pub use crate::server::configuration::Opt;
    pub use crate::server::Server;
    pub use crate::services::background::background_service;
    pub use crate::upstreams::peer::HttpPeer;
}
