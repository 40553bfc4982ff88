//! HTTP/2 (RFC 9113) downstream: the server side, on the `h2` crate.
//!
//! [`H2Options`] holds the SETTINGS a server announces and its defences;
//! [`handshake`] starts a connection; each stream the client opens becomes a
//! [`server::HttpSession`], one request and its response, which the
//! protocol-agnostic [`ServerSession`](super::ServerSession) wraps.
//! [`prior_knowledge`] detects cleartext HTTP/2 (h2c) by its preface.

pub mod convert;
pub mod options;
pub mod prior_knowledge;
pub mod server;

pub use options::H2Options;
pub use server::{handshake, H2Connection, HttpSession};
