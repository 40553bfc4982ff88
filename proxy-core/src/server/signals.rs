//! Where the server learns that it should stop: Unix signals by default, any
//! [`ShutdownSignalWatch`] in tests or embedded uses.

use async_trait::async_trait;
use log::{error, info};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How the server should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// SIGQUIT: hand the listening sockets to a new process started with
    /// `-u`, then drain as on SIGTERM (or keep serving if none takes them).
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

    /// Start listening for the signal now, before the services start, so
    /// one sent early is not missed. Called by [`super::Server::run`] inside
    /// a tokio runtime, before the first `recv`. Default: nothing.
    fn prepare(&self) {}
}

/// Waits for SIGINT, SIGTERM or SIGQUIT.
///
/// The handlers are installed by [`ShutdownSignalWatch::prepare`] (or the
/// first `recv`) and stay installed, so a signal that arrives between two
/// `recv` calls is kept for the next one rather than killing the process
/// (the default action of all three).
#[derive(Debug, Default)]
pub struct UnixShutdownSignalWatch {
    signals: parking_lot::Mutex<Option<Signals>>,
}

/// The three signal streams, registered once.
#[derive(Debug)]
struct Signals {
    int: Option<Signal>,
    term: Option<Signal>,
    quit: Option<Signal>,
}

impl Signals {
    fn register() -> Signals {
        Signals {
            int: register(SignalKind::interrupt(), "SIGINT"),
            term: register(SignalKind::terminate(), "SIGTERM"),
            quit: register(SignalKind::quit(), "SIGQUIT"),
        }
    }
}

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
    fn prepare(&self) {
        let mut slot = self.signals.lock();
        if slot.is_none() {
            *slot = Some(Signals::register());
        }
    }

    async fn recv(&self) -> ShutdownSignal {
        // taken out of the lock for the wait, put back afterwards
        let taken = self.signals.lock().take();
        let mut s = taken.unwrap_or_else(Signals::register);
        let signal = tokio::select! {
            _ = recv_opt(&mut s.int) => {
                info!("SIGINT received: fast shutdown");
                ShutdownSignal::FastShutdown
            }
            _ = recv_opt(&mut s.term) => {
                info!("SIGTERM received: graceful shutdown");
                ShutdownSignal::GracefulTerminate
            }
            _ = recv_opt(&mut s.quit) => {
                info!("SIGQUIT received: graceful upgrade");
                ShutdownSignal::GracefulUpgrade
            }
        };
        *self.signals.lock() = Some(s);
        signal
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
            shutdown_signal: Box::new(UnixShutdownSignalWatch::default()),
        }
    }
}

impl std::fmt::Debug for RunArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunArgs").finish_non_exhaustive()
    }
}
