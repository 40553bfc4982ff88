//! The trait a listening service drives: one call per accepted connection.

use std::sync::Arc;

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
