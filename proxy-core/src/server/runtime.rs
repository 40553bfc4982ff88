//! The tokio runtimes services run on.
//!
//! [`Runtime::Steal`] is one multi-thread, work-stealing runtime.
//! [`Runtime::NoSteal`] is N single-thread runtimes, each on its own OS
//! thread; a task spawned through [`current_handle`] from inside one of them
//! lands on one of the N picked round-robin, so connections spread across
//! threads and then stay on the thread that accepted them.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{error, warn};
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::error::{ErrorType::*, OrErr, Result};

/// A service's runtime: work-stealing or N single-thread runtimes.
#[derive(Debug)]
pub enum Runtime {
    /// One multi-thread runtime.
    Steal(tokio::runtime::Runtime),
    /// N single-thread runtimes.
    NoSteal(NoStealRuntime),
}

impl Runtime {
    /// A work-stealing runtime with `threads` workers (at least 1) named `name`.
    ///
    /// # Errors
    /// [`crate::ErrorType::InternalError`] when the OS refuses the threads.
    pub fn new_steal(threads: usize, name: &str) -> Result<Self> {
        Self::new_steal_with(threads, name, BlockingPoolOpts::default())
    }

    /// [`Runtime::new_steal`] with blocking-pool options.
    ///
    /// # Errors
    /// [`crate::ErrorType::InternalError`] when the OS refuses the threads.
    pub fn new_steal_with(threads: usize, name: &str, blocking: BlockingPoolOpts) -> Result<Self> {
        let mut builder = Builder::new_multi_thread();
        builder
            .enable_all()
            .worker_threads(threads.max(1))
            .thread_name(name);
        // Fairness under many connections: a worker's local run queue holds
        // 256 tasks and the rest wait in the global queue, which tokio polls
        // only every ~31 ticks by default, so those connections starve. With
        // 1000 connections on one worker that made p99 192 ms (p50 7 ms);
        // checking the global queue every tick gave p99 48 ms, below nginx's
        // 57 ms, at no cost with 64 connections (bench/run.sh --cases c1000,http).
        builder.global_queue_interval(1);
        blocking.apply(&mut builder);
        builder
            .build()
            .map(Runtime::Steal)
            .or_err_with(InternalError, || format!("building runtime {name}"))
    }

    /// `threads` single-thread runtimes (at least 1), on threads named `name-<i>`
    /// (`name` when there is one).
    ///
    /// # Errors
    /// [`crate::ErrorType::InternalError`] when the OS refuses a thread or a runtime.
    pub fn new_no_steal(threads: usize, name: &str) -> Result<Self> {
        Self::new_no_steal_with(threads, name, BlockingPoolOpts::default())
    }

    /// [`Runtime::new_no_steal`] with blocking-pool options (per runtime).
    ///
    /// # Errors
    /// [`crate::ErrorType::InternalError`] when the OS refuses a thread or a runtime.
    pub fn new_no_steal_with(
        threads: usize,
        name: &str,
        blocking: BlockingPoolOpts,
    ) -> Result<Self> {
        NoStealRuntime::new(threads.max(1), name, blocking).map(Runtime::NoSteal)
    }

    /// A handle to spawn on: the runtime itself, or for `NoSteal` the next
    /// single-thread runtime in round-robin order.
    pub fn get_handle(&self) -> Handle {
        match self {
            Runtime::Steal(rt) => rt.handle().clone(),
            Runtime::NoSteal(rt) => rt.pools.next(),
        }
    }

    /// Stop the runtime: tasks still running after `timeout` are abandoned
    /// (dropped at their next `.await`); blocks the calling thread for at most
    /// about `timeout`.
    pub fn shutdown_timeout(self, timeout: Duration) {
        match self {
            Runtime::Steal(rt) => rt.shutdown_timeout(timeout),
            Runtime::NoSteal(rt) => rt.shutdown_timeout(timeout),
        }
    }
}

/// Options of a runtime's blocking-thread pool (`spawn_blocking`); `None`
/// keeps tokio's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockingPoolOpts {
    /// Most blocking threads (`max_blocking_threads`; tokio's default 512). Must not be 0.
    pub max_threads: Option<usize>,
    /// How long an idle blocking thread is kept (`blocking_threads_ttl_seconds`; tokio's default 10 s).
    pub thread_keep_alive: Option<Duration>,
}

impl BlockingPoolOpts {
    fn apply(&self, builder: &mut Builder) {
        if let Some(n) = self.max_threads {
            // tokio panics on 0; ServerConf::validate rejects it, guard anyway
            builder.max_blocking_threads(n.max(1));
        }
        if let Some(ttl) = self.thread_keep_alive {
            builder.thread_keep_alive(ttl);
        }
    }
}

/// The handles of a set of single-thread runtimes, picked round-robin.
#[derive(Debug)]
struct Pools {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Pools {
    fn next(&self) -> Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len().max(1);
        match self.handles.get(i) {
            Some(h) => h.clone(),
            // handles is never empty (at least one runtime is built); fall back anyway
            None => Handle::current(),
        }
    }
}

thread_local! {
    /// Set on each thread of a [`NoStealRuntime`]: its sibling runtimes.
    static NO_STEAL_POOLS: RefCell<Option<Arc<Pools>>> = const { RefCell::new(None) };
}

/// Where to spawn a new task: from a thread of a [`Runtime::NoSteal`], the
/// next of its single-thread runtimes (round-robin); otherwise the current
/// runtime.
///
/// # Panics
/// Like [`Handle::current`], when called outside any tokio runtime.
pub fn current_handle() -> Handle {
    NO_STEAL_POOLS
        .with(|p| p.borrow().as_ref().map(|pools| pools.next()))
        .unwrap_or_else(Handle::current)
}

/// N single-thread runtimes, each driven by its own OS thread.
#[derive(Debug)]
pub struct NoStealRuntime {
    pools: Arc<Pools>,
    threads: Vec<(oneshot::Sender<Duration>, JoinHandle<()>)>,
}

impl NoStealRuntime {
    fn new(threads: usize, name: &str, blocking: BlockingPoolOpts) -> Result<Self> {
        let mut handles = Vec::with_capacity(threads);
        let mut runtimes = Vec::with_capacity(threads);
        for _ in 0..threads {
            let mut builder = Builder::new_current_thread();
            builder.enable_all();
            blocking.apply(&mut builder);
            let rt = builder
                .build()
                .or_err_with(InternalError, || format!("building runtime {name}"))?;
            handles.push(rt.handle().clone());
            runtimes.push(rt);
        }
        let pools = Arc::new(Pools {
            handles,
            next: AtomicUsize::new(0),
        });
        let mut out = Vec::with_capacity(threads);
        for (i, rt) in runtimes.into_iter().enumerate() {
            let (stop_tx, stop_rx) = oneshot::channel::<Duration>();
            let thread_pools = pools.clone();
            // one thread is named like a one-worker work-stealing runtime's
            let thread_name = if threads == 1 {
                name.to_owned()
            } else {
                format!("{name}-{i}")
            };
            let join = std::thread::Builder::new()
                .name(thread_name)
                .spawn(move || {
                    NO_STEAL_POOLS.with(|p| *p.borrow_mut() = Some(thread_pools));
                    // drive the runtime until told to stop; a dropped sender means stop now
                    let timeout = rt.block_on(stop_rx).unwrap_or(Duration::ZERO);
                    rt.shutdown_timeout(timeout);
                })
                .or_err_with(InternalError, || format!("spawning a thread of {name}"))?;
            out.push((stop_tx, join));
        }
        Ok(NoStealRuntime {
            pools,
            threads: out,
        })
    }

    fn shutdown_timeout(self, timeout: Duration) {
        let mut joins = Vec::with_capacity(self.threads.len());
        for (stop, join) in self.threads {
            if stop.send(timeout).is_err() {
                warn!("a runtime thread stopped before shutdown");
            }
            joins.push(join);
        }
        for join in joins {
            if join.join().is_err() {
                error!("a runtime thread panicked");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn steal_runtime_runs_tasks_on_named_threads() {
        let rt = Runtime::new_steal(2, "svc-steal").unwrap();
        let name = rt
            .get_handle()
            .block_on(async {
                tokio::spawn(async { std::thread::current().name().map(String::from) }).await
            })
            .unwrap();
        assert_eq!(name.as_deref(), Some("svc-steal"));
        rt.shutdown_timeout(Duration::from_secs(1));
    }

    #[test]
    fn no_steal_spreads_tasks_spawned_via_current_handle_across_threads() {
        let rt = Runtime::new_no_steal(3, "svc-nosteal").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.get_handle().spawn(async move {
            let mut joins = vec![];
            for _ in 0..6 {
                joins.push(
                    current_handle()
                        .spawn(async { std::thread::current().name().map(String::from) }),
                );
            }
            let mut names = HashSet::new();
            for j in joins {
                names.insert(j.await.unwrap().unwrap());
            }
            tx.send(names).unwrap();
        });
        let names = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let expected: HashSet<String> = (0..3).map(|i| format!("svc-nosteal-{i}")).collect();
        assert_eq!(names, expected);
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}
