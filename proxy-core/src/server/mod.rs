//! Server lifecycle: configuration, services, signals.

/// Watches for the start of a graceful shutdown: the value turns `true` when
/// the server stops accepting and asks apps to finish what is in flight.
pub type ShutdownWatch = tokio::sync::watch::Receiver<bool>;
