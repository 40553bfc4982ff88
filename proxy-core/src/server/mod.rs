//! Server lifecycle: configuration, services, signals.
//!
//! ```no_run
//! use proxy_core::server::{configuration::Opt, Server};
//!
//! let mut server = Server::new(Some(Opt::parse_args())).unwrap();
//! server.bootstrap();
//! // server.add_service(...);
//! server.run_forever();
//! ```
//!
//! [`Server::run_forever`] starts every service on its own runtime and waits
//! for a signal: SIGINT stops at once; SIGTERM stops accepting, lets
//! in-flight connections finish for up to `grace_period_seconds`, then gives
//! the runtimes `graceful_shutdown_timeout_seconds` to stop; SIGQUIT
//! (graceful upgrade) is not implemented yet and drains like SIGTERM.

pub mod configuration;
pub mod runtime;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use log::{error, info, warn};
use tokio::sync::watch;

use crate::services::Service;
use configuration::{conf_for_opt, describe_conf_error, Opt, ServerConf};
use runtime::{BlockingPoolOpts, Runtime};
pub use signals::{RunArgs, ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch};

/// Watches for the start of a graceful shutdown: the value turns `true` when
/// the server stops accepting and asks apps to finish what is in flight.
pub type ShutdownWatch = tokio::sync::watch::Receiver<bool>;

/// The server: owns the configuration, the command-line options and the
/// services, and runs them until a shutdown signal.
pub struct Server {
    services: Vec<Box<dyn Service>>,
    shutdown_watch: watch::Sender<bool>,
    /// The configuration every service reads (`threads`, grace periods...).
    pub configuration: Arc<ServerConf>,
    /// The command-line options, when the server was made from them.
    pub options: Option<Opt>,
}

impl Server {
    /// A server from command-line options: loads the `-c` file (merged with
    /// the flags), or the defaults when there is none or `opt` is `None`.
    ///
    /// A command-line program should not panic on a bad configuration file:
    /// when `opt` is `Some` and its configuration cannot be loaded, this
    /// prints `error: <file>: line L column C: <key>: <problem>` to stderr and
    /// exits the process with code 1. Programs that want the error instead
    /// load the file with [`ServerConf::load_from_yaml`] and call
    /// [`Server::new_with_opt_and_conf`].
    ///
    /// # Errors
    /// None today; the `Result` is Pingora's signature.
    pub fn new(opt: impl Into<Option<Opt>>) -> crate::Result<Server> {
        let opt = opt.into();
        let conf = match &opt {
            Some(o) => match conf_for_opt(o) {
                Ok(conf) => conf,
                Err(e) => {
                    let msg = describe_conf_error(&e);
                    error!("{msg}");
                    eprintln!("error: {msg}");
                    std::process::exit(1);
                }
            },
            None => ServerConf {
                version: 1,
                ..Default::default()
            },
        };
        Ok(Self::new_with_opt_and_conf(opt, conf))
    }

    /// A server from options and an already loaded configuration; the
    /// options' flags are merged into it ([`ServerConf::merge_with_opt`]).
    pub fn new_with_opt_and_conf(raw_opt: impl Into<Option<Opt>>, mut conf: ServerConf) -> Server {
        let options = raw_opt.into();
        if let Some(opt) = &options {
            conf.merge_with_opt(opt);
        }
        let (shutdown_watch, _) = watch::channel(false);
        Server {
            services: Vec::new(),
            shutdown_watch,
            configuration: Arc::new(conf),
            options,
        }
    }

    /// Prepare to run. With `-t` (test), the configuration has already been
    /// loaded and validated by [`Server::new`]: this prints
    /// `configuration <file> OK` to stderr and exits with code 0.
    ///
    /// `-u` (upgrade) and `-d` (daemon) are not implemented yet: they are
    /// logged as warnings and the server runs in the foreground with fresh
    /// sockets.
    pub fn bootstrap(&mut self) {
        let Some(opt) = self.options.clone() else {
            return;
        };
        if opt.test {
            eprintln!("{}", self.test_report());
            info!("configuration test passed, exiting");
            std::process::exit(0);
        }
        if opt.upgrade {
            warn!("graceful upgrade (-u) is not implemented yet; binding fresh sockets");
        }
        if opt.daemon || self.configuration.daemon {
            warn!("daemon mode (-d) is not implemented yet; running in the foreground");
        }
    }

    /// The line `-t` prints.
    fn test_report(&self) -> String {
        match self.configuration.source_path() {
            Some(p) => format!("configuration {} OK", p.display()),
            None => "configuration OK (defaults)".to_string(),
        }
    }

    /// Add a service; it starts when the server runs.
    pub fn add_service(&mut self, service: impl Service + 'static) {
        self.services.push(Box::new(service));
    }

    /// Add a boxed service.
    pub fn add_boxed_service(&mut self, service: Box<dyn Service>) {
        self.services.push(service);
    }

    /// Add several boxed services.
    pub fn add_services(&mut self, services: Vec<Box<dyn Service>>) {
        self.services.extend(services);
    }

    /// Run the services until a Unix signal says stop (see the module docs),
    /// then exit the process with code 0.
    pub fn run_forever(self) -> ! {
        self.run(RunArgs::default());
        info!("server exited");
        std::process::exit(0)
    }

    /// Run the services until `run_args.shutdown_signal` says stop, shut
    /// them down as that signal asks, and return.
    ///
    /// Each service gets its own runtime: `threads` workers (the service's
    /// own count or `threads` from the configuration), work-stealing or not
    /// per `work_stealing`, threads named after the service. If a runtime
    /// cannot be built the error is printed and the process exits with code 1.
    ///
    /// On [`ShutdownSignal::GracefulTerminate`] the shutdown watch turns
    /// `true`, listeners stop accepting, and this waits until every service's
    /// `start_service` has returned (its connections finished) or
    /// `grace_period_seconds` have passed, then shuts each runtime down with
    /// `graceful_shutdown_timeout_seconds`. On [`ShutdownSignal::FastShutdown`]
    /// the runtimes are shut down at once.
    pub fn run(self, run_args: RunArgs) {
        let conf = self.configuration.clone();
        let blocking = BlockingPoolOpts {
            max_threads: conf.max_blocking_threads,
            thread_keep_alive: conf.blocking_threads_ttl_seconds.map(Duration::from_secs),
        };
        let mut runtimes = Vec::with_capacity(self.services.len());
        let mut running = Vec::with_capacity(self.services.len());
        for mut service in self.services {
            let name = service.name().to_string();
            let threads = service.threads().unwrap_or(conf.threads).max(1);
            let rt = if conf.work_stealing {
                Runtime::new_steal_with(threads, &name, blocking)
            } else {
                Runtime::new_no_steal_with(threads, &name, blocking)
            };
            let rt = rt.unwrap_or_else(|e| fatal(&format!("service {name}: {e}")));
            let shutdown = self.shutdown_watch.subscribe();
            let per_fd = conf.listener_tasks_per_fd;
            info!("starting service {name} with {threads} thread(s)");
            let task = rt.get_handle().spawn(async move {
                service.start_service(shutdown, per_fd).await;
            });
            running.push((name.clone(), task));
            runtimes.push(rt);
        }

        let main_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| fatal(&format!("building the signal runtime: {e}")));
        let signal = main_rt.block_on(run_args.shutdown_signal.recv());
        let runtime_timeout = match signal {
            ShutdownSignal::FastShutdown => {
                info!("fast shutdown");
                Duration::ZERO
            }
            ShutdownSignal::GracefulTerminate | ShutdownSignal::GracefulUpgrade => {
                if signal == ShutdownSignal::GracefulUpgrade {
                    warn!("graceful upgrade is not implemented yet; shutting down gracefully");
                }
                let grace = conf.grace_period();
                info!("graceful shutdown: draining for at most {grace:?}");
                self.shutdown_watch.send_replace(true);
                main_rt.block_on(wait_for_services(running, grace));
                conf.graceful_shutdown_timeout()
            }
        };
        // stop the runtimes side by side, so the timeouts do not add up
        let stopping: Vec<_> = runtimes
            .into_iter()
            .map(|rt| std::thread::spawn(move || rt.shutdown_timeout(runtime_timeout)))
            .collect();
        for t in stopping {
            if t.join().is_err() {
                error!("a runtime panicked while shutting down");
            }
        }
        info!("all runtimes stopped");
    }
}

/// Wait for every service's task, all within one `grace` deadline.
async fn wait_for_services(running: Vec<(String, tokio::task::JoinHandle<()>)>, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    for (name, task) in running {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(())) => info!("service {name} finished"),
            Ok(Err(e)) => error!("service {name} failed: {e}"),
            Err(_) => warn!("service {name} still busy at the end of the grace period"),
        }
    }
}

/// Report an error the server cannot run with and exit with code 1.
fn fatal(msg: &str) -> ! {
    error!("{msg}");
    eprintln!("error: {msg}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests;
