//! The addresses a listening service accepts connections on.
//!
//! [`Listeners`] is a list of [`ServerAddress`]es (TCP `ip:port` with
//! [`TcpSocketOptions`], optionally with TLS ([`Listeners::add_tls`], see
//! [`crate::tls`]), or a Unix socket path with permissions). Nothing is
//! bound until the service starts; [`Listeners::build`] binds them all and
//! returns one [`ListenerEndpoint`] per address.
//!
//! ```
//! use proxy_core::listeners::Listeners;
//!
//! let mut l = Listeners::tcp("0.0.0.0:6188");
//! l.add_uds("/tmp/proxy.sock", None);
//! assert_eq!(l.endpoints().len(), 2);
//! ```

mod l4;
pub mod tls;

use std::fs::Permissions;

pub use l4::ListenerEndpoint;
pub(crate) use l4::{BindRetry, BoundListener};
pub use tls::TlsAccept;

use crate::error::Result;
use crate::tls::{TlsAcceptor, TlsSettings};

pub use crate::connectors::l4::TcpKeepalive;

/// [`TcpSocketOptions::tcp_notsent_lowat`] of a plaintext listener added
/// without options ([`Listeners::add_tcp`]): 32 KiB.
pub const DEFAULT_TCP_NOTSENT_LOWAT: u32 = 32 * 1024;

/// Options of a TCP listening socket and of the connections it accepts.
///
/// Fields left `None` keep the operating system's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpSocketOptions {
    /// `IPV6_V6ONLY` on an IPv6 listener: `true` accepts only IPv6,
    /// `false` also IPv4-mapped connections.
    pub ipv6_only: Option<bool>,
    /// `SO_REUSEPORT`: let several sockets (processes) listen on the same
    /// address, the kernel spreading connections among them.
    pub so_reuseport: Option<bool>,
    /// TCP Fast Open (RFC 7413, Linux `TCP_FASTOPEN`): how many connections
    /// whose SYN carried data may wait for their handshake to finish, so a
    /// returning client's request arrives one round trip sooner. `None` or
    /// `Some(0)`: off. The system must allow it for servers
    /// (`net.ipv4.tcp_fastopen` with bit 2 set, e.g. `3`).
    pub tcp_fastopen: Option<usize>,
    /// Keepalive probes (and user timeout) set on every accepted connection.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// DSCP (RFC 2474) of the packets of accepted connections, 0–63: the
    /// upper six bits of `IP_TOS` (IPv4) or `IPV6_TCLASS` (IPv6), set on the
    /// listening socket, from which accepted connections inherit it. A
    /// value over 63 fails the listener's setup (`SocketError` naming it).
    pub dscp: Option<u8>,
    /// `SO_RCVBUF` of accepted connections, in bytes.
    pub tcp_recv_buf: Option<usize>,
    /// `SO_SNDBUF` of accepted connections, in bytes.
    pub tcp_snd_buf: Option<usize>,
    /// `TCP_NOTSENT_LOWAT` of accepted connections, in bytes (Linux; set on
    /// the listening socket, which accepted ones inherit it from). A
    /// connection takes more written data, and reports itself writable, only
    /// while less than this much is waiting in the kernel to be sent. Data
    /// sent and not yet acknowledged does not count, so a long fast path
    /// keeps its whole window; what it bounds is the queue behind the
    /// window. Without it a client that reads slowly lets the proxy queue
    /// megabytes in its socket, kernel memory held per connection, and when
    /// the client reads, each acknowledgement sends more of that queue, so
    /// it reads on and on from one connection while its others wait (a
    /// 1 MiB benchmark's p99 was 1.15–1.5 × nginx's with it unset, 0.64–0.92 ×
    /// with 32 KiB; `docs/benchmarks.md`). `None` keeps the system's
    /// `net.ipv4.tcp_notsent_lowat` (unlimited unless set).
    pub tcp_notsent_lowat: Option<u32>,
}

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    /// A TCP `ip:port` (`0.0.0.0:80`, `[::1]:8080`) and its socket options.
    Tcp(String, Option<TcpSocketOptions>),
    /// A Unix socket path and the permissions of the socket file
    /// (default `0o666` when `None`, so any local user may connect).
    Uds(String, Option<Permissions>),
}

impl ServerAddress {
    /// The address as written by the user: `ip:port` or the socket path.
    pub fn as_str(&self) -> &str {
        match self {
            ServerAddress::Tcp(a, _) => a,
            ServerAddress::Uds(p, _) => p,
        }
    }
}

impl std::fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddress::Tcp(a, _) => write!(f, "tcp {a}"),
            ServerAddress::Uds(p, _) => write!(f, "unix {p}"),
        }
    }
}

/// The list of addresses a listening service binds when it starts.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    endpoints: Vec<ServerAddress>,
    /// The TLS acceptor of each endpoint (same index), `None` for plaintext.
    tls: Vec<Option<TlsAcceptor>>,
}

impl Listeners {
    /// No addresses.
    pub fn new() -> Self {
        Listeners::default()
    }

    /// One TCP address (`ip:port`).
    pub fn tcp(addr: &str) -> Self {
        let mut l = Self::new();
        l.add_tcp(addr);
        l
    }

    /// One Unix socket path, with the socket file's permissions (default `0o666`).
    pub fn uds(path: &str, perms: Option<Permissions>) -> Self {
        let mut l = Self::new();
        l.add_uds(path, perms);
        l
    }

    /// Add a plaintext TCP address (`ip:port`) with the default socket
    /// options: the operating system's, but `tcp_notsent_lowat` at
    /// [`DEFAULT_TCP_NOTSENT_LOWAT`] (see [`TcpSocketOptions`]). The address
    /// is checked when the service binds it.
    pub fn add_tcp(&mut self, addr: &str) {
        let opts = TcpSocketOptions {
            tcp_notsent_lowat: Some(DEFAULT_TCP_NOTSENT_LOWAT),
            ..Default::default()
        };
        self.add_address(ServerAddress::Tcp(addr.to_string(), Some(opts)));
    }

    /// Add a TCP address (`ip:port`) with socket options.
    pub fn add_tcp_with_settings(&mut self, addr: &str, sock_opt: TcpSocketOptions) {
        self.add_address(ServerAddress::Tcp(addr.to_string(), Some(sock_opt)));
    }

    /// Add a Unix socket path, with the socket file's permissions (default `0o666`).
    pub fn add_uds(&mut self, path: &str, perms: Option<Permissions>) {
        self.add_address(ServerAddress::Uds(path.to_string(), perms));
    }

    /// Add any address.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.add_endpoint(addr, None);
    }

    /// Add a TCP address (`ip:port`) that speaks TLS with Mozilla's
    /// intermediate profile and the PEM certificate chain and key at
    /// `cert_path` / `key_path` ([`TlsSettings::intermediate`]).
    ///
    /// The socket options are all the operating system's. Unlike
    /// [`Listeners::add_tcp`] it sets no `tcp_notsent_lowat`: TLS hands the
    /// kernel one 16 KiB record per write, and a 32 KiB mark woke the proxy
    /// every record or two, 8 % more CPU per 1 MiB HTTPS response for no
    /// better p99 (`docs/benchmarks.md`).
    ///
    /// # Errors
    /// As [`TlsSettings::intermediate`]: the file named when it is missing,
    /// unreadable, malformed or the key does not match.
    pub fn add_tls(&mut self, addr: &str, cert_path: &str, key_path: &str) -> Result<()> {
        let settings = TlsSettings::intermediate(cert_path, key_path)?;
        self.add_tls_with_settings(addr, None, settings);
        Ok(())
    }

    /// Add a TCP address (`ip:port`) that speaks TLS with `settings`.
    /// The handshake of each connection runs on that connection's task.
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        sock_opt: Option<TcpSocketOptions>,
        settings: TlsSettings,
    ) {
        self.add_endpoint(
            ServerAddress::Tcp(addr.to_string(), sock_opt),
            Some(settings),
        );
    }

    /// Add any address, with TLS when `tls` is given.
    pub fn add_endpoint(&mut self, addr: ServerAddress, tls: Option<TlsSettings>) {
        self.endpoints.push(addr);
        self.tls.push(tls.map(TlsSettings::build));
    }

    /// The TLS acceptor of the `index`th address (as added), `None` for plaintext.
    pub(crate) fn tls_acceptor(&self, index: usize) -> Option<&TlsAcceptor> {
        self.tls.get(index).and_then(Option::as_ref)
    }

    /// The addresses added so far, in order.
    pub fn endpoints(&self) -> &[ServerAddress] {
        &self.endpoints
    }

    /// Bind every address, in order.
    ///
    /// TCP: the address must parse as `ip:port`; the socket gets
    /// `SO_REUSEADDR`, the options given, and a backlog of 65535 (capped by
    /// the kernel's `somaxconn`). If the address is in use the bind is tried
    /// again, 30 times 1 second apart (a previous process may still be
    /// closing). Unix: a stale socket file at the path is removed first (a
    /// file that is not a socket is left alone and the bind fails), then the
    /// permissions are set on the new socket file.
    ///
    /// # Errors
    /// [`crate::ErrorType::BindError`] naming the address when it does not
    /// parse or cannot be bound; the sockets bound before it are closed.
    ///
    /// # Cancel safety
    /// Dropping the future closes the sockets bound so far.
    pub async fn build(&self) -> Result<Vec<ListenerEndpoint>> {
        self.build_with_retry(BindRetry::default()).await
    }

    /// Bind every address on this thread (sleeping while an address in use
    /// is retried), taking the sockets `fds` inherited where it has one for
    /// an address and recording every socket in it.
    ///
    /// # Errors
    /// As [`Listeners::build`]; the sockets bound before the failing one are
    /// closed (their duplicates stay in `fds`).
    pub(crate) fn bind_all(
        &self,
        retry: BindRetry,
        fds: &mut crate::server::ListenFds,
    ) -> Result<Vec<BoundListener>> {
        self.endpoints
            .iter()
            .map(|addr| BoundListener::bind(addr, retry, fds))
            .collect()
    }

    pub(crate) async fn build_with_retry(&self, retry: BindRetry) -> Result<Vec<ListenerEndpoint>> {
        let mut out = Vec::with_capacity(self.endpoints.len());
        for addr in &self.endpoints {
            out.push(ListenerEndpoint::bind(addr, retry).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_adders_keep_addresses_in_order() {
        let mut l = Listeners::tcp("127.0.0.1:1");
        l.add_tcp_with_settings(
            "[::1]:2",
            TcpSocketOptions {
                ipv6_only: Some(true),
                ..Default::default()
            },
        );
        l.add_uds("/tmp/x.sock", None);
        let names: Vec<_> = l.endpoints().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            names,
            ["tcp 127.0.0.1:1", "tcp [::1]:2", "unix /tmp/x.sock"]
        );
        assert_eq!(Listeners::uds("/a", None).endpoints()[0].as_str(), "/a");
    }

    #[test]
    fn tls_endpoints_carry_an_acceptor_and_bad_files_add_nothing() {
        let mut l = Listeners::tcp("127.0.0.1:1");
        let e = l
            .add_tls("127.0.0.1:2", "/nonexistent/c.pem", "/nonexistent/k.pem")
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
        assert_eq!(l.endpoints().len(), 1);

        let (cert, key) = crate::tls::cert::tests::self_signed("l.test", 1);
        let ck = crate::tls::CertKey::new(vec![cert], key).unwrap();
        let settings = TlsSettings::with_cert(std::sync::Arc::new(ck)).unwrap();
        l.add_tls_with_settings("127.0.0.1:3", None, settings);
        l.add_uds("/tmp/y.sock", None);
        assert_eq!(l.endpoints().len(), 3);
        assert!(l.tls_acceptor(0).is_none());
        assert!(l.tls_acceptor(1).is_some());
        assert!(l.tls_acceptor(2).is_none());
    }
}
