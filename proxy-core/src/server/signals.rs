//! Where the server learns that it should stop: Unix signals by default, any
//! [`ShutdownSignalWatch`] in tests or embedded uses.

use async_trait::async_trait;
use log::{error, info};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How the server should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// SIGQUIT: hand the listening sockets to a new process, then drain.
    /// Not implemented yet: treated as [`ShutdownSignal::GracefulTerminate`].
    GracefulUpgrade,
    /// SIGTERM: stop accepting, let in-flight connections finish within the
    /// grace period, then stop.
    GracefulTerminate,
    /// SIGINT: stop now.
    FastShutdown,
}

/// A source of the shutdown decision.
#[async_trait]
pub trait ShutdownSignalWatch {
    /// Wait until the server should stop, and say how.
    ///
    /// # Cancel safety
    /// Called once per run; a dropped call loses nothing the next call needs.
    async fn recv(&self) -> ShutdownSignal;
}

/// Waits for SIGINT, SIGTERM or SIGQUIT.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnixShutdownSignalWatch;

/// Wait for one signal; a signal that could not be registered never fires.
async fn recv_opt(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

fn register(kind: SignalKind, name: &str) -> Option<Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            error!("cannot watch {name}: {e}");
            None
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for UnixShutdownSignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        let mut int = register(SignalKind::interrupt(), "SIGINT");
        let mut term = register(SignalKind::terminate(), "SIGTERM");
        let mut quit = register(SignalKind::quit(), "SIGQUIT");
        tokio::select! {
            _ = recv_opt(&mut int) => {
                info!("SIGINT received: fast shutdown");
                ShutdownSignal::FastShutdown
            }
            _ = recv_opt(&mut term) => {
                info!("SIGTERM received: graceful shutdown");
                ShutdownSignal::GracefulTerminate
            }
            _ = recv_opt(&mut quit) => {
                info!("SIGQUIT received: graceful upgrade");
                ShutdownSignal::GracefulUpgrade
            }
        }
    }
}

/// Arguments of [`super::Server::run`].
pub struct RunArgs {
    /// Where the shutdown decision comes from; default [`UnixShutdownSignalWatch`].
    pub shutdown_signal: Box<dyn ShutdownSignalWatch + Send>,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            shutdown_signal: Box::new(UnixShutdownSignalWatch),
        }
    }
}

impl std::fmt::Debug for RunArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunArgs").finish_non_exhaustive()
    }
}
