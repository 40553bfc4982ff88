//! HTTP/1.1 (RFC 9112) over any [`Stream`](crate::protocols::Stream), parsed with httparse.
//!
//! [`server::HttpSession`] reads requests and writes responses for a
//! downstream client; [`client::HttpSession`] writes requests and reads
//! responses from an upstream. They share the head parser ([`head`]), the
//! body framing state machines ([`body`]), the chunked coding ([`chunked`])
//! and the connection rules ([`common`]). Bodies always stream in pieces of
//! at most [`common::BODY_BUF_LIMIT`] bytes.

pub mod body;
pub mod chunked;

pub mod client;
pub mod common;
pub mod head;
pub(crate) mod idle_timer;
pub mod server;
