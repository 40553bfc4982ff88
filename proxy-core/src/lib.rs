//! # proxy-core
//!
//! The foundation of the proxy framework: the [`Error`] type, HTTP header
//! types, the server lifecycle, listeners, the HTTP/1 wire protocol,
//! upstream connectors, connection pools and peers. It knows nothing of the
//! proxy phases (`proxy-http`), the cache or the load balancer.

pub mod apps;
pub mod error;
pub mod http;
pub mod protocols;
pub mod server;

pub use error::{
    BError, Error, ErrorSource, ErrorType, ErrorType::*, OkOrErr, OrErr, Result, RetryType,
};
