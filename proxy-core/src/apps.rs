//! The trait a listening service drives: one call per accepted connection.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::protocols::Stream;
use crate::server::ShutdownWatch;

/// An application that serves accepted connections.
///
/// A listening service calls [`ServerApp::process_new`] once for every
/// connection it accepts, each on its own task of the service's runtime.
#[async_trait]
pub trait ServerApp {
    /// Serve one connection until it is done.
    ///
    /// `shutdown` turns `true` when the server begins a graceful shutdown: an
    /// app should finish the request in flight and then close (for HTTP/1.1,
    /// stop keep-alive). Returning `Some(stream)` hands the connection back
    /// to be served again from the start; `None` means it is closed.
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream>;

    /// Called once when the service stops.
    async fn cleanup(&self) {}
}

/// Settings of an HTTP server app's downstream side (Pingora's
/// `HttpServerOptions`, plus the downstream timeouts nginx users know as
/// `keepalive_timeout`, `client_header_timeout`, `client_body_timeout` and
/// `send_timeout`).
///
/// Build with `HttpServerOptions::default()` and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpServerOptions {
    /// How long an idle keep-alive connection waits for its next request, in
    /// seconds; `None` turns keep-alive off. Default 60.
    pub keepalive_timeout_seconds: Option<u64>,
    /// How long a request head may take, from its first byte to its end.
    /// Past it the connection is closed. Default 60 s.
    pub header_read_timeout: Option<Duration>,
    /// Bound on each read of a request body; past it the request fails with
    /// `ReadTimedout` (answered 408). Default 60 s.
    pub body_read_timeout: Option<Duration>,
    /// Bound on each write to the client; past it the connection is closed.
    /// Default 60 s.
    pub write_timeout: Option<Duration>,
    /// How many requests one connection may carry before it is closed;
    /// `None`: no limit (the default).
    pub keepalive_request_limit: Option<u32>,
    /// Serve cleartext HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) on
    /// plain listeners: a connection opening with the HTTP/2 preface is
    /// served as HTTP/2, any other as HTTP/1.x. Default `false`. (Over TLS,
    /// HTTP/2 is chosen by ALPN: `TlsSettings::enable_h2`.)
    pub h2c: bool,
}

impl Default for HttpServerOptions {
    fn default() -> Self {
        HttpServerOptions {
            keepalive_timeout_seconds: Some(60),
            header_read_timeout: Some(Duration::from_secs(60)),
            body_read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
            keepalive_request_limit: None,
            h2c: false,
        }
    }
}
