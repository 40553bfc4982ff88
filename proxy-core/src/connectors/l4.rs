//! L4 connect: open a TCP or Unix socket connection to a peer address.
//!
//! Socket options are applied before or right after `connect(2)`: a source
//! address ([`BindTo`]), `SO_RCVBUF`, TCP keepalive ([`TcpKeepalive`]) and
//! always `TCP_NODELAY` (an HTTP proxy writes whole heads and body chunks; it
//! never wants Nagle's delay). OS errors map to the connect kinds of
//! [`ErrorType`]: `ECONNREFUSED` → `ConnectRefused`, `EHOSTUNREACH` /
//! `ENETUNREACH` → `ConnectNoRoute`, anything else → `ConnectError`, all with
//! source Upstream and the peer address in the context.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::net::{TcpSocket, UnixStream};

use crate::error::{Error, ErrorType, OrErr, Result};
use crate::protocols::{SocketAddr, Stream};

/// The local address to connect from.
///
/// Pingora's `BindTo` also carries a source port range and a fallback flag;
/// those are not supported yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindTo {
    /// The source IP and port (port 0 = any). `None` = let the OS choose.
    pub addr: Option<std::net::SocketAddr>,
}

impl BindTo {
    /// Connect from `addr` (port 0 = any free port).
    pub fn new(addr: std::net::SocketAddr) -> Self {
        BindTo { addr: Some(addr) }
    }
}

/// TCP keepalive probing (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_KEEPCNT`) and the user timeout (`TCP_USER_TIMEOUT`), for upstream
/// connections ([`crate::upstreams::peer::PeerOptions`]) and accepted ones
/// ([`crate::listeners::TcpSocketOptions`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpKeepalive {
    /// How long the connection is idle before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// How many unanswered probes close the connection.
    pub count: usize,
    /// How long sent data may stay unacknowledged before the connection is
    /// closed (Linux `TCP_USER_TIMEOUT`, RFC 5482); `Duration::ZERO` keeps
    /// the system's behaviour. Milliseconds are the unit the kernel keeps.
    pub user_timeout: Duration,
}

impl TcpKeepalive {
    /// Set these probes and the user timeout on `sock`.
    pub(crate) fn apply(&self, sock: &socket2::Socket) -> std::io::Result<()> {
        let params = socket2::TcpKeepalive::new()
            .with_time(self.idle)
            .with_interval(self.interval)
            .with_retries(u32::try_from(self.count).unwrap_or(u32::MAX));
        sock.set_tcp_keepalive(&params)?;
        if !self.user_timeout.is_zero() {
            sock.set_tcp_user_timeout(Some(self.user_timeout))?;
        }
        Ok(())
    }
}

/// What one L4 connect needs, copied out of the peer so that no borrow of it
/// is held across `.await`.
#[derive(Debug, Clone, Default)]
pub(crate) struct L4Options {
    /// Source address to bind before connecting.
    pub(crate) bind_to: Option<std::net::SocketAddr>,
    /// Limit on the connect itself.
    pub(crate) connection_timeout: Option<Duration>,
    /// TCP keepalive probing.
    pub(crate) tcp_keepalive: Option<TcpKeepalive>,
    /// `SO_RCVBUF` in bytes.
    pub(crate) tcp_recv_buf: Option<usize>,
}

/// The connect kind for an OS error from `connect(2)`.
fn connect_error_type(e: &io::Error) -> ErrorType {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return ErrorType::ConnectRefused;
    }
    match e.raw_os_error() {
        Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => ErrorType::ConnectNoRoute,
        _ => ErrorType::ConnectError,
    }
}

/// Run `fut` under `limit` (`None` = no limit); when it runs out, fail with
/// `ConnectTimedout` (source Upstream) whose context names the timeout (`what`,
/// e.g. `"connection timeout"`), its length and the peer address.
///
/// # Cancel safety
/// Dropping the future drops `fut` (a half-open socket is closed).
pub(crate) async fn with_connect_timeout<T, F>(
    fut: F,
    limit: Option<Duration>,
    what: &'static str,
    addr: &SocketAddr,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let Some(limit) = limit else {
        return fut.await;
    };
    match tokio::time::timeout(limit, fut).await {
        Ok(res) => res,
        Err(_) => Err(Error::explain(
            ErrorType::ConnectTimedout,
            format!("{what} of {limit:?} elapsed connecting to {addr}"),
        )
        .into_up()),
    }
}

/// Open a connection to `addr`: TCP (with `TCP_NODELAY`) for an inet
/// address, a Unix stream for a path.
///
/// # Errors
/// `ConnectTimedout` when `opts.connection_timeout` runs out;
/// `ConnectRefused`, `ConnectNoRoute` or `ConnectError` from the OS;
/// `BindError` when the source address cannot be bound; `SocketError` when a
/// socket option cannot be set. All have source Upstream except `BindError`
/// and `SocketError` (Internal) and name `addr`.
///
/// # Cancel safety
/// Dropping the future closes the socket being connected.
pub(crate) async fn connect(addr: &SocketAddr, opts: &L4Options) -> Result<Stream> {
    let connecting = async {
        match addr {
            SocketAddr::Inet(inet) => connect_tcp(*inet, opts).await,
            SocketAddr::Unix(Some(path)) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| connect_io_error(e, addr))?;
                Ok(Box::new(stream) as Stream)
            }
            SocketAddr::Unix(None) => Error::e_explain(
                ErrorType::ConnectError,
                "cannot connect to an unnamed Unix socket",
            )
            .map_err(Error::into_up),
        }
    };
    with_connect_timeout(
        connecting,
        opts.connection_timeout,
        "connection timeout",
        addr,
    )
    .await
}

fn connect_io_error(e: io::Error, addr: &SocketAddr) -> Box<Error> {
    Error::because(connect_error_type(&e), format!("connecting to {addr}"), e).into_up()
}

async fn connect_tcp(inet: std::net::SocketAddr, opts: &L4Options) -> Result<Stream> {
    let addr = SocketAddr::Inet(inet);
    let socket = if inet.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .or_err_with(ErrorType::SocketError, || {
        format!("creating a socket to connect to {addr}")
    })
    .map_err(Error::into_in)?;

    if let Some(size) = opts.tcp_recv_buf {
        socket
            .set_recv_buffer_size(u32::try_from(size).unwrap_or(u32::MAX))
            .or_err_with(ErrorType::SocketError, || {
                format!("setting SO_RCVBUF to {size} bytes for {addr}")
            })
            .map_err(Error::into_in)?;
    }
    if let Some(ka) = &opts.tcp_keepalive {
        ka.apply(&socket2::SockRef::from(&socket))
            .or_err_with(ErrorType::SocketError, || {
                format!("setting TCP keepalive {ka:?} for {addr}")
            })
            .map_err(Error::into_in)?;
    }
    if let Some(local) = opts.bind_to {
        socket
            .bind(local)
            .or_err_with(ErrorType::BindError, || {
                format!("binding {local} to connect to {addr}")
            })
            .map_err(Error::into_in)?;
    }

    let stream = socket
        .connect(inet)
        .await
        .map_err(|e| connect_io_error(e, &addr))?;
    stream
        .set_nodelay(true)
        .or_err_with(ErrorType::SocketError, || {
            format!("setting TCP_NODELAY for {addr}")
        })
        .map_err(Error::into_in)?;
    Ok(Box::new(stream))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn os_errors_map_to_connect_kinds() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(connect_error_type(&refused), ErrorType::ConnectRefused);
        let no_route = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(connect_error_type(&no_route), ErrorType::ConnectNoRoute);
        let net_down = io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert_eq!(connect_error_type(&net_down), ErrorType::ConnectNoRoute);
        let other = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(connect_error_type(&other), ErrorType::ConnectError);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_maps_to_connect_timedout_naming_timeout_and_peer() {
        let addr = SocketAddr::Inet("127.0.0.1:9".parse().unwrap());
        let never = std::future::pending::<Result<()>>();
        let e = with_connect_timeout(
            never,
            Some(Duration::from_secs(3)),
            "connection timeout",
            &addr,
        )
        .await
        .unwrap_err();
        assert_eq!(e.etype(), &ErrorType::ConnectTimedout);
        assert_eq!(e.esource(), &crate::error::ErrorSource::Upstream);
        let msg = e.to_string();
        assert!(msg.contains("connection timeout of 3s"), "{msg}");
        assert!(msg.contains("127.0.0.1:9"), "{msg}");
    }

    #[tokio::test]
    async fn no_timeout_waits_for_the_future() {
        let addr = SocketAddr::Inet("127.0.0.1:9".parse().unwrap());
        let v = with_connect_timeout(async { Ok(5) }, None, "connection timeout", &addr)
            .await
            .unwrap();
        assert_eq!(v, 5);
    }

    #[tokio::test]
    async fn tcp_connect_with_options_reaches_the_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = SocketAddr::Inet(listener.local_addr().unwrap());
        let opts = L4Options {
            bind_to: Some("127.0.0.1:0".parse().unwrap()),
            connection_timeout: Some(Duration::from_secs(10)),
            tcp_keepalive: Some(TcpKeepalive {
                idle: Duration::from_secs(30),
                interval: Duration::from_secs(5),
                count: 3,
                user_timeout: Duration::from_secs(20),
            }),
            tcp_recv_buf: Some(64 * 1024),
        };
        let mut stream = connect(&addr, &opts).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(stream.peer_addr(), Some(addr));
    }

    #[tokio::test]
    async fn refused_connect_is_connect_refused_from_upstream() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = SocketAddr::Inet(listener.local_addr().unwrap());
        drop(listener);
        let e = connect(&addr, &L4Options::default()).await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::ConnectRefused);
        assert_eq!(e.esource(), &crate::error::ErrorSource::Upstream);
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[tokio::test]
    async fn unix_socket_connect_reaches_the_listener() {
        let dir = std::env::temp_dir().join(format!("l4-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("up.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let addr = SocketAddr::Unix(Some(path.clone()));
        let mut stream = connect(&addr, &L4Options::default()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        stream.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn missing_unix_socket_is_a_connect_error() {
        let addr = SocketAddr::Unix(Some("/nonexistent-dir/up.sock".into()));
        let e = connect(&addr, &L4Options::default()).await.unwrap_err();
        assert!(e.etype().is_connect_error(), "{e}");
        assert!(e.to_string().contains("/nonexistent-dir/up.sock"), "{e}");
    }
}
