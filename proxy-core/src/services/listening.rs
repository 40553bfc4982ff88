//! The listening service: bind addresses, accept connections, hand each to a
//! [`ServerApp`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use proxy_core::apps::ServerApp;
//! use proxy_core::protocols::Stream;
//! use proxy_core::server::{Server, ShutdownWatch};
//! use proxy_core::services::listening::Service;
//!
//! struct Hello;
//!
//! #[async_trait]
//! impl ServerApp for Hello {
//!     async fn process_new(self: &Arc<Self>, mut io: Stream, _s: &ShutdownWatch) -> Option<Stream> {
//!         use tokio::io::AsyncWriteExt;
//!         let _ = io.write_all(b"hello\n").await;
//!         None
//!     }
//! }
//!
//! let mut server = Server::new(None).unwrap();
//! let mut service = Service::new("hello".to_string(), Hello);
//! service.add_tcp("127.0.0.1:6190");
//! server.add_service(service);
//! server.run_forever();
//! ```

use std::fs::Permissions;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{debug, error, info, warn};
use tokio::sync::{watch, Notify};

use crate::apps::ServerApp;
use crate::error::{Error, ErrorType::*, Result};
use crate::listeners::{
    BindRetry, BoundListener, ListenerEndpoint, Listeners, ServerAddress, TcpSocketOptions,
};
use crate::metrics::connections::{self, LiveCount};
use crate::protocols::{SocketAddr, Stream};
use crate::server::runtime::current_handle;
use crate::server::{ListenFds, ShutdownWatch};
use crate::tls::{TlsAcceptor, TlsSettings};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A service that listens on TCP and Unix sockets and serves every accepted
/// connection with the app `A`, one task per connection.
pub struct Service<A> {
    name: String,
    listeners: Listeners,
    app_logic: Option<Arc<A>>,
    /// Worker threads of this service's runtime; `None` uses `threads` from
    /// the configuration.
    pub threads: Option<usize>,
    bound: watch::Sender<Vec<SocketAddr>>,
    bind_retry: BindRetry,
    /// Sockets bound by [`crate::services::Service::bind_listeners`], taken
    /// when the service starts.
    prebound: Option<Vec<BoundListener>>,
}

impl<A> Service<A> {
    /// A service named `name` serving connections with `app_logic`; add
    /// addresses with [`Service::add_tcp`] and [`Service::add_uds`].
    pub fn new(name: String, app_logic: A) -> Self {
        Self::with_listeners(name, Listeners::new(), app_logic)
    }

    /// A service named `name` on the given listeners.
    pub fn with_listeners(name: String, listeners: Listeners, app_logic: A) -> Self {
        Service {
            name,
            listeners,
            app_logic: Some(Arc::new(app_logic)),
            threads: None,
            bound: watch::Sender::new(Vec::new()),
            bind_retry: BindRetry::default(),
            prebound: None,
        }
    }

    /// Listen on a TCP `ip:port` (`0.0.0.0:6188`, `[::]:443`) with the
    /// default socket options ([`crate::listeners::Listeners::add_tcp`]:
    /// the system's, and `TCP_NOTSENT_LOWAT` at 32 KiB).
    pub fn add_tcp(&mut self, addr: &str) {
        self.listeners.add_tcp(addr);
    }

    /// Listen on a TCP `ip:port` with socket options.
    pub fn add_tcp_with_settings(&mut self, addr: &str, sock_opt: TcpSocketOptions) {
        self.listeners.add_tcp_with_settings(addr, sock_opt);
    }

    /// Listen on a Unix socket at `path`, with the socket file's permissions
    /// (default `0o666`).
    pub fn add_uds(&mut self, path: &str, perms: Option<Permissions>) {
        self.listeners.add_uds(path, perms);
    }

    /// Listen on a TCP `ip:port` with TLS: Mozilla's intermediate profile
    /// (TLS 1.2 and 1.3) and the PEM certificate chain (leaf then
    /// intermediates) and key at `cert_path` / `key_path`.
    ///
    /// # Errors
    /// `FileReadError` / `InvalidCert` naming the file when it is missing,
    /// unreadable, malformed, or the key does not match the certificate.
    pub fn add_tls(&mut self, addr: &str, cert_path: &str, key_path: &str) -> Result<()> {
        self.listeners.add_tls(addr, cert_path, key_path)
    }

    /// Listen on a TCP `ip:port` with TLS as `settings` say (certificate
    /// callbacks, client certificates, reload: see [`TlsSettings`]).
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        sock_opt: Option<TcpSocketOptions>,
        settings: TlsSettings,
    ) {
        self.listeners
            .add_tls_with_settings(addr, sock_opt, settings);
    }

    /// Listen on any address.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.listeners.add_address(addr);
    }

    /// The addresses this service will listen on, as given.
    pub fn endpoints(&self) -> &[ServerAddress] {
        self.listeners.endpoints()
    }

    /// The app.
    pub fn app_logic(&self) -> Option<&A> {
        self.app_logic.as_deref()
    }

    /// The app, mutably: `None` once the service has started (the app is then shared).
    pub fn app_logic_mut(&mut self) -> Option<&mut A> {
        self.app_logic.as_mut().and_then(Arc::get_mut)
    }

    /// The addresses actually bound, in the order added: empty until the
    /// service has bound them all. With `127.0.0.1:0` this tells which port
    /// the kernel chose, e.g. for tests:
    /// `rx.wait_for(|a| !a.is_empty()).await`.
    pub fn bound_addrs(&self) -> watch::Receiver<Vec<SocketAddr>> {
        self.bound.subscribe()
    }
}

impl<A: ServerApp + Send + Sync + 'static> Service<A> {
    /// Bind, accept until shutdown, wait for the live connections, clean up.
    async fn run(&mut self, shutdown: ShutdownWatch, listeners_per_fd: usize) -> Result<()> {
        let app = match &self.app_logic {
            Some(app) => app.clone(),
            None => return Error::e_explain(InternalError, "listening service has no app"),
        };
        let endpoints = match self.prebound.take() {
            Some(bound) => bound
                .into_iter()
                .map(BoundListener::into_endpoint)
                .collect::<Result<Vec<_>>>(),
            None => self.listeners.build_with_retry(self.bind_retry).await,
        }
        .map_err(|e| e.more_context(format!("service {}", self.name)))?;
        self.bound
            .send_replace(endpoints.iter().map(|e| e.local_addr().clone()).collect());
        if endpoints.is_empty() {
            warn!("service {}: no address to listen on", self.name);
        }

        let tracker = Arc::new(ConnTracker::default());
        let live: Arc<dyn LiveCount> = tracker.clone();
        connections::track_active(&self.name, Arc::downgrade(&live));
        let mut accept_tasks = Vec::new();
        for (index, endpoint) in endpoints.into_iter().enumerate() {
            let tls = self.listeners.tls_acceptor(index).cloned().map(Arc::new);
            info!(
                "service {}: listening on {}{}",
                self.name,
                endpoint.local_addr(),
                if tls.is_some() { " (TLS)" } else { "" }
            );
            let endpoint = Arc::new(endpoint);
            for _ in 0..listeners_per_fd.max(1) {
                accept_tasks.push(current_handle().spawn(accept_loop(
                    endpoint.clone(),
                    tls.clone(),
                    app.clone(),
                    shutdown.clone(),
                    tracker.clone(),
                )));
            }
        }
        // the accept tasks own the listening sockets: once they are all done
        // the sockets are closed and no new connection is accepted
        for task in accept_tasks {
            if let Err(e) = task.await {
                error!("service {}: accept task failed: {e}", self.name);
            }
        }
        info!(
            "service {}: stopped accepting, waiting for {} connection(s)",
            self.name,
            tracker.live()
        );
        tracker.wait_idle().await;
        app.cleanup().await;
        info!("service {}: stopped", self.name);
        Ok(())
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> crate::services::Service for Service<A> {
    /// Bind every address, accept until `shutdown` turns `true`, then wait
    /// for the live connections to end and call the app's `cleanup`.
    ///
    /// A proxy that cannot listen must not run silently: if an address cannot
    /// be bound, the error is logged and printed to stderr and the process
    /// exits with code 1.
    async fn start_service(&mut self, shutdown: ShutdownWatch, listeners_per_fd: usize) {
        if let Err(e) = self.run(shutdown, listeners_per_fd).await {
            error!("{e}");
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }

    /// Bind (or take from `fds`) every address of this service, in order.
    fn bind_listeners(&mut self, fds: &mut ListenFds) -> Result<()> {
        let bound = self
            .listeners
            .bind_all(self.bind_retry, fds)
            .map_err(|e| e.more_context(format!("service {}", self.name)))?;
        self.prebound = Some(bound);
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

/// Accept on `endpoint` until shutdown, spawning a task per connection.
async fn accept_loop<A: ServerApp + Send + Sync + 'static>(
    endpoint: Arc<ListenerEndpoint>,
    tls: Option<Arc<TlsAcceptor>>,
    app: Arc<A>,
    mut shutdown: ShutdownWatch,
    tracker: Arc<ConnTracker>,
) {
    if *shutdown.borrow_and_update() {
        return;
    }
    loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                // a dropped sender means the server is gone: stop as well
                if changed.is_err() || *shutdown.borrow_and_update() {
                    debug!("stop accepting on {}", endpoint.address());
                    return;
                }
            }
            accepted = endpoint.accept() => match accepted {
                Ok(stream) => {
                    let guard = tracker.enter();
                    let app = app.clone();
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    current_handle().spawn(async move {
                        let _guard = guard;
                        // the handshake runs here, on the connection's task,
                        // so a slow client never holds up the accept loop
                        let stream = match tls {
                            // boxed: its future would otherwise size the
                            // task of every connection, for its whole life
                            Some(tls) => match Box::pin(tls.handshake(stream)).await {
                                Ok(s) => s,
                                Err(e) => {
                                    debug!("{e}");
                                    return;
                                }
                            },
                            None => stream,
                        };
                        serve_connection(app, stream, &shutdown).await;
                    });
                }
                Err(e) => {
                    warn!("{e}");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            }
        }
    }
}

/// Serve one connection, again and again while the app hands it back.
async fn serve_connection<A: ServerApp + Send + Sync + 'static>(
    app: Arc<A>,
    mut stream: Stream,
    shutdown: &ShutdownWatch,
) {
    while let Some(reused) = app.process_new(stream, shutdown).await {
        stream = reused;
    }
}

/// Counts the live connection tasks of a service, so shutdown can wait for them.
#[derive(Debug, Default)]
struct ConnTracker {
    live: AtomicUsize,
    idle: Notify,
}

impl ConnTracker {
    fn enter(self: &Arc<Self>) -> ConnGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        ConnGuard(self.clone())
    }

    /// Wait until no connection is live.
    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // register before checking, so a drop in between is not missed
            notified.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl LiveCount for ConnTracker {
    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// Held by a connection task; its drop (even on panic) counts the connection out.
#[derive(Debug)]
struct ConnGuard(Arc<ConnTracker>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::services::Service as _;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::AtomicBool;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpStream, UnixStream};

    const T: Duration = Duration::from_secs(10);

    /// Echoes bytes back until the client closes.
    #[derive(Default)]
    struct Echo {
        cleaned_up: AtomicBool,
        connections: AtomicUsize,
    }

    #[async_trait]
    impl ServerApp for Echo {
        async fn process_new(
            self: &Arc<Self>,
            mut io: Stream,
            _s: &ShutdownWatch,
        ) -> Option<Stream> {
            self.connections.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            return None;
                        }
                    }
                }
            }
        }
        async fn cleanup(&self) {
            self.cleaned_up.store(true, Ordering::SeqCst);
        }
    }

    fn temp_sock(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("proxy-core-svc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name).display().to_string()
    }

    async fn echo_round_trip<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        s: &mut S,
        msg: &[u8],
    ) {
        s.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(T, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, msg);
    }

    #[tokio::test]
    async fn serves_tcp_and_uds_then_drains_on_shutdown() {
        let uds = temp_sock("echo.sock");
        let mut svc = Service::new("echo".to_string(), Echo::default());
        svc.add_tcp("127.0.0.1:0");
        svc.add_uds(&uds, Some(Permissions::from_mode(0o600)));
        assert_eq!(svc.endpoints().len(), 2);
        let mut bound = svc.bound_addrs();
        let app = svc.app_logic.clone().unwrap();
        let (tx, rx) = watch::channel(false);
        let run = tokio::spawn(async move { svc.start_service(rx, 2).await });

        let addrs = tokio::time::timeout(T, bound.wait_for(|a| !a.is_empty()))
            .await
            .unwrap()
            .unwrap()
            .clone();
        let tcp_addr = *addrs[0].as_inet().unwrap();
        assert_eq!(addrs[1], SocketAddr::Unix(Some(uds.clone().into())));
        let mode = std::fs::metadata(&uds).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let mut tcp = TcpStream::connect(tcp_addr).await.unwrap();
        echo_round_trip(&mut tcp, b"over tcp").await;
        let mut unix = UnixStream::connect(&uds).await.unwrap();
        echo_round_trip(&mut unix, b"over uds").await;
        assert_eq!(app.connections.load(Ordering::SeqCst), 2);

        tx.send(true).unwrap();
        // the listening sockets close: new TCP connections are refused
        tokio::time::timeout(T, async {
            while TcpStream::connect(tcp_addr).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        // in-flight connections keep being served and hold the service open
        echo_round_trip(&mut tcp, b"still here").await;
        assert!(!run.is_finished());
        assert!(!app.cleaned_up.load(Ordering::SeqCst));

        drop(tcp);
        drop(unix);
        tokio::time::timeout(T, run).await.unwrap().unwrap();
        assert!(app.cleaned_up.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn already_shut_down_service_returns_without_accepting() {
        let mut svc = Service::new("idle".to_string(), Echo::default());
        svc.add_tcp("127.0.0.1:0");
        let app = svc.app_logic.clone().unwrap();
        let (_tx, rx) = watch::channel(true);
        tokio::time::timeout(T, svc.start_service(rx, 1))
            .await
            .unwrap();
        assert!(app.cleaned_up.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn bind_failure_is_returned_naming_service_and_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let mut svc = Service::new("clash".to_string(), Echo::default());
        svc.bind_retry = BindRetry {
            attempts: 1,
            delay: Duration::ZERO,
        };
        svc.add_tcp(&addr);
        let (_tx, rx) = watch::channel(false);
        let e = svc.run(rx, 1).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("service clash") && msg.contains(&addr),
            "{msg}"
        );
    }

    #[test]
    fn app_logic_mut_is_available_before_start() {
        let mut svc = Service::new("m".to_string(), Echo::default());
        assert!(svc.app_logic_mut().is_some());
        assert!(svc.app_logic().is_some());
        let _shared = svc.app_logic.clone();
        assert!(svc.app_logic_mut().is_none());
    }

    #[tokio::test]
    async fn tracker_waits_for_every_guard() {
        let t = Arc::new(ConnTracker::default());
        let g1 = t.enter();
        let g2 = t.enter();
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.wait_idle().await })
        };
        drop(g1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(g2);
        tokio::time::timeout(T, waiter).await.unwrap().unwrap();
        assert_eq!(t.live(), 0);
    }
}
