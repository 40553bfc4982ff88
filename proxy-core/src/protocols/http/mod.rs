//! HTTP wire protocols.
//!
//! [`v1`] is HTTP/1.1, [`v2`] HTTP/2 (server and client). [`ServerSession`]
//! and [`client::HttpSession`] are the protocol-agnostic wrappers the proxy
//! uses.
//! [`hop_by_hop`] strips connection-specific headers when forwarding, and
//! [`error_resp`] builds canned error responses.

pub mod client;
pub mod error_resp;
pub mod hop_by_hop;
pub mod server;
pub mod v1;
pub mod v2;

pub use server::Session as ServerSession;
