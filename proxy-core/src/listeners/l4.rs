//! Binding TCP and Unix listening sockets and accepting on them.

use std::fs::Permissions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use log::{debug, warn};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UnixListener};

use super::{ServerAddress, TcpSocketOptions};
use crate::error::{Error, ErrorType::*, OrErr, Result};
use crate::protocols::{SocketAddr, Stream};
use crate::server::ListenFds;

/// Backlog of every listening socket (the kernel caps it at `somaxconn`).
const LISTENER_BACKLOG: i32 = 65535;

/// Permissions of a Unix socket file when none are given: anyone may connect.
const DEFAULT_UDS_MODE: u32 = 0o666;

/// How often to retry a TCP bind whose address is in use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BindRetry {
    /// Attempts in all (at least 1).
    pub(crate) attempts: usize,
    /// Wait between attempts.
    pub(crate) delay: Duration,
}

impl Default for BindRetry {
    /// Pingora's: 30 attempts 1 second apart.
    fn default() -> Self {
        BindRetry {
            attempts: 30,
            delay: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener, Option<TcpSocketOptions>),
    Unix(UnixListener),
}

/// A bound listening socket, ready to accept. Dropping it closes the socket.
#[derive(Debug)]
pub struct ListenerEndpoint {
    address: ServerAddress,
    local_addr: SocketAddr,
    listener: Listener,
}

/// A listening socket bound (or inherited from a previous process) on the
/// main thread before the runtimes start; [`BoundListener::into_endpoint`]
/// makes it a [`ListenerEndpoint`] inside a runtime.
#[derive(Debug)]
pub(crate) struct BoundListener {
    address: ServerAddress,
    socket: BoundSocket,
}

#[derive(Debug)]
enum BoundSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl BoundListener {
    /// Take the socket `fds` inherited for `address`, or bind a new one
    /// (retrying an address in use as `retry` says, sleeping on this thread),
    /// and record it in `fds` so it can be handed over in turn.
    ///
    /// # Errors
    /// `BindError` naming the address (see [`super::Listeners::build`]).
    pub(crate) fn bind(
        address: &ServerAddress,
        retry: BindRetry,
        fds: &mut ListenFds,
    ) -> Result<Self> {
        let key = address.to_string();
        let socket = match (fds.take_inherited(&key), address) {
            (Some(fd), ServerAddress::Tcp(..)) => {
                debug!("using the inherited socket of {address}");
                BoundSocket::Tcp(std::net::TcpListener::from(fd))
            }
            (Some(fd), ServerAddress::Uds(..)) => {
                debug!("using the inherited socket of {address}");
                BoundSocket::Unix(std::os::unix::net::UnixListener::from(fd))
            }
            (None, ServerAddress::Tcp(addr, opts)) => {
                BoundSocket::Tcp(bind_tcp(addr, opts.as_ref(), retry)?)
            }
            (None, ServerAddress::Uds(path, perms)) => {
                BoundSocket::Unix(bind_uds(path, perms.clone())?)
            }
        };
        let fd = match &socket {
            BoundSocket::Tcp(l) => l.as_fd(),
            BoundSocket::Unix(l) => l.as_fd(),
        };
        fds.record(key, fd)?;
        Ok(BoundListener {
            address: address.clone(),
            socket,
        })
    }

    /// Register the socket with the current tokio runtime.
    ///
    /// # Errors
    /// `SocketError` when it cannot be made non-blocking or registered (no
    /// runtime, or the descriptor is not a listening socket of its kind).
    pub(crate) fn into_endpoint(self) -> Result<ListenerEndpoint> {
        let address = self.address;
        let ctx = || format!("registering listener {address}");
        let (listener, local_addr) = match self.socket {
            BoundSocket::Tcp(l) => {
                l.set_nonblocking(true).or_err_with(SocketError, ctx)?;
                let local = l.local_addr().or_err_with(SocketError, ctx)?;
                let opts = match &address {
                    ServerAddress::Tcp(_, opts) => opts.clone(),
                    ServerAddress::Uds(..) => None,
                };
                if let Some(opts) = &opts {
                    set_listener_options(&l, local.is_ipv6(), opts)
                        .or_err_with(SocketError, || {
                            format!("setting the socket options of listener {address}")
                        })?;
                }
                let l = TcpListener::from_std(l).or_err_with(SocketError, ctx)?;
                (Listener::Tcp(l, opts), SocketAddr::Inet(local))
            }
            BoundSocket::Unix(l) => {
                l.set_nonblocking(true).or_err_with(SocketError, ctx)?;
                let l = UnixListener::from_std(l).or_err_with(SocketError, ctx)?;
                let path = address.as_str().into();
                (Listener::Unix(l), SocketAddr::Unix(Some(path)))
            }
        };
        debug!("listening on {address}");
        Ok(ListenerEndpoint {
            address,
            local_addr,
            listener,
        })
    }
}

impl ListenerEndpoint {
    /// Bind one address (see [`super::Listeners::build`]) on a blocking
    /// thread, since a bind may wait for an address in use.
    pub(crate) async fn bind(address: &ServerAddress, retry: BindRetry) -> Result<Self> {
        let addr = address.clone();
        let bound = tokio::task::spawn_blocking(move || {
            BoundListener::bind(&addr, retry, &mut ListenFds::new())
        })
        .await
        .or_err(InternalError, "binding task failed")??;
        bound.into_endpoint()
    }

    /// The address as the user gave it.
    pub fn address(&self) -> &ServerAddress {
        &self.address
    }

    /// The address actually bound: for TCP `127.0.0.1:0` this carries the
    /// port the kernel chose.
    pub fn local_addr(&self) -> &SocketAddr {
        &self.local_addr
    }

    /// Accept one connection. TCP connections get `TCP_NODELAY` and the
    /// keepalive and buffer options of the listener.
    ///
    /// # Errors
    /// [`crate::ErrorType::AcceptError`] naming the listening address (e.g. too many
    /// open files); the listener stays usable.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call accepts nothing.
    pub async fn accept(&self) -> Result<Stream> {
        match &self.listener {
            Listener::Tcp(l, opts) => {
                let (stream, peer) = l
                    .accept()
                    .await
                    .or_err_with(AcceptError, || format!("accepting on {}", self.address))?;
                apply_accepted_tcp_options(&stream, opts.as_ref(), &peer);
                Ok(Box::new(stream))
            }
            Listener::Unix(l) => {
                let (stream, _) = l
                    .accept()
                    .await
                    .or_err_with(AcceptError, || format!("accepting on {}", self.address))?;
                Ok(Box::new(stream))
            }
        }
    }
}

/// The options set on the listening socket itself, fresh or inherited from
/// a previous process (so an upgrade applies changed values), that the
/// connections it accepts inherit: DSCP, TCP Fast Open, `TCP_NOTSENT_LOWAT`.
///
/// # Errors
/// A DSCP over 63, or a refused setsockopt.
fn set_listener_options(
    listener: &std::net::TcpListener,
    ipv6: bool,
    opts: &TcpSocketOptions,
) -> io::Result<()> {
    let sock = SockRef::from(listener);
    if let Some(dscp) = opts.dscp {
        set_dscp(&sock, ipv6, dscp)?;
    }
    if let Some(queue) = opts.tcp_fastopen.filter(|&q| q > 0) {
        set_tcp_fastopen(&sock, queue)?;
    }
    if let Some(bytes) = opts.tcp_notsent_lowat {
        sock.set_tcp_notsent_lowat(bytes)?;
    }
    Ok(())
}

fn apply_accepted_tcp_options(
    stream: &TcpStream,
    opts: Option<&TcpSocketOptions>,
    peer: &std::net::SocketAddr,
) {
    // A failed setsockopt degrades the connection a little; it is no reason to drop it.
    if let Err(e) = stream.set_nodelay(true) {
        debug!("TCP_NODELAY on connection from {peer}: {e}");
    }
    let Some(opts) = opts else { return };
    let sock = SockRef::from(stream);
    if let Some(ka) = &opts.tcp_keepalive {
        if let Err(e) = ka.apply(&sock) {
            warn!("TCP keepalive on connection from {peer}: {e}");
        }
    }
    if let Some(size) = opts.tcp_recv_buf {
        if let Err(e) = sock.set_recv_buffer_size(size) {
            warn!("SO_RCVBUF on connection from {peer}: {e}");
        }
    }
    if let Some(size) = opts.tcp_snd_buf {
        if let Err(e) = sock.set_send_buffer_size(size) {
            warn!("SO_SNDBUF on connection from {peer}: {e}");
        }
    }
}

fn bind_tcp(
    addr: &str,
    opts: Option<&TcpSocketOptions>,
    retry: BindRetry,
) -> Result<std::net::TcpListener> {
    let sock_addr: std::net::SocketAddr = addr.parse().map_err(|e| {
        Error::explain(
            BindError,
            format!("listen address {addr:?} is not an ip:port ({e})"),
        )
    })?;
    let attempts = retry.attempts.max(1);
    let mut attempt = 1;
    loop {
        match try_bind_tcp(sock_addr, opts) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < attempts => {
                warn!(
                    "binding {addr}: address in use, retrying in {:?} ({attempt}/{attempts})",
                    retry.delay
                );
                attempt += 1;
                std::thread::sleep(retry.delay);
            }
            Err(e) => {
                return Err(Error::because(
                    BindError,
                    format!("binding TCP listener {addr}"),
                    e,
                ))
            }
        }
    }
}

fn try_bind_tcp(
    addr: std::net::SocketAddr,
    opts: Option<&TcpSocketOptions>,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if let Some(opts) = opts {
        if let (Some(v6only), true) = (opts.ipv6_only, addr.is_ipv6()) {
            socket.set_only_v6(v6only)?;
        }
        if let Some(reuse) = opts.so_reuseport {
            socket.set_reuse_port(reuse)?;
        }
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTENER_BACKLOG)?;
    Ok(socket.into())
}

/// The DSCP bits (RFC 2474: the upper six of the former TOS octet) on a
/// listening socket; its connections inherit them.
fn set_dscp(socket: &Socket, ipv6: bool, dscp: u8) -> io::Result<()> {
    if dscp > 63 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("dscp {dscp} is over 63"),
        ));
    }
    let tos = u32::from(dscp) << 2;
    if ipv6 {
        socket.set_tclass_v6(tos)
    } else {
        socket.set_tos_v4(tos)
    }
}

/// `TCP_FASTOPEN` on a listening socket: at most `queue` connections whose
/// SYN carried data wait for their handshake (RFC 7413).
fn set_tcp_fastopen(socket: &Socket, queue: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let qlen = libc::c_int::try_from(queue).unwrap_or(libc::c_int::MAX);
    // socket2 has no call for this option.
    // SAFETY: `socket` is an open socket for the whole call, and the option
    // value is a c_int read from a live local of exactly the length passed.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            std::ptr::from_ref(&qlen).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn bind_uds(path: &str, perms: Option<Permissions>) -> Result<std::os::unix::net::UnixListener> {
    let p = Path::new(path);
    // A socket file left by a previous process would make bind fail with
    // "address in use"; a file of another kind is not ours to delete.
    if let Ok(meta) = std::fs::symlink_metadata(p) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(p)
                .or_err_with(BindError, || format!("removing stale socket file {path}"))?;
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(p)
        .or_err_with(BindError, || format!("binding Unix listener {path}"))?;
    let perms = perms.unwrap_or_else(|| Permissions::from_mode(DEFAULT_UDS_MODE));
    std::fs::set_permissions(p, perms)
        .or_err_with(BindError, || format!("setting permissions of {path}"))?;
    Ok(listener)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::listeners::DEFAULT_TCP_NOTSENT_LOWAT;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn quick() -> BindRetry {
        BindRetry {
            attempts: 2,
            delay: Duration::from_millis(10),
        }
    }

    fn temp_sock(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("proxy-core-l4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name).display().to_string()
    }

    #[tokio::test]
    async fn tcp_listener_reports_chosen_port_and_accepts() {
        let ep = ListenerEndpoint::bind(&ServerAddress::Tcp("127.0.0.1:0".into(), None), quick())
            .await
            .unwrap();
        let addr = *ep.local_addr().as_inet().unwrap();
        assert_ne!(addr.port(), 0);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut server = ep.accept().await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(
            server.peer_addr(),
            client.local_addr().ok().map(SocketAddr::Inet)
        );
    }

    #[tokio::test]
    async fn unparsable_tcp_address_error_names_it() {
        let e = ListenerEndpoint::bind(&ServerAddress::Tcp("localhost:http".into(), None), quick())
            .await
            .unwrap_err();
        assert_eq!(e.etype(), &BindError);
        assert!(
            e.to_string()
                .contains("\"localhost:http\" is not an ip:port"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn address_in_use_is_retried_then_fails_naming_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let e = ListenerEndpoint::bind(&ServerAddress::Tcp(addr.clone(), None), quick())
            .await
            .unwrap_err();
        assert_eq!(e.etype(), &BindError);
        assert!(e.to_string().contains(&addr), "{e}");
    }

    /// The `TCP_NOTSENT_LOWAT` of a connection accepted by the first
    /// listener of `listeners`.
    async fn accepted_notsent_lowat(listeners: super::super::Listeners) -> u32 {
        let ep = ListenerEndpoint::bind(&listeners.endpoints()[0], quick())
            .await
            .unwrap();
        let Listener::Tcp(l, _) = &ep.listener else {
            unreachable!("a TCP address makes a TCP listener")
        };
        let _client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = l.accept().await.unwrap();
        SockRef::from(&accepted).tcp_notsent_lowat().unwrap()
    }

    #[tokio::test]
    async fn plaintext_listeners_get_a_notsent_lowat_unless_told_otherwise() {
        use super::super::Listeners;
        let system = {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.tcp_notsent_lowat().unwrap()
        };
        let addr = "127.0.0.1:0";
        assert_eq!(
            accepted_notsent_lowat(Listeners::tcp(addr)).await,
            DEFAULT_TCP_NOTSENT_LOWAT
        );
        let with = |v| {
            let mut l = Listeners::new();
            let opts = TcpSocketOptions {
                tcp_notsent_lowat: v,
                ..Default::default()
            };
            l.add_tcp_with_settings(addr, opts);
            l
        };
        assert_eq!(accepted_notsent_lowat(with(Some(4096))).await, 4096);
        // options without it, and a TLS listener's default, keep the system's
        assert_eq!(accepted_notsent_lowat(with(None)).await, system);
        let (cert, key) = crate::tls::cert::tests::self_signed("l.test", 1);
        let ck = crate::tls::CertKey::new(vec![cert], key).unwrap();
        let settings = crate::tls::TlsSettings::with_cert(std::sync::Arc::new(ck)).unwrap();
        let mut tls = Listeners::new();
        tls.add_tls_with_settings(addr, None, settings);
        assert_eq!(accepted_notsent_lowat(tls).await, system);
    }

    /// A listener on a free loopback port with `opts`.
    async fn bind_local(opts: TcpSocketOptions) -> Result<ListenerEndpoint> {
        let addr = ServerAddress::Tcp("127.0.0.1:0".into(), Some(opts));
        ListenerEndpoint::bind(&addr, quick()).await
    }

    #[tokio::test]
    async fn dscp_fastopen_and_user_timeout_reach_accepted_connections() {
        let opts = TcpSocketOptions {
            tcp_fastopen: Some(16),
            dscp: Some(46),
            tcp_keepalive: Some(super::super::TcpKeepalive {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(5),
                count: 3,
                user_timeout: Duration::from_millis(7_500),
            }),
            ..Default::default()
        };
        let ep = bind_local(opts).await.unwrap();
        let port = ep.local_addr().as_inet().unwrap().port();
        let _client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // accept on the inner listener to keep the TcpStream, then apply
        // what ListenerEndpoint::accept applies
        let Listener::Tcp(l, opts) = &ep.listener else {
            unreachable!("a TCP address makes a TCP listener")
        };
        let (accepted, peer) = l.accept().await.unwrap();
        apply_accepted_tcp_options(&accepted, opts.as_ref(), &peer);
        let sock = SockRef::from(&accepted);
        // expedited forwarding, 46 << 2
        assert_eq!(sock.tos_v4().unwrap(), 0xb8);
        assert_eq!(
            sock.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(7_500))
        );
        assert!(sock.keepalive().unwrap());

        let bad = TcpSocketOptions {
            dscp: Some(64),
            ..Default::default()
        };
        let e = bind_local(bad).await.unwrap_err();
        assert_eq!(e.etype(), &SocketError);
        assert!(format!("{e:#}").contains("dscp 64 is over 63"), "{e:#}");
    }

    #[tokio::test]
    async fn ipv6_only_and_reuseport_options_bind() {
        let opts = TcpSocketOptions {
            so_reuseport: Some(true),
            tcp_keepalive: Some(super::super::TcpKeepalive {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(5),
                count: 3,
                user_timeout: Duration::from_secs(30),
            }),
            tcp_recv_buf: Some(65536),
            ..Default::default()
        };
        let a = ListenerEndpoint::bind(
            &ServerAddress::Tcp("127.0.0.1:0".into(), Some(opts.clone())),
            quick(),
        )
        .await
        .unwrap();
        // a second socket with SO_REUSEPORT may share the port
        let port = a.local_addr().as_inet().unwrap().port();
        let b = ListenerEndpoint::bind(
            &ServerAddress::Tcp(format!("127.0.0.1:{port}"), Some(opts.clone())),
            quick(),
        )
        .await
        .unwrap();
        assert_eq!(b.local_addr().as_inet().unwrap().port(), port);
        // accepting applies the options without failing the connection
        let _c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let accepted = tokio::select! { s = a.accept() => s, s = b.accept() => s };
        assert!(accepted.is_ok());
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let v6 = TcpSocketOptions {
                ipv6_only: Some(true),
                ..Default::default()
            };
            let ep =
                ListenerEndpoint::bind(&ServerAddress::Tcp("[::1]:0".into(), Some(v6)), quick())
                    .await
                    .unwrap();
            assert!(ep.local_addr().as_inet().unwrap().is_ipv6());
        }
    }

    #[tokio::test]
    async fn uds_listener_replaces_stale_socket_and_sets_permissions() {
        let path = temp_sock("perm.sock");
        // leave a stale socket file behind
        drop(std::os::unix::net::UnixListener::bind(&path).or_else(|_| {
            std::fs::remove_file(&path)?;
            std::os::unix::net::UnixListener::bind(&path)
        }));
        let ep = ListenerEndpoint::bind(
            &ServerAddress::Uds(path.clone(), Some(Permissions::from_mode(0o600))),
            quick(),
        )
        .await
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut server = ep.accept().await.unwrap();
        server.write_all(b"ok").await.unwrap();
        let mut buf = [0u8; 2];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");
    }

    #[tokio::test]
    async fn uds_default_permissions_are_0666() {
        let path = temp_sock("default.sock");
        let _ep = ListenerEndpoint::bind(&ServerAddress::Uds(path.clone(), None), quick())
            .await
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
    }

    #[tokio::test]
    async fn uds_path_holding_a_regular_file_is_not_deleted() {
        let path = temp_sock("regular.file");
        std::fs::write(&path, b"keep me").unwrap();
        let e = ListenerEndpoint::bind(&ServerAddress::Uds(path.clone(), None), quick())
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&path), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }
}
