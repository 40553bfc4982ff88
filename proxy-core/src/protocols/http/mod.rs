//! HTTP wire protocols.
//!
//! [`v1`] is HTTP/1.1. [`ServerSession`] and [`client::HttpSession`] are the
//! protocol-agnostic wrappers the proxy uses (HTTP/2 variants come later).
//! [`hop_by_hop`] strips connection-specific headers when forwarding, and
//! [`error_resp`] builds canned error responses.

pub mod client;
pub mod error_resp;
pub mod hop_by_hop;
pub mod server;
pub mod v1;

pub use server::Session as ServerSession;
