//! Shared helpers of the end-to-end tests: start origins (nginx, a hyper
//! origin, a WebSocket echo origin, one that never answers), start a tutorial
//! proxy binary with a generated conf, and talk to them (raw bytes over a
//! TcpStream, hyper client, curl).
//!
//! Every helper binds its own port on `127.0.0.1` (picked by binding port 0),
//! keeps its files in its own temp dir, and kills on `Drop` only the process
//! it started, by its PID. Nothing here depends on the proxy's crates: the
//! proxy is a black box reached over TCP.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

// The one helper built on the framework (an in-process proxy over a load
// balancer); everything else here treats the proxy as a black box.
pub(crate) mod lb_proxy;
// TLS helpers: a PKI made with the openssl CLI, nginx over TLS, s_client.
pub(crate) mod tls;
// An in-process proxy to a peer the test builds (HTTP/2 upstream, gRPC).
pub(crate) mod h2_proxy;
// nginx as an HTTP/2 origin (TLS or h2c).
pub(crate) mod nginx_h2;

use std::collections::HashSet;
use std::convert::Infallible;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

/// How long a helper waits for a process to come up or a reply to arrive
/// before the test fails. Generous: a debug build on a busy 2-core machine.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Path of the nginx binary (Debian `nginx-light`).
pub(crate) const NGINX: &str = "/usr/sbin/nginx";

// ---------------------------------------------------------------- ports ---

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then
/// released). Another process could take it in between; the starters below
/// retry with a new port when their process fails to bind.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// An address where nothing listens: connecting to it is refused.
///
/// The port stays bound (by a socket that never listens) for the rest of the
/// test process, so no other test running in parallel can be handed it and
/// listen on it: a freed port could become another test's proxy, and the
/// "dead" upstream would answer.
pub(crate) fn dead_addr() -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    static RESERVED: std::sync::Mutex<Vec<Socket>> = std::sync::Mutex::new(Vec::new());
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind 127.0.0.1:0");
    let addr = sock
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("inet address");
    RESERVED.lock().expect("reserved ports").push(sock);
    addr
}

/// Waits until `addr` accepts a TCP connection on a socket of `child`'s.
/// Returns false when `child` exits first or `WAIT` passes.
///
/// A port from [`free_port`] can be taken by another test's process before
/// `child` binds it; a connection alone would then be answered by that
/// process while `child` fails with "address in use", so the listening
/// socket's owner is checked too.
fn wait_for_port(addr: SocketAddr, child: &mut Child) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            && listens_on(child.id(), addr)
        {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether process `pid` holds a socket listening on `addr` (IPv4), by the
/// socket inodes of `/proc/net/tcp` and the process's open descriptors.
fn listens_on(pid: u32, addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else {
        return true; // only IPv4 loopback is used here; do not second-guess others
    };
    // /proc/net/tcp writes the address as the little-endian u32 in hex
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // fields: sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
                .then(|| f.get(9).map(|i| format!("socket:[{i}]")))
                .flatten()
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_link(e.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
}

// ------------------------------------------------------------ processes ---

/// A child process killed (SIGKILL, by its PID) and reaped on drop.
pub(crate) struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (and its status).
    pub(crate) fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident set size (VmRSS) of `pid` in KiB, from /proc/<pid>/status.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples a process's VmRSS every 50 ms on a thread until stopped; keeps
/// the largest value.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kib: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub(crate) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max_kib.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = vm_rss_kib(pid) {
                    m.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssSampler {
            stop,
            max_kib,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the largest VmRSS seen, in KiB.
    pub(crate) fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max_kib.load(Ordering::Relaxed)
    }
}

// --------------------------------------------------------------- bodies ---

/// Size of a [`PatternBody`] chunk, bytes.
pub(crate) const PATTERN_CHUNK: usize = 64 * 1024;

/// The deterministic 64 KiB block every pattern body repeats (an LCG, so a
/// shifted or dropped chunk changes the digest).
pub(crate) fn pattern_block() -> Bytes {
    let mut x: u32 = 0x1234_5678;
    let v: Vec<u8> = (0..PATTERN_CHUNK)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    Bytes::from(v)
}

/// The first `len` bytes of the pattern, in memory (for small bodies).
pub(crate) fn pattern_bytes(len: usize) -> Vec<u8> {
    let block = pattern_block();
    block.iter().copied().cycle().take(len).collect()
}

/// Hex SHA-256 of the first `len` bytes of the pattern, computed chunk by
/// chunk (works for gigabytes).
pub(crate) fn pattern_sha256(len: u64) -> String {
    let block = pattern_block();
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(PATTERN_CHUNK as u64) as usize;
        h.update(&block[..n]);
        left -= n as u64;
    }
    hex(&h.finalize())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A request body of `remaining` pattern bytes, generated chunk by chunk.
/// With `exact_size` the size hint is exact (hyper sends Content-Length);
/// without, it is unknown (hyper sends `Transfer-Encoding: chunked`).
pub(crate) struct PatternBody {
    block: Bytes,
    remaining: u64,
    exact_size: bool,
}

impl PatternBody {
    /// A body of `len` bytes.
    pub(crate) fn new(len: u64, exact_size: bool) -> Self {
        PatternBody {
            block: pattern_block(),
            remaining: len,
            exact_size,
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(PATTERN_CHUNK as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.block.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact_size {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

// ---------------------------------------------------------------- nginx ---

/// One line of the nginx origin's access log
/// (`log_format e2e '$connection $connection_requests $status $body_bytes_sent "$request"'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessLine {
    /// nginx's serial number of the TCP connection the request came on.
    pub(crate) connection: u64,
    /// The request's position on that connection (1 = first).
    pub(crate) connection_requests: u64,
    /// Status nginx answered.
    pub(crate) status: u16,
    /// Body bytes nginx sent.
    pub(crate) body_bytes_sent: u64,
    /// The request line, e.g. `GET /1k HTTP/1.1`.
    pub(crate) request: String,
}

/// A real nginx origin (single process, `master_process off`) on a free
/// port, serving static files of chosen sizes from its temp dir, with an
/// access log that records nginx's connection serial number per request.
pub(crate) struct Nginx {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    process: ChildGuard,
}

impl Nginx {
    /// Starts nginx serving `files` (name, size in bytes; content = the
    /// pattern, see [`pattern_bytes`]) at `/<name>`. Every response carries
    /// `Server: nginx` and `X-Powered-By: nginx-e2e`.
    pub(crate) fn start(files: &[(&str, usize)]) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir for nginx");
        let www = dir.path().join("www");
        fs::create_dir_all(&www).expect("create www");
        for (name, size) in files {
            fs::write(www.join(name), pattern_bytes(*size)).expect("write static file");
        }
        let (addr, process) = start_nginx_in(dir.path(), "nginx", |addr| {
            nginx_http_block(dir.path(), addr)
        });
        Nginx { dir, addr, process }
    }

    /// The address nginx listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bytes of a file nginx serves.
    pub(crate) fn file(&self, name: &str) -> Vec<u8> {
        fs::read(self.dir.path().join("www").join(name)).expect("read static file")
    }

    /// The access log so far, parsed.
    pub(crate) fn access_log(&self) -> Vec<AccessLine> {
        let text = fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines().filter_map(parse_access_line).collect()
    }

    /// The access log once it has at least `n` lines (nginx writes a line
    /// just after the response, so a client may finish first), or as it is
    /// after [`WAIT`].
    pub(crate) fn wait_access_log(&self, n: usize) -> Vec<AccessLine> {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.access_log();
            if log.len() >= n || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many distinct TCP connections the logged requests came on.
    pub(crate) fn distinct_connections(&self) -> usize {
        self.access_log()
            .iter()
            .map(|l| l.connection)
            .collect::<HashSet<_>>()
            .len()
    }

    /// The process id of nginx.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// The inside of the `http` block of [`Nginx`]: static files from
/// `<dir>/www`, an access log with connection serials.
fn nginx_http_block(dir: &Path, addr: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"    log_format e2e '$connection $connection_requests $status $body_bytes_sent "$request"';
    access_log {d}/access.log e2e;
    default_type application/octet-stream;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    server {{
        listen {addr};
        root {d}/www;
        add_header X-Powered-By nginx-e2e always;
        location / {{ }}
    }}
"#
    )
}

/// Runs nginx (one process, no master; pid, logs and temp files in `dir`)
/// with `http(addr)` as the inside of its `http` block, where `addr` is a
/// free port of 127.0.0.1 the block must listen on. A port taken meanwhile
/// is replaced by another, up to 5 times; any other failure panics with
/// nginx's error log, naming `what`. Returns once `addr` accepts.
pub(crate) fn start_nginx_in(
    dir: &Path,
    what: &str,
    http: impl Fn(SocketAddr) -> String,
) -> (SocketAddr, ChildGuard) {
    let d = dir.display();
    for attempt in 0..5 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let conf = format!(
            r#"# Generated by tests/support: one process, everything under {d}.
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
{}}}
"#,
            http(addr)
        );
        let conf_path = dir.join("nginx.conf");
        fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {NGINX} (apt-get install nginx-light): {e}"));
        if wait_for_port(addr, &mut child) {
            return (addr, ChildGuard { child });
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        if !log.contains("Address already in use") || attempt == 4 {
            panic!("{what} did not start on {addr}; error.log:\n{log}");
        }
    }
    unreachable!("the loop returns or panics on its last attempt")
}

fn parse_access_line(line: &str) -> Option<AccessLine> {
    let (head, rest) = line.split_once(" \"")?;
    let mut f = head.split_whitespace();
    Some(AccessLine {
        connection: f.next()?.parse().ok()?,
        connection_requests: f.next()?.parse().ok()?,
        status: f.next()?.parse().ok()?,
        body_bytes_sent: f.next()?.parse().ok()?,
        request: rest.strip_suffix('"')?.to_owned(),
    })
}

// ---------------------------------------------------------- hyper origin ---

/// Header the [`TestOrigin`] sets to the `Host` it received.
pub(crate) const SAW_HOST: &str = "x-origin-saw-host";
/// Header the [`TestOrigin`] sets to the `X-API-Key` it received (or `-`).
pub(crate) const SAW_API_KEY: &str = "x-origin-saw-api-key";

/// An in-process hyper origin on its own runtime thread, counting the TCP
/// connections and requests it gets. Routes:
/// - `/sha256`: reads the whole request body and answers `"<count> <hex sha256>"`;
/// - `/echo`: streams the request body back;
/// - anything else: `200 "hello from the test origin\n"`.
///
/// Every response carries `Server: test-origin`, `X-Powered-By: e2e-tests`,
/// [`SAW_HOST`] and [`SAW_API_KEY`]. Stops when dropped.
pub(crate) struct TestOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type OriginBody = BoxBody<Bytes, hyper::Error>;

impl TestOrigin {
    /// Starts the origin on `127.0.0.1:0`.
    pub(crate) fn start() -> TestOrigin {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts the origin on `addr` (e.g. again on the address of one that
    /// was stopped, to bring a backend back).
    pub(crate) fn start_on(addr: SocketAddr) -> TestOrigin {
        let listener = TcpListener::bind(addr).expect("bind test origin");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (conns, reqs) = (connections.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("origin runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("from_std");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            conns.fetch_add(1, Ordering::SeqCst);
                            let reqs = reqs.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| {
                                    reqs.fetch_add(1, Ordering::SeqCst);
                                    origin_handle(req)
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
            rt.shutdown_background();
        });
        TestOrigin {
            addr,
            connections,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn origin_handle(req: Request<Incoming>) -> Result<Response<OriginBody>, Infallible> {
    let host = header_or_dash(&req, "host");
    let api_key = header_or_dash(&req, "x-api-key");
    let mut resp = match req.uri().path() {
        "/sha256" => {
            let mut body = req.into_body();
            let mut h = Sha256::new();
            let mut count: u64 = 0;
            let mut failed = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            h.update(d);
                            count += d.len() as u64;
                        }
                    }
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            match failed {
                None => Response::new(full(format!("{count} {}", hex(&h.finalize())))),
                Some(e) => {
                    let mut r = Response::new(full(format!("body error after {count} bytes: {e}")));
                    *r.status_mut() = StatusCode::BAD_REQUEST;
                    r
                }
            }
        }
        "/echo" => Response::new(req.into_body().boxed()),
        _ => Response::new(full("hello from the test origin\n")),
    };
    let h = resp.headers_mut();
    h.insert("server", http::HeaderValue::from_static("test-origin"));
    h.insert("x-powered-by", http::HeaderValue::from_static("e2e-tests"));
    if let Ok(v) = http::HeaderValue::from_str(&host) {
        h.insert(SAW_HOST, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&api_key) {
        h.insert(SAW_API_KEY, v);
    }
    Ok(resp)
}

fn header_or_dash(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

fn full(body: impl Into<Bytes>) -> OriginBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

// ------------------------------------------------------ WebSocket origin ---

/// A WebSocket echo origin (tokio-tungstenite) on its own runtime thread:
/// every text or binary message is sent back. Stops when dropped.
pub(crate) struct WsEchoOrigin {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WsEchoOrigin {
    /// Starts the origin on `127.0.0.1:0`.
    pub(crate) fn start() -> WsEchoOrigin {
        use futures_util::{SinkExt, StreamExt};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind ws origin");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("ws origin runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("from_std");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(async move {
                                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                                while let Some(Ok(msg)) = ws.next().await {
                                    if msg.is_text() || msg.is_binary() {
                                        if ws.send(msg).await.is_err() {
                                            break;
                                        }
                                    } else if msg.is_close() {
                                        break;
                                    }
                                }
                            });
                        }
                    }
                }
            });
            rt.shutdown_background();
        });
        WsEchoOrigin {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for WsEchoOrigin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// -------------------------------------------------------- silent origin ---

/// An upstream that accepts TCP connections (the kernel completes the
/// handshake into the listen backlog) and never answers: the listener is
/// never `accept`ed from, so requests sit unread until it is dropped.
pub(crate) struct SilentOrigin {
    listener: TcpListener,
}

impl SilentOrigin {
    /// Binds `127.0.0.1:0`.
    pub(crate) fn start() -> SilentOrigin {
        SilentOrigin {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind silent origin"),
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("local_addr")
    }
}

// ---------------------------------------------------------------- proxy ---

/// A tutorial proxy binary running with a generated conf.yaml, its stderr
/// captured in a file.
pub(crate) struct Proxy {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    process: ChildGuard,
}

impl Proxy {
    /// Starts `bin` (e.g. `env!("CARGO_BIN_EXE_part-01-first-proxy")`) with
    /// `-c conf.yaml` where the conf has `threads: 2`, `listen` on a free
    /// port, `upstreams`, and then the lines of `extra_yaml` (e.g.
    /// `"upstream_read_timeout_ms: 500\n"`). Waits until it accepts.
    pub(crate) fn start(bin: &str, upstreams: &[SocketAddr], extra_yaml: &str) -> Proxy {
        Self::start_with_log(bin, upstreams, extra_yaml, "info")
    }

    /// [`Proxy::start`] with `RUST_LOG` set to `rust_log` (e.g. `warn`).
    pub(crate) fn start_with_log(
        bin: &str,
        upstreams: &[SocketAddr],
        extra_yaml: &str,
        rust_log: &str,
    ) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir for the proxy");
        let ups: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
        for attempt in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let d = dir.path().display();
            let conf = format!(
                "---\nversion: 1\nthreads: 2\npid_file: {d}/proxy.pid\nupgrade_sock: {d}/upgrade.sock\nlisten: \"{addr}\"\nupstreams: [{}]\n{extra_yaml}",
                ups.join(", ")
            );
            let conf_path = dir.path().join("conf.yaml");
            fs::write(&conf_path, conf).expect("write conf.yaml");
            let stderr = fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
            let mut child = Command::new(bin)
                .arg("-c")
                .arg(&conf_path)
                .env("RUST_LOG", rust_log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
            if wait_for_port(addr, &mut child) {
                return Proxy {
                    dir,
                    addr,
                    process: ChildGuard { child },
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            let busy = log.contains("in use") || log.contains("AddrInUse");
            if !busy || attempt == 4 {
                panic!("{bin} did not start on {addr}; stderr:\n{log}");
            }
        }
        unreachable!("the loop returns or panics on its last attempt")
    }

    /// The address the proxy listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The proxy's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the proxy process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.process.try_wait().is_none()
    }

    /// Sends `signal` (a `kill -s` name: `TERM`, `INT`, `QUIT`) to the
    /// proxy's process, by its PID.
    pub(crate) fn signal(&self, signal: &str) {
        let out = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .output()
            .expect("cannot run kill");
        assert!(out.status.success(), "kill -s {signal}: {out:?}");
    }

    /// Waits up to `within` for the proxy to exit; its exit status, or
    /// `None` when it is still running.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.process.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the proxy wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Polls the proxy's stderr until `count(stderr) >= want` or `WAIT`
    /// passes; returns the last count.
    pub(crate) fn wait_for_stderr(&self, want: usize, count: impl Fn(&str) -> usize) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let n = count(&self.stderr());
            if n >= want || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ------------------------------------------------------------ raw origin ---

/// One request a [`RawOrigin`] read.
#[derive(Debug, Clone)]
pub(crate) struct SeenRequest {
    /// Serial number of the TCP connection it came on (1 = first accepted).
    pub(crate) conn: usize,
    /// Its position on that connection (1 = first).
    pub(crate) nth_on_conn: usize,
    /// The exact bytes of the head, from the request line to the blank line
    /// included.
    pub(crate) head: Vec<u8>,
    /// The body (de-chunked when it came chunked).
    pub(crate) body: Vec<u8>,
    /// The method of the request line.
    pub(crate) method: String,
    /// The target of the request line.
    pub(crate) path: String,
}

impl SeenRequest {
    /// The head as (lossy) text.
    pub(crate) fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    /// The header fields in the order received, names spelled as received.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        header_fields(&self.head_text())
    }

    /// The value of the first field named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// The `name: value` fields of a message head (the first line skipped).
pub(crate) fn header_fields(head: &str) -> Vec<(String, String)> {
    head.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The value of header `name` in a message head (case-insensitive; the
/// first if repeated).
pub(crate) fn head_header(head: &str, name: &str) -> Option<String> {
    header_fields(head)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `curl` a URL with extra request headers (`"Name: value"` each); returns
/// (status code as curl prints it, response head).
pub(crate) fn curl_status_and_head(url: &str, headers: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let head_file = temp_path(&dir, "headers");
    let head_path = head_file.to_str().expect("utf-8 temp path");
    let mut args = vec!["-o", "/dev/null", "-D", head_path, "-w", "%{http_code}"];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.push(url);
    let out = curl(&args);
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    (String::from_utf8_lossy(&out.stdout).into_owned(), head)
}

/// One thing a [`RawOrigin`] does in answer to a request.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Write these bytes as they are.
    Send(Vec<u8>),
    /// Wait this long.
    Sleep(Duration),
    /// Close the connection; nothing more is read from it.
    Close,
}

/// `HTTP/1.1 200 OK` with `Content-Length` and `body`.
pub(crate) fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

type Script = dyn Fn(&SeenRequest) -> Vec<Step> + Send + Sync;

/// An origin written on raw `std` sockets, for behaviours that need control
/// of every byte: it reads each request (head bytes recorded exactly, body
/// by `Content-Length` or chunked), records it, and runs the steps its
/// script returns for it; unless a step closes, it then reads the next
/// request on the connection. Counts the connections it accepts. A thread
/// per connection; stops accepting when dropped.
pub(crate) struct RawOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawOrigin {
    /// Starts the origin on `127.0.0.1:0`, answering with `script`.
    pub(crate) fn start(
        script: impl Fn(&SeenRequest) -> Vec<Step> + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(Some(Arc::new(script)))
    }

    /// An origin that closes every connection as soon as it accepts it,
    /// without reading anything.
    pub(crate) fn closing_at_once() -> Self {
        Self::start_inner(None)
    }

    fn start_inner(script: Option<Arc<Script>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw origin");
        let addr = listener.local_addr().expect("local_addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (conns, seen2, stop2) = (connections.clone(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let conn = conns.fetch_add(1, Ordering::SeqCst) + 1;
                let Some(script) = script.clone() else {
                    drop(stream);
                    continue;
                };
                let seen = seen2.clone();
                std::thread::spawn(move || raw_origin_serve(stream, conn, &*script, &seen));
            }
        });
        RawOrigin {
            addr,
            connections,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The requests read so far, in the order they were read.
    pub(crate) fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("raw origin lock").clone()
    }

    /// Polls until at least `n` requests were read or `WAIT` passes;
    /// whether they were.
    pub(crate) fn wait_for_requests(&self, n: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.seen().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn raw_origin_serve(
    mut stream: TcpStream,
    conn: usize,
    script: &Script,
    seen: &std::sync::Mutex<Vec<SeenRequest>>,
) {
    let _ = stream.set_read_timeout(Some(WAIT));
    let mut buf = Vec::new();
    let mut nth = 0;
    while let Some(mut req) = read_request(&mut stream, &mut buf) {
        nth += 1;
        req.conn = conn;
        req.nth_on_conn = nth;
        seen.lock().expect("raw origin lock").push(req.clone());
        for step in script(&req) {
            match step {
                Step::Send(bytes) => {
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                }
                Step::Sleep(d) => std::thread::sleep(d),
                Step::Close => return,
            }
        }
    }
}

/// Reads more bytes into `buf`; false on EOF, error or timeout.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Makes sure `buf` holds at least `n` bytes.
fn fill_to(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<()> {
    while buf.len() < n {
        if !read_more(stream, buf) {
            return None;
        }
    }
    Some(())
}

/// The index just past the next CRLF at or after `from`, reading as needed.
fn line_end(stream: &mut TcpStream, buf: &mut Vec<u8>, from: usize) -> Option<usize> {
    loop {
        if let Some(i) = find(&buf[from..], b"\r\n") {
            return Some(from + i + 2);
        }
        if !read_more(stream, buf) {
            return None;
        }
    }
}

/// Position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request off `stream` (bytes past it stay in `buf`). `None` on
/// EOF or a head it cannot read.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<SeenRequest> {
    let head_len = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !read_more(stream, buf) {
            return None;
        }
    };
    let head: Vec<u8> = buf.drain(..head_len).collect();
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut line = text.split("\r\n").next()?.split(' ');
    let method = line.next()?.to_owned();
    let path = line.next()?.to_owned();
    let fields = header_fields(&text);
    let chunked = fields.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let length = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = Vec::new();
    if chunked {
        loop {
            let end = line_end(stream, buf, 0)?;
            let size_line = String::from_utf8_lossy(&buf[..end - 2]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..end);
            if size == 0 {
                // trailer fields up to the empty line
                loop {
                    let end = line_end(stream, buf, 0)?;
                    let empty = end == 2;
                    buf.drain(..end);
                    if empty {
                        break;
                    }
                }
                break;
            }
            fill_to(stream, buf, size + 2)?;
            body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    } else if let Some(n) = length {
        fill_to(stream, buf, n)?;
        body.extend(buf.drain(..n));
    }
    Some(SeenRequest {
        conn: 0,
        nth_on_conn: 0,
        head,
        body,
        method,
        path,
    })
}

// ------------------------------------------------------------ raw client ---

/// A response read by [`RawClient::read_response`].
#[derive(Debug, Clone)]
pub(crate) struct RawReply {
    /// Status code.
    pub(crate) status: u16,
    /// The head as text, status line to the blank line included.
    pub(crate) head: String,
    /// The body, de-chunked when it came chunked.
    pub(crate) body: Vec<u8>,
    /// The body bytes as they came on the wire (chunk framing included).
    pub(crate) wire_body: Vec<u8>,
    /// Whether the body was read to its end (false: the connection closed
    /// first).
    pub(crate) complete: bool,
}

impl RawReply {
    /// The header fields in order, names as received.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        header_fields(&self.head)
    }

    /// The value of the first field named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// A client connection written on a raw `std` socket, for keep-alive and
/// pipelining: write any bytes, read responses one at a time. Every read
/// waits at most [`WAIT`] and panics (failing the test) past it.
pub(crate) struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects to `addr`.
    pub(crate) fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set_read_timeout");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects to `addr`; `None` when the connection is refused.
    pub(crate) fn try_connect(addr: SocketAddr) -> Option<RawClient> {
        let stream = TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set_read_timeout");
        Some(RawClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// Writes `bytes`, ignoring a failure (the server may have closed).
    pub(crate) fn try_write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Writes `bytes` as they are.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the proxy");
    }

    /// Reads more into the buffer; false on EOF or reset. Panics on timeout.
    fn more(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "no byte from the server for {WAIT:?}; have {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )
                }
                Err(_) => return false,
            }
        }
    }

    /// Reads the next response. `to_head` says it answers a HEAD (no body
    /// whatever the headers say). A 1xx response is returned on its own.
    /// `None` when the connection closes before a whole head arrives.
    pub(crate) fn read_response(&mut self, to_head: bool) -> Option<RawReply> {
        let head_len = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.more() {
                return None;
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_len).collect();
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = status_of(head.as_bytes())?;
        let mut reply = RawReply {
            status,
            head,
            body: Vec::new(),
            wire_body: Vec::new(),
            complete: true,
        };
        let fields = reply.headers();
        let chunked = fields.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        let length = fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        if to_head || (100..200).contains(&status) || status == 204 || status == 304 {
            return Some(reply);
        }
        if chunked {
            reply.complete = self.read_chunked(&mut reply);
        } else if let Some(n) = length {
            while self.buf.len() < n {
                if !self.more() {
                    reply.complete = false;
                    break;
                }
            }
            let n = n.min(self.buf.len());
            reply.body = self.buf.drain(..n).collect();
            reply.wire_body = reply.body.clone();
        } else {
            // close-delimited
            while self.more() {}
            reply.body = std::mem::take(&mut self.buf);
            reply.wire_body = reply.body.clone();
        }
        Some(reply)
    }

    fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                return Some(self.buf.drain(..i + 2).collect());
            }
            if !self.more() {
                return None;
            }
        }
    }

    fn read_chunked(&mut self, reply: &mut RawReply) -> bool {
        loop {
            let Some(line) = self.line() else {
                return false;
            };
            reply.wire_body.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let Ok(size) = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
            else {
                return false;
            };
            if size == 0 {
                loop {
                    let Some(line) = self.line() else {
                        return false;
                    };
                    reply.wire_body.extend_from_slice(&line);
                    if line == b"\r\n" {
                        return true;
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if !self.more() {
                    return false;
                }
            }
            let data: Vec<u8> = self.buf.drain(..size + 2).collect();
            reply.wire_body.extend_from_slice(&data);
            reply.body.extend_from_slice(&data[..size]);
        }
    }

    /// Waits up to `within` for the server to close the connection (EOF or
    /// reset); the bytes that came before the close, or `None` when it is
    /// still open.
    pub(crate) fn wait_closed(&mut self, within: Duration) -> Option<Vec<u8>> {
        self.stream
            .set_read_timeout(Some(within))
            .expect("set_read_timeout");
        let mut chunk = [0u8; 64 * 1024];
        let closed = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break false
                }
                Err(_) => break true,
            }
        };
        self.stream
            .set_read_timeout(Some(WAIT))
            .expect("set_read_timeout");
        closed.then(|| std::mem::take(&mut self.buf))
    }
}

// ------------------------------------------------------------ raw bytes ---

/// What came back on a raw connection.
#[derive(Debug)]
pub(crate) struct RawResponse {
    /// Every byte received.
    pub(crate) bytes: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset) before the
    /// wait ran out.
    pub(crate) closed: bool,
}

impl RawResponse {
    /// The status code of the first response line, if any.
    pub(crate) fn status(&self) -> Option<u16> {
        status_of(&self.bytes)
    }

    /// The received bytes as (lossy) text, for assertion messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The status code in `HTTP/1.x NNN ...` at the start of `bytes`.
pub(crate) fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.trim().parse().ok()
}

/// Sends `request` as-is on a new connection to `addr` (on a thread, so a
/// server that answers and closes before reading everything does not block
/// us), then reads until the server closes or `wait` passes.
pub(crate) fn raw_exchange_within(addr: SocketAddr, request: &[u8], wait: Duration) -> RawResponse {
    let stream = TcpStream::connect(addr).expect("connect");
    let mut writer = stream.try_clone().expect("clone stream");
    let request = request.to_vec();
    let sender = std::thread::spawn(move || {
        // The server may close before reading it all: not our concern here.
        let _ = writer.write_all(&request);
    });
    let mut reader = stream;
    let deadline = Instant::now() + wait;
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        reader
            .set_read_timeout(Some(left))
            .expect("set_read_timeout");
        match reader.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true, // reset: closed
        }
    };
    let _ = reader.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    RawResponse { bytes, closed }
}

/// [`raw_exchange_within`] with the default wait of [`WAIT`].
pub(crate) fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    raw_exchange_within(addr, request, WAIT)
}

// --------------------------------------------------------------- clients ---

/// Runs `curl -sS --max-time 60` with `args`; returns its output.
pub(crate) fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("cannot run curl (apt-get install curl)")
}

/// A response with its whole body.
pub(crate) type FullResponse = Response<Bytes>;

/// Sends `req` with hyper's HTTP/1.1 client on a new connection to `addr`
/// and reads the whole response body. Panics (failing the test) on any
/// connection error or after 5 minutes.
pub(crate) async fn send<B>(addr: SocketAddr, req: Request<B>) -> FullResponse
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let exchange = async move {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.expect("send request");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("read response body").to_bytes();
        Response::from_parts(parts, body)
    };
    tokio::time::timeout(Duration::from_secs(300), exchange)
        .await
        .expect("request timed out")
}

/// A GET of `path` for `addr` with the given extra headers.
pub(crate) fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::get(path).header("host", addr.to_string());
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::new())).expect("valid request")
}

/// Where a test's temporary files may go when it needs a plain path.
pub(crate) fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}
