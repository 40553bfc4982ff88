//! Connectors: turn a [`Peer`] into a connected [`Stream`], reusing pooled
//! connections when the peer allows.
//!
//! [`TransportConnector`] works at the transport level (TCP or Unix socket,
//! with TLS over it when the peer asks; see `connectors/tls.rs`). It owns one [`ConnectionPool`] keyed by
//! [`Peer::reuse_hash`], shared by every thread that holds the connector (it
//! is `Send + Sync`; share it behind an `Arc` or give each service one).
//!
//! Dead-connection detection: a connection taken from the pool is polled
//! once for readability without blocking. `Pending` means healthy; end of
//! stream (the upstream closed it), unexpected bytes, or an error mean it is
//! discarded and the next one is tried. The same check runs over every idle
//! connection once per second in one sweeper task per connector (started on
//! the first release inside a tokio runtime, holding only a weak reference to
//! the pool so it ends when the connector is dropped): sockets the upstream
//! closed and connections past their idle timeout are closed even if their
//! key is never asked for again. `get`/`put` also close expired connections
//! lazily, so expiry holds without a runtime.
//!
//! ```no_run
//! use proxy_core::connectors::TransportConnector;
//! use proxy_core::upstreams::peer::{HttpPeer, Peer};
//!
//! # async fn demo() -> proxy_core::Result<()> {
//! let connector = TransportConnector::new(None);
//! let peer = HttpPeer::new(("127.0.0.1", 8000), false, String::new());
//! let (stream, reused) = connector.get_stream(&peer).await?;
//! // ... speak HTTP/1.1 over `stream`, then give it back for reuse:
//! connector.release_stream(stream, peer.reuse_hash(), peer.idle_timeout());
//! # Ok(()) }
//! ```

pub mod http;
mod http2;
pub mod l4;
mod tls;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::metrics::UpstreamMetrics;
use crate::pools::{ConnectionPool, DEFAULT_POOL_SIZE};
use crate::protocols::{SocketAddr, Stream};
use crate::upstreams::peer::Peer;
use l4::L4Options;

/// The connect, read and write timeout applied to an upstream whose
/// `PeerOptions` set none: 60 s, nginx's `proxy_connect_timeout`,
/// `proxy_read_timeout` and `proxy_send_timeout`. Set the peer's option to
/// change it for that peer.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the sweeper checks idle connections for expiry and upstream closes.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Settings shared by every connection a [`TransportConnector`] makes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorOptions {
    /// The most idle connections the pool keeps, all peers together
    /// (Pingora's `upstream_keepalive_pool_size`). Default 128.
    pub keepalive_pool_size: usize,
    /// Source addresses for IPv4 upstreams when the peer sets no `bind_to`;
    /// used in turn. Default empty (the OS chooses).
    pub bind_to_v4: Vec<std::net::SocketAddr>,
    /// Source addresses for IPv6 upstreams when the peer sets no `bind_to`;
    /// used in turn. Default empty (the OS chooses).
    pub bind_to_v6: Vec<std::net::SocketAddr>,
}

impl ConnectorOptions {
    /// Options with a pool of `keepalive_pool_size` idle connections and no source addresses.
    pub fn new(keepalive_pool_size: usize) -> Self {
        ConnectorOptions {
            keepalive_pool_size,
            bind_to_v4: Vec::new(),
            bind_to_v6: Vec::new(),
        }
    }
}

impl Default for ConnectorOptions {
    /// `ConnectorOptions::new(128)`.
    fn default() -> Self {
        Self::new(DEFAULT_POOL_SIZE)
    }
}

/// What a non-blocking read on an idle connection says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdleState {
    /// Nothing to read: still open, nothing unexpected.
    Healthy,
    /// End of stream: the upstream closed it.
    Closed,
    /// The upstream sent bytes nobody asked for.
    UnexpectedData,
    /// The socket reported an error.
    Broken,
}

/// Read once from `stream` without waiting, into a 1-byte stack buffer.
///
/// On an idle connection nothing should arrive, so "would block" is the
/// healthy answer. A byte read here is lost, which is fine: such a
/// connection is discarded.
fn probe_idle(stream: &mut Stream) -> IdleState {
    let mut byte = [0u8; 1];
    match stream.try_read_now(&mut byte) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => IdleState::Healthy,
        Ok(0) => IdleState::Closed,
        Ok(_) => IdleState::UnexpectedData,
        Err(_) => IdleState::Broken,
    }
}

/// Whether an idle connection may be kept; counts unexpected data.
fn keep_idle(stream: &mut Stream, unexpected_data: &AtomicUsize) -> bool {
    match probe_idle(stream) {
        IdleState::Healthy => true,
        IdleState::UnexpectedData => {
            unexpected_data.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "discarding idle upstream connection to {:?}: unexpected data",
                stream.peer_addr()
            );
            false
        }
        IdleState::Closed | IdleState::Broken => false,
    }
}

/// Connects to peers over TCP or Unix sockets and pools idle connections
/// (Pingora's `TransportConnector`).
pub struct TransportConnector {
    pool: Arc<ConnectionPool<Stream>>,
    bind_to_v4: Vec<std::net::SocketAddr>,
    bind_to_v6: Vec<std::net::SocketAddr>,
    /// Rotates through `bind_to_v4`/`bind_to_v6`.
    bind_turn: AtomicUsize,
    sweeper_started: AtomicBool,
    unexpected_data: Arc<AtomicUsize>,
    tls: tls::TlsConnector,
    /// Counts of opened and reused connections and connect times, if set.
    metrics: Option<UpstreamMetrics>,
}

impl TransportConnector {
    /// A connector with `options`, or [`ConnectorOptions::default`] (a pool of 128).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        let options = options.unwrap_or_default();
        TransportConnector {
            pool: Arc::new(ConnectionPool::new(options.keepalive_pool_size)),
            bind_to_v4: options.bind_to_v4,
            bind_to_v6: options.bind_to_v6,
            bind_turn: AtomicUsize::new(0),
            sweeper_started: AtomicBool::new(false),
            unexpected_data: Arc::new(AtomicUsize::new(0)),
            tls: tls::TlsConnector::default(),
            metrics: None,
        }
    }

    /// Count the connections [`TransportConnector::get_stream`] hands out
    /// (opened or reused) and time the new ones, in `metrics`; `None` stops
    /// counting.
    pub fn set_metrics(&mut self, metrics: Option<UpstreamMetrics>) {
        self.metrics = metrics;
    }

    /// Open a new connection to `peer`, never from the pool.
    ///
    /// TCP connections get `TCP_NODELAY`. The peer's `connection_timeout`
    /// (default 60 s) bounds the TCP/Unix connect and, separately, the TLS
    /// handshake; its `total_connection_timeout` bounds the whole call.
    ///
    /// # Errors
    /// - `TLSHandshakeFailure` when `peer.tls()` and the handshake or the
    ///   certificate verification fails (never a fallback to plaintext);
    /// - `ConnectTimedout` when either timeout runs out (the context names which),
    ///   `TLSHandshakeTimedout` when the handshake alone runs past `connection_timeout`;
    /// - `ConnectRefused`, `ConnectNoRoute`, `ConnectError` from the OS;
    /// - `BindError` / `SocketError` when the source address or a socket option fails.
    ///
    /// Connect errors have source Upstream and name the peer address.
    ///
    /// # Cancel safety
    /// Dropping the future closes the half-open socket; nothing is pooled.
    pub async fn new_stream<P: Peer>(&self, peer: &P) -> Result<Stream> {
        // copy what the connect needs so no borrow of `peer` lives across .await
        let addr = peer.address().clone();
        let opts = L4Options {
            bind_to: peer
                .bind_to()
                .and_then(|b| b.addr)
                .or_else(|| self.default_bind_to(&addr)),
            // nginx's proxy_connect_timeout when the peer sets none: a
            // blackholed address must not hold a request for minutes
            connection_timeout: peer.connection_timeout().or(Some(DEFAULT_UPSTREAM_TIMEOUT)),
            tcp_keepalive: peer.tcp_keepalive().cloned(),
            tcp_recv_buf: peer.tcp_recv_buf(),
        };
        let total = peer.total_connection_timeout();
        // the handshake gets its own bound, as nginx's proxy_connect_timeout
        // bounds its SSL handshake: a server that accepts and stays silent
        // must not hold the request forever
        let handshake_timeout = opts.connection_timeout.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT);
        let connect = async {
            let stream = l4::connect(&addr, &opts).await?;
            if !peer.tls() {
                return Ok(stream);
            }
            match tokio::time::timeout(handshake_timeout, self.tls.connect(stream, peer)).await {
                Ok(res) => res,
                Err(_) => Err(crate::error::Error::explain(
                    crate::error::ErrorType::TLSHandshakeTimedout,
                    format!("TLS handshake with {peer} took over {handshake_timeout:?}"),
                )
                .into_up()),
            }
        };
        l4::with_connect_timeout(connect, total, "total-connection timeout", &addr).await
    }

    /// A source address from `bind_to_v4`/`bind_to_v6` for `addr`'s family, in turn.
    fn default_bind_to(&self, addr: &SocketAddr) -> Option<std::net::SocketAddr> {
        let candidates = match addr.as_inet()? {
            std::net::SocketAddr::V4(_) => &self.bind_to_v4,
            std::net::SocketAddr::V6(_) => &self.bind_to_v6,
        };
        if candidates.is_empty() {
            return None;
        }
        let turn = self.bind_turn.fetch_add(1, Ordering::Relaxed);
        candidates.get(turn % candidates.len()).copied()
    }

    /// An idle pooled connection to `peer` (same [`Peer::reuse_hash`]) that
    /// is still open and has no unexpected bytes waiting, if there is one.
    /// Connections that fail that check are closed on the way.
    ///
    /// # Cancel safety
    /// Completes without awaiting; dropping it loses nothing.
    pub async fn reused_stream<P: Peer>(&self, peer: &P) -> Option<Stream> {
        let key = peer.reuse_hash();
        loop {
            let mut stream = self.pool.get(key, Instant::now())?;
            if keep_idle(&mut stream, &self.unexpected_data) {
                return Some(stream);
            }
            log::debug!("discarding dead pooled connection to {peer}");
        }
    }

    /// A connection to `peer`: a healthy pooled one if there is one, else a
    /// new one. The `bool` is `true` when the connection was reused.
    ///
    /// # Errors
    /// As [`TransportConnector::new_stream`], when a new connection is needed and fails.
    ///
    /// # Cancel safety
    /// As [`TransportConnector::new_stream`]; a pooled connection already
    /// taken when the future is dropped is closed.
    pub async fn get_stream<P: Peer>(&self, peer: &P) -> Result<(Stream, bool)> {
        if let Some(stream) = self.reused_stream(peer).await {
            if let Some(m) = &self.metrics {
                m.reused();
            }
            return Ok((stream, true));
        }
        let started = self.metrics.as_ref().map(|_| Instant::now());
        // boxed: the connect (and TLS handshake) future is large and needed
        // once per connection, so a request on a pooled one does not carry
        // its room in every request's future
        let stream = Box::pin(self.new_stream(peer)).await?;
        if let (Some(m), Some(started)) = (&self.metrics, started) {
            m.opened(started.elapsed());
        }
        Ok((stream, false))
    }

    /// Give an idle connection back for reuse under `key` (the peer's
    /// [`Peer::reuse_hash`]) for at most `idle_timeout` (`None` = until
    /// evicted; `Some(Duration::ZERO)` = close it now, do not pool).
    ///
    /// The caller must only release a connection that is at a message
    /// boundary (request and response fully read and written). A connection
    /// that is already closed by the upstream or has unread bytes is closed
    /// instead of pooled.
    pub fn release_stream(&self, mut stream: Stream, key: u64, idle_timeout: Option<Duration>) {
        if idle_timeout == Some(Duration::ZERO) {
            return;
        }
        if !keep_idle(&mut stream, &self.unexpected_data) {
            return;
        }
        self.pool.put(key, stream, idle_timeout, Instant::now());
        self.start_sweeper();
    }

    /// How many pooled connections were discarded because the upstream sent
    /// bytes while they sat idle.
    pub fn unexpected_data_connection_count(&self) -> usize {
        self.unexpected_data.load(Ordering::Relaxed)
    }

    /// How many idle connections the pool holds now.
    pub fn idle_connection_count(&self) -> usize {
        self.pool.idle_count()
    }

    /// Start the once-per-second sweeper if it is not running and we are
    /// inside a tokio runtime (see the module docs).
    fn start_sweeper(&self) {
        if self.sweeper_started.load(Ordering::Relaxed)
            || self.sweeper_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // no runtime: retry on a later release; lazy expiry still applies
            self.sweeper_started.store(false, Ordering::Release);
            return;
        };
        let pool = Arc::downgrade(&self.pool);
        let unexpected_data = self.unexpected_data.clone();
        handle.spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick completes at once
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return; // the connector is gone
                };
                pool.sweep(Instant::now(), |s| keep_idle(s, &unexpected_data));
            }
        });
    }
}

impl Default for TransportConnector {
    fn default() -> Self {
        Self::new(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ErrorType;
    use crate::upstreams::peer::{BasicPeer, HttpPeer};
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    /// Generous bound on anything a test waits for.
    const WAIT: Duration = Duration::from_secs(10);

    /// An echo-ish origin on 127.0.0.1:0 that counts accepted connections
    /// and sends each accepted server-side socket to the test.
    struct Origin {
        peer: HttpPeer,
        accepted: Arc<AtomicUsize>,
        conns: mpsc::UnboundedReceiver<TcpStream>,
    }

    async fn origin() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = HttpPeer::new(listener.local_addr().unwrap(), false, String::new());
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, conns) = mpsc::unbounded_channel();
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                if tx.send(s).is_err() {
                    return;
                }
            }
        });
        Origin {
            peer,
            accepted,
            conns,
        }
    }

    /// Wait until the other side of `stream` has closed it: end of stream,
    /// or a reset (a socket closed with unread bytes sends RST, not FIN).
    async fn wait_eof<S: tokio::io::AsyncRead + Unpin + ?Sized>(stream: &mut S) {
        let mut buf = [0u8; 16];
        match tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap()
        {
            Ok(n) => assert_eq!(n, 0, "expected end of stream"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }

    #[tokio::test]
    async fn released_stream_is_reused_on_one_connection() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let (mut s1, reused) = c.get_stream(&o.peer).await.unwrap();
        assert!(!reused);
        let mut server = o.conns.recv().await.unwrap();
        s1.write_all(b"one").await.unwrap();
        let mut buf = [0u8; 3];
        server.read_exact(&mut buf).await.unwrap();
        c.release_stream(s1, o.peer.reuse_hash(), None);
        assert_eq!(c.idle_connection_count(), 1);

        let (mut s2, reused) = c.get_stream(&o.peer).await.unwrap();
        assert!(reused);
        s2.write_all(b"two").await.unwrap();
        // "two" arrives on the first server-side socket: same connection
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"two");
        assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
        assert!(o.conns.try_recv().is_err());
    }

    #[tokio::test]
    async fn stream_closed_by_upstream_is_not_reused() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let (mut s1, _) = c.get_stream(&o.peer).await.unwrap();
        let server = o.conns.recv().await.unwrap();
        drop(server); // the upstream closes its side while the connection is idle
        wait_eof(&mut s1).await;
        // pool it directly: release_stream would already refuse a closed stream,
        // and this test is about the check on the way out of the pool
        c.pool.put(o.peer.reuse_hash(), s1, None, Instant::now());

        let (_s2, reused) = c.get_stream(&o.peer).await.unwrap();
        assert!(!reused);
        // a fresh connection reached the origin
        tokio::time::timeout(WAIT, o.conns.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.idle_connection_count(), 0);
    }

    #[tokio::test]
    async fn stream_with_unexpected_data_is_not_reused() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let (s1, _) = c.get_stream(&o.peer).await.unwrap();
        let mut server = o.conns.recv().await.unwrap();
        c.release_stream(s1, o.peer.reuse_hash(), None);
        assert_eq!(c.idle_connection_count(), 1);
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();

        // the bytes may take a moment to arrive; the pooled stream must be
        // rejected once they have
        let reused = tokio::time::timeout(WAIT, async {
            loop {
                let (s, reused) = c.get_stream(&o.peer).await.unwrap();
                if !reused {
                    return s;
                }
                c.release_stream(s, o.peer.reuse_hash(), None);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        drop(reused);
        assert_eq!(c.unexpected_data_connection_count(), 1);
        // a fresh connection reached the origin
        tokio::time::timeout(WAIT, o.conns.recv())
            .await
            .unwrap()
            .unwrap();
        // the discarded connection was closed
        wait_eof(&mut server).await;
    }

    #[tokio::test]
    async fn idle_timeout_drops_the_stream() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let (s1, _) = c.get_stream(&o.peer).await.unwrap();
        let mut server = o.conns.recv().await.unwrap();
        c.release_stream(s1, o.peer.reuse_hash(), Some(Duration::from_millis(1)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_s2, reused) = c.get_stream(&o.peer).await.unwrap();
        assert!(!reused);
        // the expired connection was closed, not leaked
        wait_eof(&mut server).await;
    }

    #[tokio::test]
    async fn sweeper_closes_expired_stream_of_a_key_never_used_again() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let (s1, _) = c.get_stream(&o.peer).await.unwrap();
        let mut server = o.conns.recv().await.unwrap();
        c.release_stream(s1, o.peer.reuse_hash(), Some(Duration::from_millis(1)));
        // nobody asks for this peer again: the sweeper must close it
        wait_eof(&mut server).await;
        assert_eq!(c.idle_connection_count(), 0);
    }

    #[tokio::test]
    async fn zero_idle_timeout_closes_instead_of_pooling() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let (s1, _) = c.get_stream(&o.peer).await.unwrap();
        let mut server = o.conns.recv().await.unwrap();
        c.release_stream(s1, o.peer.reuse_hash(), Some(Duration::ZERO));
        assert_eq!(c.idle_connection_count(), 0);
        wait_eof(&mut server).await;
    }

    #[tokio::test]
    async fn different_peers_do_not_share_connections() {
        let o = origin().await;
        let c = TransportConnector::new(None);
        let (s1, _) = c.get_stream(&o.peer).await.unwrap();
        c.release_stream(s1, o.peer.reuse_hash(), None);
        let mut other = o.peer.clone();
        other.group_key = 1;
        let (_s2, reused) = c.get_stream(&other).await.unwrap();
        assert!(!reused);
        assert_eq!(c.idle_connection_count(), 1);
    }

    #[tokio::test]
    async fn refused_connect_is_connect_refused_naming_the_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = TransportConnector::new(None);
        let peer = BasicPeer::new(addr);
        let e = c.get_stream(&peer).await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::ConnectRefused);
        assert_eq!(e.esource(), &crate::error::ErrorSource::Upstream);
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[tokio::test]
    async fn tls_peer_against_plaintext_origin_fails_not_downgraded() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let mut peer = o.peer.clone();
        peer.scheme = crate::upstreams::peer::Scheme::HTTPS;
        peer.sni = "localhost".into();
        let (res, server) = tokio::join!(c.new_stream(&peer), async {
            let mut server = o.conns.recv().await.unwrap();
            // a plaintext server answers the ClientHello with garbage
            server
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .await
                .unwrap();
            server
        });
        let e = res.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::TLSHandshakeFailure);
        assert_eq!(e.esource(), &crate::error::ErrorSource::Upstream);
        drop(server);
    }

    #[tokio::test]
    async fn silent_tls_server_times_out_the_handshake() {
        let mut o = origin().await;
        let c = TransportConnector::new(None);
        let mut peer = o.peer.clone();
        peer.scheme = crate::upstreams::peer::Scheme::HTTPS;
        peer.sni = "localhost".into();
        peer.options.connection_timeout = Some(Duration::from_millis(200));
        let (res, _server) = tokio::join!(c.new_stream(&peer), o.conns.recv());
        let e = res.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::TLSHandshakeTimedout);
        assert_eq!(e.esource(), &crate::error::ErrorSource::Upstream);
    }

    #[tokio::test]
    async fn bind_to_sets_the_source_address() {
        let mut o = origin().await;
        let mut opts = ConnectorOptions::new(8);
        opts.bind_to_v4 = vec!["127.0.0.1:0".parse().unwrap()];
        let c = TransportConnector::new(Some(opts));
        let (s1, _) = c.get_stream(&o.peer).await.unwrap();
        let server = o.conns.recv().await.unwrap();
        assert_eq!(
            server.peer_addr().unwrap().ip(),
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
        );
        drop(s1);
    }

    #[tokio::test]
    async fn uds_peer_connects() {
        let dir = std::env::temp_dir().join(format!("conn-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("origin.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let peer = HttpPeer::new_uds(path.to_str().unwrap(), false, String::new()).unwrap();
        let c = TransportConnector::new(None);
        let (mut s, reused) = c.get_stream(&peer).await.unwrap();
        assert!(!reused);
        let (mut server, _) = listener.accept().await.unwrap();
        s.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        server.read_exact(&mut b).await.unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn connector_and_its_futures_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        fn assert_send<T: Send>(_: T) {}
        let c = TransportConnector::new(None);
        assert_send_sync(&c);
        let peer = HttpPeer::new(("127.0.0.1", 9), false, String::new());
        assert_send(c.get_stream(&peer));
        assert_send(c.reused_stream(&peer));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_shared_across_threads() {
        let o = origin().await;
        let c = Arc::new(TransportConnector::new(None));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                let peer = o.peer.clone();
                tokio::spawn(async move {
                    for _ in 0..25 {
                        let (mut s, _) = c.get_stream(&peer).await.unwrap();
                        s.write_all(b"x").await.unwrap();
                        c.release_stream(s, peer.reuse_hash(), None);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // at most 4 streams were ever out at once, so at most 4 were opened
        let opened = o.accepted.load(Ordering::SeqCst);
        assert!(opened <= 4, "opened {opened} connections");
        assert!(c.idle_connection_count() <= 4);
    }

    #[test]
    fn probe_classifies_idle_states() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, mut b) = tokio::io::duplex(64);
            let mut a: Stream = Box::new(a);
            assert_eq!(probe_idle(&mut a), IdleState::Healthy);
            b.write_all(b"x").await.unwrap();
            assert_eq!(probe_idle(&mut a), IdleState::UnexpectedData);
            drop(b);
            assert_eq!(probe_idle(&mut a), IdleState::Closed);
        });
    }

    /// The same over TCP, where the probe reads only what tokio's readiness
    /// says is there (`try_read`).
    #[tokio::test]
    async fn probe_classifies_idle_tcp_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let mut a: Stream = Box::new(a.unwrap());
        let (mut b, _) = accepted.unwrap();
        assert_eq!(probe_idle(&mut a), IdleState::Healthy);
        b.write_all(b"x").await.unwrap();
        assert_eq!(probe_when_readable(&mut a).await, IdleState::UnexpectedData);
        drop(b);
        assert_eq!(probe_when_readable(&mut a).await, IdleState::Closed);
    }

    /// Probe `s` once tokio has seen it readable; again after the next
    /// readiness when the probe found nothing (readiness from an earlier
    /// event, cleared by that probe).
    async fn probe_when_readable(s: &mut Stream) -> IdleState {
        tokio::time::timeout(WAIT, async {
            loop {
                std::future::poll_fn(|cx| s.poll_read_ready(cx))
                    .await
                    .unwrap();
                match probe_idle(s) {
                    IdleState::Healthy => continue,
                    state => return state,
                }
            }
        })
        .await
        .unwrap()
    }
}
