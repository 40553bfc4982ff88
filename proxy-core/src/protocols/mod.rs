//! Transports and wire protocols.
//!
//! A [`Stream`] is a boxed bidirectional byte stream ([`IO`]): a TCP or Unix
//! socket, or a [`crate::tls::TlsStream`] over one of those. The HTTP protocols in
//! [`http`] read and write a `Stream` and know nothing of how it was made.

pub mod http;
mod send_file;

use std::fmt::Debug;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// The address of one end of a connection: an inet socket or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddr {
    /// An IPv4 or IPv6 address and port.
    Inet(std::net::SocketAddr),
    /// A Unix domain socket, with its path when it has one (an unnamed socket has none).
    Unix(Option<std::path::PathBuf>),
}

impl SocketAddr {
    /// The inet address, if this is one.
    pub fn as_inet(&self) -> Option<&std::net::SocketAddr> {
        match self {
            SocketAddr::Inet(a) => Some(a),
            SocketAddr::Unix(_) => None,
        }
    }
}

impl std::fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketAddr::Inet(a) => write!(f, "{a}"),
            SocketAddr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            SocketAddr::Unix(None) => write!(f, "unix:(unnamed)"),
        }
    }
}

impl From<std::net::SocketAddr> for SocketAddr {
    fn from(a: std::net::SocketAddr) -> Self {
        SocketAddr::Inet(a)
    }
}

/// A bidirectional byte stream the framework can speak HTTP over.
///
/// Implemented for tokio's `TcpStream`, `UnixStream` and `DuplexStream` (the
/// last for tests without sockets).
pub trait IO: AsyncRead + AsyncWrite + Unpin + Send + Sync + Debug + 'static {
    /// The remote end's address, when the transport has one.
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }
    /// The local end's address, when the transport has one.
    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }
    /// Ready when a read would not block (data, end of stream or an error
    /// is waiting). Lets a session wait for the next request on an idle
    /// connection without holding a read buffer. The default is always
    /// ready (a read then waits instead).
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    /// Read into `buf` without waiting and without leaving a waker behind:
    /// `Err(WouldBlock)` when nothing is known to be waiting. Lets a pool
    /// check an idle connection (see `connectors`) without the runtime's
    /// registration lock and, on a TCP or Unix socket whose readiness
    /// tokio has not seen change, without a system call. The default polls
    /// one read with a waker that does nothing.
    ///
    /// # Errors
    /// `WouldBlock` as above; the transport's read errors.
    fn try_read_now(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut read = tokio::io::ReadBuf::new(buf);
        match std::pin::Pin::new(self).poll_read(&mut cx, &mut read) {
            Poll::Ready(Ok(())) => Ok(read.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }
    /// The facts of the TLS handshake when this stream is TLS
    /// ([`crate::tls::TlsStream`]); `None` for plaintext transports.
    fn ssl_digest(&self) -> Option<std::sync::Arc<crate::tls::SslDigest>> {
        None
    }
    /// Whether [`IO::poll_send_file`] works on this transport: a plain TCP
    /// or Unix socket. `false` by default (TLS must encrypt in user space;
    /// in-memory transports have no socket).
    fn can_send_file(&self) -> bool {
        false
    }
    /// Send up to `count` bytes of `file`, from byte `offset`, with
    /// sendfile(2): no copy through user space. Ready with the number of
    /// bytes sent (0 when `file` ends at or before `offset`).
    ///
    /// # Errors
    /// `Unsupported` when [`IO::can_send_file`] is `false`; the socket's or
    /// the file's I/O errors otherwise.
    fn poll_send_file(
        &self,
        _cx: &mut Context<'_>,
        _file: &std::fs::File,
        _offset: u64,
        _count: usize,
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Err(std::io::ErrorKind::Unsupported.into()))
    }
}

/// A boxed [`IO`]: what listeners hand to apps and connectors hand to client sessions.
pub type Stream = Box<dyn IO>;

impl IO for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
    fn try_read_now(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        tokio::net::TcpStream::try_read(self, buf)
    }
    send_file::socket_send_file!();
    fn peer_addr(&self) -> Option<SocketAddr> {
        tokio::net::TcpStream::peer_addr(self)
            .ok()
            .map(SocketAddr::Inet)
    }
    fn local_addr(&self) -> Option<SocketAddr> {
        tokio::net::TcpStream::local_addr(self)
            .ok()
            .map(SocketAddr::Inet)
    }
}

impl IO for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::net::UnixStream::poll_read_ready(self, cx)
    }
    fn try_read_now(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        tokio::net::UnixStream::try_read(self, buf)
    }
    send_file::socket_send_file!();
    fn peer_addr(&self) -> Option<SocketAddr> {
        tokio::net::UnixStream::peer_addr(self)
            .ok()
            .map(|a| SocketAddr::Unix(a.as_pathname().map(|p| p.to_path_buf())))
    }
    fn local_addr(&self) -> Option<SocketAddr> {
        tokio::net::UnixStream::local_addr(self)
            .ok()
            .map(|a| SocketAddr::Unix(a.as_pathname().map(|p| p.to_path_buf())))
    }
}

impl IO for tokio::io::DuplexStream {}
