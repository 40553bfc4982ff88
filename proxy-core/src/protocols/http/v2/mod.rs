//! HTTP/2 (RFC 9113) on the `h2` crate: the server side (downstream) and
//! the client side ([`client`], upstream).
//!
//! [`H2Options`] holds the SETTINGS a server announces and its defences;
//! [`handshake`] starts a connection; each stream the client opens becomes a
//! [`server::HttpSession`], one request and its response, which the
//! protocol-agnostic [`ServerSession`](super::ServerSession) wraps.
//! [`prior_knowledge`] detects cleartext HTTP/2 (h2c) by its preface.
//! [`client::handshake`] opens an upstream connection shared by many
//! [`client::HttpSession`]s, one per request.

pub mod client;
pub mod coalesce;
pub mod convert;
pub mod options;
pub mod prior_knowledge;
mod send_body;
pub mod server;

pub use options::H2Options;
pub use server::{handshake, H2Connection, HttpSession};
