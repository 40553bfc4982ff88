//! Background services: a task that runs for the life of the server (health
//! checks, service discovery, metrics push) on its own runtime.
//!
//! ```
//! use async_trait::async_trait;
//! use proxy_core::server::ShutdownWatch;
//! use proxy_core::services::background::{background_service, BackgroundService};
//!
//! struct Ticker;
//!
//! #[async_trait]
//! impl BackgroundService for Ticker {
//!     async fn start(&self, mut shutdown: ShutdownWatch) {
//!         // do periodic work until the server shuts down
//!         let _ = shutdown.changed().await;
//!     }
//! }
//!
//! let service = background_service("ticker", Ticker);
//! let _task = service.task(); // an Arc<Ticker> to share with other services
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use super::Service;
use crate::server::ShutdownWatch;

/// A task that runs in the background until shutdown.
#[async_trait]
pub trait BackgroundService {
    /// Run until `shutdown` turns `true` (or the work is done). The server
    /// waits for this to return, up to the grace period, when it shuts down.
    async fn start(&self, shutdown: ShutdownWatch);
}

/// A [`Service`] running one [`BackgroundService`].
#[derive(Debug)]
pub struct GenBackgroundService<A> {
    name: String,
    task: Arc<A>,
    /// Worker threads of this service's runtime; `None` uses `threads` from
    /// the configuration.
    pub threads: Option<usize>,
}

impl<A> GenBackgroundService<A> {
    /// Wrap `task` as a service named `name`.
    pub fn new(name: String, task: Arc<A>) -> Self {
        GenBackgroundService {
            name,
            task,
            threads: None,
        }
    }

    /// The task, shared: keep a clone to read the task's state from
    /// elsewhere (e.g. a load balancer updated by its health checks).
    pub fn task(&self) -> Arc<A> {
        self.task.clone()
    }
}

#[async_trait]
impl<A> Service for GenBackgroundService<A>
where
    A: BackgroundService + Send + Sync + 'static,
{
    async fn start_service(&mut self, shutdown: ShutdownWatch, _listeners_per_fd: usize) {
        self.task.start(shutdown).await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

/// A [`GenBackgroundService`] named `name` running `task`.
pub fn background_service<A>(name: &str, task: A) -> GenBackgroundService<A> {
    GenBackgroundService::new(name.to_string(), Arc::new(task))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[derive(Default)]
    struct Counter {
        started: AtomicUsize,
        stopped: AtomicUsize,
    }

    #[async_trait]
    impl BackgroundService for Counter {
        async fn start(&self, mut shutdown: ShutdownWatch) {
            self.started.fetch_add(1, Ordering::SeqCst);
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
            self.stopped.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn background_service_runs_task_until_shutdown() {
        let mut svc = background_service("counter", Counter::default());
        svc.threads = Some(2);
        assert_eq!(svc.name(), "counter");
        assert_eq!(Service::threads(&svc), Some(2));
        let task = svc.task();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(async move { svc.start_service(rx, 1).await });
        tokio::time::timeout(Duration::from_secs(10), async {
            while task.started.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(task.stopped.load(Ordering::SeqCst), 0);
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.stopped.load(Ordering::SeqCst), 1);
    }
}
