//! Services: the long-running units a [`crate::server::Server`] runs, each on
//! its own runtime.
//!
//! - [`listening::Service`] binds listeners and hands every accepted
//!   connection to a [`crate::apps::ServerApp`].
//! - [`background::GenBackgroundService`] runs a [`background::BackgroundService`]
//!   task (health checks, discovery) until shutdown.

pub mod background;
pub mod listening;

use async_trait::async_trait;

use crate::error::Result;
use crate::server::{ListenFds, ShutdownWatch};

/// A unit of work the server starts on its own runtime and stops on shutdown.
#[async_trait]
pub trait Service: Send + Sync {
    /// Run the service until it is done or `shutdown` turns `true`.
    ///
    /// `listeners_per_fd` is how many accept tasks to run on each listening
    /// socket (`listener_tasks_per_fd` in the configuration); services that
    /// do not listen ignore it. The server waits for this future (up to the
    /// grace period) before it shuts the runtimes down, so a service should
    /// return once its in-flight work is finished after shutdown.
    async fn start_service(&mut self, shutdown: ShutdownWatch, listeners_per_fd: usize);

    /// Bind this service's listening sockets, before any runtime or thread
    /// starts (so before a daemon forks and before privileges are dropped).
    ///
    /// Called once by [`crate::server::Server`] on the main thread. A service
    /// takes the socket `fds` inherited from the previous process of a
    /// graceful upgrade for each address it has one for, binds the others,
    /// and records every socket in `fds` (see
    /// [`crate::server::ListenFds`]). Services that do not listen keep the
    /// default, which binds nothing. A service never given this call binds
    /// its addresses itself in `start_service`.
    ///
    /// # Errors
    /// `BindError` naming the address that cannot be bound.
    fn bind_listeners(&mut self, fds: &mut ListenFds) -> Result<()> {
        let _ = fds;
        Ok(())
    }

    /// The name of the service, for logs and thread names.
    fn name(&self) -> &str;

    /// Worker threads this service wants; `None` uses `threads` from the configuration.
    fn threads(&self) -> Option<usize> {
        None
    }
}
