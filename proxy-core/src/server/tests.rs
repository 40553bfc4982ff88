#![allow(clippy::unwrap_used)]

use super::*;
use crate::apps::ServerApp;
use crate::protocols::{SocketAddr, Stream};
use crate::services::background::{background_service, BackgroundService};
use crate::services::listening;
use async_trait::async_trait;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

const T: Duration = Duration::from_secs(10);

/// Echoes until the client closes, and reports the thread that served it.
struct Echo;

#[async_trait]
impl ServerApp for Echo {
    async fn process_new(self: &Arc<Self>, mut io: Stream, _s: &ShutdownWatch) -> Option<Stream> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 256];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    let thread = std::thread::current().name().unwrap_or("").to_string();
                    let mut reply = buf[..n].to_vec();
                    reply.extend_from_slice(format!(" from {thread}\n").as_bytes());
                    if io.write_all(&reply).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct Watcher {
    saw_shutdown: AtomicBool,
}

#[async_trait]
impl BackgroundService for Watcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.wait_for(|v| *v).await.is_ok() {
            self.saw_shutdown.store(true, Ordering::SeqCst);
        }
    }
}

/// A shutdown signal the test fires through a channel.
struct TestSignal(parking_lot::Mutex<Option<tokio::sync::oneshot::Receiver<ShutdownSignal>>>);

#[async_trait]
impl ShutdownSignalWatch for TestSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().take();
        match rx {
            Some(rx) => rx.await.unwrap_or(ShutdownSignal::FastShutdown),
            None => ShutdownSignal::FastShutdown,
        }
    }
}

struct Running {
    addr: std::net::SocketAddr,
    signal: Option<tokio::sync::oneshot::Sender<ShutdownSignal>>,
    done: mpsc::Receiver<()>,
    watcher: Arc<Watcher>,
}

/// Start a server with an echo service on 127.0.0.1:0 and a background
/// service, on its own thread; returns once the echo service listens.
fn start(conf_yaml: &str) -> Running {
    let conf = ServerConf::from_yaml(conf_yaml).unwrap();
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut echo = listening::Service::new("echo-svc".to_string(), Echo);
    echo.add_tcp("127.0.0.1:0");
    let mut bound = echo.bound_addrs();
    server.add_service(echo);
    let bg = background_service("watcher", Watcher::default());
    let watcher = bg.task();
    server.add_services(vec![Box::new(bg)]);

    let (sig_tx, sig_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        server.run(RunArgs {
            shutdown_signal: Box::new(TestSignal(parking_lot::Mutex::new(Some(sig_rx)))),
        });
        let _ = done_tx.send(());
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addrs = rt
        .block_on(async { tokio::time::timeout(T, bound.wait_for(|a| !a.is_empty())).await })
        .unwrap()
        .unwrap()
        .clone();
    let addr = match &addrs[0] {
        SocketAddr::Inet(a) => *a,
        other => panic!("unexpected address {other}"),
    };
    Running {
        addr,
        signal: Some(sig_tx),
        done,
        watcher,
    }
}

fn echo(conn: &mut std::net::TcpStream, msg: &str) -> String {
    conn.write_all(msg.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\n") {
        let n = conn.read(&mut byte).unwrap();
        assert_eq!(n, 1, "connection closed early");
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}

fn connect(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c
}

#[test]
fn graceful_shutdown_stops_accepting_and_waits_for_in_flight_connections() {
    let mut s = start("threads: 2\n");
    let mut conn = connect(s.addr);
    assert_eq!(echo(&mut conn, "hi"), "hi from echo-svc\n");

    s.signal
        .take()
        .unwrap()
        .send(ShutdownSignal::GracefulTerminate)
        .unwrap();
    // the listener closes: new connections are refused
    let deadline = std::time::Instant::now() + T;
    while std::net::TcpStream::connect(s.addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        std::thread::yield_now();
    }
    // the open connection is still served and keeps the server running
    assert_eq!(echo(&mut conn, "again"), "again from echo-svc\n");
    assert!(s.done.try_recv().is_err());
    // background services see the shutdown too
    while !s.watcher.saw_shutdown.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "watcher never saw shutdown"
        );
        std::thread::yield_now();
    }

    drop(conn);
    s.done.recv_timeout(T).unwrap();
}

#[test]
fn grace_period_bounds_the_wait_for_connections() {
    let mut s = start("grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 0\n");
    let mut conn = connect(s.addr);
    assert_eq!(echo(&mut conn, "x"), "x from echo-svc\n");
    s.signal
        .take()
        .unwrap()
        .send(ShutdownSignal::GracefulTerminate)
        .unwrap();
    // the connection is still open, but the grace period is over at once
    s.done.recv_timeout(T).unwrap();
    drop(conn);
}

#[test]
fn fast_shutdown_returns_without_waiting_for_connections() {
    // default grace period: 300 s, which a fast shutdown must not wait for
    let mut s = start("version: 1\n");
    let mut conn = connect(s.addr);
    assert_eq!(echo(&mut conn, "y"), "y from echo-svc\n");
    s.signal
        .take()
        .unwrap()
        .send(ShutdownSignal::FastShutdown)
        .unwrap();
    s.done.recv_timeout(T).unwrap();
    assert!(!s.watcher.saw_shutdown.load(Ordering::SeqCst));
}

#[test]
fn no_work_stealing_serves_connections_on_single_thread_runtimes() {
    let mut s = start("threads: 2\nwork_stealing: false\n");
    let mut threads = std::collections::HashSet::new();
    let mut conns = Vec::new();
    for i in 0..4 {
        let mut c = connect(s.addr);
        let reply = echo(&mut c, &format!("n{i}"));
        threads.insert(reply.trim().rsplit(' ').next().unwrap().to_string());
        conns.push(c);
    }
    let expected: std::collections::HashSet<String> = ["echo-svc-0", "echo-svc-1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(threads, expected);
    drop(conns);
    s.signal
        .take()
        .unwrap()
        .send(ShutdownSignal::GracefulTerminate)
        .unwrap();
    s.done.recv_timeout(T).unwrap();
}

#[test]
fn server_new_without_options_uses_defaults() {
    let server = Server::new(None).unwrap();
    assert_eq!(server.configuration.version, 1);
    assert_eq!(server.configuration.threads, 1);
    assert!(server.options.is_none());
    assert_eq!(server.test_report(), "configuration OK (defaults)");
}

#[test]
fn server_new_with_options_loads_the_conf_file_and_merges_daemon() {
    let dir = std::env::temp_dir().join(format!("proxy-core-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.yaml");
    std::fs::write(&path, "threads: 3\n").unwrap();
    let opt = Opt::parse_from_args(["p", "-d", "-c", path.to_str().unwrap()]);
    let server = Server::new(Some(opt)).unwrap();
    assert_eq!(server.configuration.threads, 3);
    assert!(server.configuration.daemon);
    assert_eq!(
        server.test_report(),
        format!("configuration {} OK", path.display())
    );
}
