//! Peers: where to connect and how.
//!
//! A [`Peer`] answers the questions a connector asks before it opens a
//! connection: the address, whether to speak TLS and with which SNI, the
//! timeouts, and a [`Peer::reuse_hash`] that says which pooled connections may
//! stand in for a new one. [`HttpPeer`] is the peer the HTTP proxy returns from
//! its `upstream_peer` phase; [`BasicPeer`] is a plain L4 peer (health checks).
//!
//! ```
//! use std::time::Duration;
//! use proxy_core::upstreams::peer::{HttpPeer, Peer};
//!
//! let mut peer = HttpPeer::new(("127.0.0.1", 8000), false, String::new());
//! peer.options.connection_timeout = Some(Duration::from_secs(1));
//! assert_eq!(peer.to_string(), "addr: 127.0.0.1:8000, scheme: HTTP");
//! assert_eq!(peer.connection_timeout(), Some(Duration::from_secs(1)));
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::connectors::l4::{BindTo, TcpKeepalive};
use crate::error::{Error, ErrorType, OrErr, Result};
use crate::protocols::SocketAddr;
use crate::tls::CertKey;

/// Longest Unix socket path `connect(2)` accepts on Linux (`sun_path` is 108
/// bytes including the terminating NUL).
const MAX_UDS_PATH_BYTES: usize = 107;

/// What a connector needs to know about an upstream.
///
/// Implementors supply the four required methods; every other getter reads
/// [`PeerOptions`] through [`Peer::get_peer_options`] and falls back to the
/// Pingora default when the peer has no options.
pub trait Peer: Display + Clone {
    /// The address to connect to: an inet socket or a Unix socket path.
    fn address(&self) -> &SocketAddr;

    /// Whether to speak TLS to this peer.
    fn tls(&self) -> bool;

    /// The TLS SNI to send (empty = none). Only meaningful when [`Peer::tls`] is true.
    fn sni(&self) -> &str;

    /// A hash of everything that makes two connections to this peer
    /// interchangeable (address, scheme, SNI, verification flags, alternative
    /// CN, CA, ALPN, source address, group key...). The connection pool is
    /// keyed by it: a pooled connection is handed out only to a peer with the
    /// same hash.
    fn reuse_hash(&self) -> u64;

    /// The peer's options, if it has any.
    fn get_peer_options(&self) -> Option<&PeerOptions> {
        None
    }

    /// The peer's options, mutably, if it has any.
    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        None
    }

    /// Whether to verify the upstream's certificate (TLS only). Default `true`
    /// with options, `false` without.
    fn verify_cert(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.verify_cert)
    }

    /// Whether to check that the certificate matches the SNI (or
    /// [`Peer::alternative_cn`]). Default `true` with options, `false` without.
    fn verify_hostname(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.verify_hostname)
    }

    /// Another name the certificate may carry instead of the SNI.
    fn alternative_cn(&self) -> Option<&String> {
        self.get_peer_options()
            .and_then(|o| o.alternative_cn.as_ref())
    }

    /// The local address to connect from, if one is set.
    fn bind_to(&self) -> Option<&BindTo> {
        self.get_peer_options().and_then(|o| o.bind_to.as_ref())
    }

    /// How long the TCP (or Unix socket) connect may take. `None` = no limit
    /// beyond the operating system's.
    fn connection_timeout(&self) -> Option<Duration> {
        self.get_peer_options().and_then(|o| o.connection_timeout)
    }

    /// How long the whole connect may take, TCP connect and TLS handshake
    /// together. `None` = no limit.
    fn total_connection_timeout(&self) -> Option<Duration> {
        self.get_peer_options()
            .and_then(|o| o.total_connection_timeout)
    }

    /// How long a connection to this peer may sit idle in the pool. `None` =
    /// until the pool evicts it; `Some(Duration::ZERO)` = never pool it.
    fn idle_timeout(&self) -> Option<Duration> {
        self.get_peer_options().and_then(|o| o.idle_timeout)
    }

    /// How long one read from this peer may wait. `None` = no limit.
    fn read_timeout(&self) -> Option<Duration> {
        self.get_peer_options().and_then(|o| o.read_timeout)
    }

    /// How long one write to this peer may wait. `None` = no limit.
    fn write_timeout(&self) -> Option<Duration> {
        self.get_peer_options().and_then(|o| o.write_timeout)
    }

    /// The ALPN to offer over TLS, if the peer has options.
    fn get_alpn(&self) -> Option<&ALPN> {
        self.get_peer_options().map(|o| &o.alpn)
    }

    /// The CA certificates to verify this peer with, instead of the default trust store.
    fn get_ca(&self) -> Option<&Arc<Vec<u8>>> {
        self.get_peer_options().and_then(|o| o.ca.as_ref())
    }

    /// Whether to trust the system's CA store when [`Peer::get_ca`] gives
    /// none. Default `true` with options, `false` without.
    fn use_system_certs(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.use_system_certs)
    }

    /// The client certificate and key to present to this peer (upstream mTLS).
    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        None
    }

    /// The lowest TLS version to accept from this peer (`None`: BoringSSL's default).
    fn min_tls_version(&self) -> Option<TlsVersion> {
        self.get_peer_options().and_then(|o| o.min_tls_version)
    }

    /// The highest TLS version to offer this peer (`None`: BoringSSL's default, TLS 1.3).
    fn max_tls_version(&self) -> Option<TlsVersion> {
        self.get_peer_options().and_then(|o| o.max_tls_version)
    }

    /// TCP keepalive probing for connections to this peer.
    fn tcp_keepalive(&self) -> Option<&TcpKeepalive> {
        self.get_peer_options()
            .and_then(|o| o.tcp_keepalive.as_ref())
    }

    /// The socket receive buffer size (`SO_RCVBUF`) in bytes.
    fn tcp_recv_buf(&self) -> Option<usize> {
        self.get_peer_options().and_then(|o| o.tcp_recv_buf)
    }
}

/// The application protocols to offer over TLS (RFC 7301), from most to least preferred.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ALPN {
    /// HTTP/1.1 only (the default).
    #[default]
    H1,
    /// HTTP/2 only.
    H2,
    /// HTTP/2 preferred, HTTP/1.1 accepted.
    H2H1,
}

impl ALPN {
    /// The ALPN covering HTTP versions `min..=max` (1 or 2). A range that
    /// names no version we speak (for example `max < min`) falls back to
    /// [`ALPN::H1`].
    pub fn new(max: u8, min: u8) -> Self {
        match (max, min) {
            (2, 2) => ALPN::H2,
            (2, 1) => ALPN::H2H1,
            _ => ALPN::H1,
        }
    }

    /// The highest HTTP version offered: 1 or 2.
    pub fn get_max_http_version(&self) -> u8 {
        match self {
            ALPN::H1 => 1,
            ALPN::H2 | ALPN::H2H1 => 2,
        }
    }

    /// The lowest HTTP version accepted: 1 or 2.
    pub fn get_min_http_version(&self) -> u8 {
        match self {
            ALPN::H1 | ALPN::H2H1 => 1,
            ALPN::H2 => 2,
        }
    }
}

impl Display for ALPN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ALPN::H1 => "H1",
            ALPN::H2 => "H2",
            ALPN::H2H1 => "H2H1",
        })
    }
}

/// A TLS protocol version, for [`PeerOptions::min_tls_version`] and
/// [`PeerOptions::max_tls_version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

/// How to connect to a peer. Defaults match Pingora's (see [`PeerOptions::new`]).
///
/// The transport connector reads `bind_to`, `connection_timeout`,
/// `total_connection_timeout`, `tcp_keepalive` and `tcp_recv_buf`; the pool
/// reads `idle_timeout`; the HTTP client session reads `read_timeout` and
/// `write_timeout`; the TLS connector reads `verify_cert`, `verify_hostname`,
/// `alternative_cn`, `ca`, `use_system_certs`, `min_tls_version`,
/// `max_tls_version` and `alpn`; the HTTP connector reads `alpn` and
/// `max_h2_streams` to choose HTTP/1.1 or HTTP/2 and share h2 connections. Every field that changes
/// what a connection is counts in [`HttpPeer`]'s reuse hash.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOptions {
    /// The local address to connect from. Default `None` (the OS picks;
    /// `ConnectorOptions::bind_to_v4`/`bind_to_v6` apply).
    pub bind_to: Option<BindTo>,
    /// Limit on the TCP/Unix-socket connect, and separately on the TLS
    /// handshake (as nginx's `proxy_connect_timeout`). Default `None`, which
    /// the connector treats as 60 s (`connectors::DEFAULT_UPSTREAM_TIMEOUT`,
    /// nginx's default). Exceeding it fails with `ConnectTimedout` (connect)
    /// or `TLSHandshakeTimedout` (handshake).
    pub connection_timeout: Option<Duration>,
    /// Limit on the whole connect including the TLS handshake. Default
    /// `None`. Exceeding it fails with `ConnectTimedout`.
    pub total_connection_timeout: Option<Duration>,
    /// Limit on each read from the upstream. Default `None`, which the HTTP
    /// connector treats as 60 s (`connectors::DEFAULT_UPSTREAM_TIMEOUT`).
    /// Exceeding it fails with `ReadTimedout` (answered 504).
    pub read_timeout: Option<Duration>,
    /// How long a connection may wait idle in the pool. Default `None` (until
    /// evicted); `Some(Duration::ZERO)` disables pooling for this peer.
    pub idle_timeout: Option<Duration>,
    /// Limit on each write to the upstream. Default `None`, which the HTTP
    /// connector treats as 60 s (`connectors::DEFAULT_UPSTREAM_TIMEOUT`).
    pub write_timeout: Option<Duration>,
    /// Verify the upstream certificate (TLS). Default `true`.
    pub verify_cert: bool,
    /// Check the certificate's name against the SNI (TLS). Default `true`.
    pub verify_hostname: bool,
    /// A name the certificate may carry instead of the SNI. Default `None`.
    pub alternative_cn: Option<String>,
    /// The HTTP versions to speak. Default [`ALPN::H1`]. Over TLS it is the
    /// ALPN list offered (RFC 7301): `H2` offers `h2` only, `H2H1` offers
    /// `h2` then `http/1.1` and speaks what the server picks. Over
    /// cleartext, `H2` speaks HTTP/2 with prior knowledge (h2c, RFC 9113
    /// §3.3) and `H2H1` speaks HTTP/1.1.
    pub alpn: ALPN,
    /// PEM-encoded CA certificates to verify the upstream with instead of the
    /// default trust store. Default `None`.
    pub ca: Option<Arc<Vec<u8>>>,
    /// With no `ca`, verify against the system's CA store (BoringSSL's
    /// default paths). Default `true`; `false` with no `ca` trusts nothing,
    /// so every verified handshake fails.
    pub use_system_certs: bool,
    /// The lowest TLS version accepted. Default `None` (BoringSSL's default).
    pub min_tls_version: Option<TlsVersion>,
    /// The highest TLS version offered. Default `None` (TLS 1.3).
    pub max_tls_version: Option<TlsVersion>,
    /// TCP keepalive probes on the upstream socket. Default `None` (off).
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// The socket receive buffer (`SO_RCVBUF`) in bytes. Default `None` (OS default).
    pub tcp_recv_buf: Option<usize>,
    /// How many concurrent HTTP/2 streams one upstream connection may carry
    /// (the server's `SETTINGS_MAX_CONCURRENT_STREAMS` may lower it); a new
    /// connection is opened when every open one is full. Default 1 (an h2
    /// connection carries one request at a time); raise it (e.g. 100) to
    /// multiplex.
    pub max_h2_streams: usize,
    /// Headers to send in the CONNECT request to an HTTP proxy (name → value
    /// bytes). Default empty.
    pub extra_proxy_headers: BTreeMap<String, Vec<u8>>,
}

impl PeerOptions {
    /// Options with Pingora's defaults: no timeouts, verify certificate and
    /// hostname, ALPN H1, one h2 stream per connection.
    pub fn new() -> Self {
        PeerOptions {
            bind_to: None,
            connection_timeout: None,
            total_connection_timeout: None,
            read_timeout: None,
            idle_timeout: None,
            write_timeout: None,
            verify_cert: true,
            verify_hostname: true,
            alternative_cn: None,
            alpn: ALPN::H1,
            ca: None,
            use_system_certs: true,
            min_tls_version: None,
            max_tls_version: None,
            tcp_keepalive: None,
            tcp_recv_buf: None,
            max_h2_streams: 1,
            extra_proxy_headers: BTreeMap::new(),
        }
    }

    /// Offer HTTP versions `min..=max` (1 or 2) via ALPN; see [`ALPN::new`].
    pub fn set_http_version(&mut self, max: u8, min: u8) {
        self.alpn = ALPN::new(max, min);
    }

    /// Feed the fields that decide connection interchangeability into
    /// `state`; the TLS settings only when the connection uses TLS (`tls`):
    /// two plain connections that differ only in them are the same.
    fn hash_reuse_fields<H: Hasher>(&self, state: &mut H, tls: bool) {
        self.bind_to.hash(state);
        self.alpn.hash(state);
        self.max_h2_streams.hash(state);
        if !tls {
            return;
        }
        self.verify_cert.hash(state);
        self.verify_hostname.hash(state);
        self.alternative_cn.hash(state);
        self.ca.as_deref().hash(state);
        self.use_system_certs.hash(state);
        self.min_tls_version.hash(state);
        self.max_tls_version.hash(state);
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The hasher of [`Peer::reuse_hash`]: foldhash with a fixed seed, so the
/// same peer gives the same key on every thread and in every process of a
/// graceful upgrade. 64 bits: two different peers sharing a key is as
/// unlikely as with SipHash, at a fraction of its cost on these short inputs.
fn reuse_hasher() -> impl Hasher {
    foldhash::quality::FixedState::with_seed(0x7072_6f78_795f_7065).build_hasher()
}

/// Plain HTTP or HTTP over TLS.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plaintext.
    HTTP,
    /// TLS.
    HTTPS,
}

impl Scheme {
    /// `HTTPS` when `tls`, else `HTTP`.
    pub fn from_tls_bool(tls: bool) -> Self {
        if tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        }
    }

    /// Whether this is `HTTPS`.
    pub fn is_tls(&self) -> bool {
        matches!(self, Scheme::HTTPS)
    }
}

impl Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::HTTP => "HTTP",
            Scheme::HTTPS => "HTTPS",
        })
    }
}

/// Something that names one inet socket address: `"host:port"`, `("host", port)`,
/// `(IpAddr, port)` or a `std::net::SocketAddr`.
///
/// Host names are resolved with the system resolver (`std::net::ToSocketAddrs`,
/// which blocks the calling thread) and the first address is taken.
pub trait ToInetSocketAddrs {
    /// The first address this names.
    ///
    /// # Errors
    /// `ConnectError` naming the address when it does not parse, does not
    /// resolve, or resolves to nothing.
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr>;
}

/// Resolve `addr` and take its first address; `describe` names it in errors.
fn first_inet_addr<A: ToSocketAddrs + ?Sized>(
    addr: &A,
    describe: impl Fn() -> String,
) -> Result<std::net::SocketAddr> {
    addr.to_socket_addrs()
        .or_err_with(ErrorType::ConnectError, || {
            format!("invalid upstream address {}", describe())
        })?
        .next()
        .ok_or_else(|| {
            Error::explain(
                ErrorType::ConnectError,
                format!("upstream address {} resolved to nothing", describe()),
            )
        })
}

impl ToInetSocketAddrs for str {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        // a literal `ip:port` needs no resolver (and no allocation)
        if let Ok(addr) = self.parse() {
            return Ok(addr);
        }
        first_inet_addr(self, || format!("'{self}'"))
    }
}

impl ToInetSocketAddrs for &str {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        (**self).to_inet_socket_addr()
    }
}

impl ToInetSocketAddrs for String {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        self.as_str().to_inet_socket_addr()
    }
}

impl ToInetSocketAddrs for (&str, u16) {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        // a literal IP needs no resolver (and no allocation)
        if let Ok(ip) = self.0.parse::<IpAddr>() {
            return Ok(std::net::SocketAddr::new(ip, self.1));
        }
        first_inet_addr(self, || format!("'{}:{}'", self.0, self.1))
    }
}

impl ToInetSocketAddrs for (String, u16) {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        (self.0.as_str(), self.1).to_inet_socket_addr()
    }
}

impl ToInetSocketAddrs for std::net::SocketAddr {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(*self)
    }
}

impl ToInetSocketAddrs for (IpAddr, u16) {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(std::net::SocketAddr::new(self.0, self.1))
    }
}

impl ToInetSocketAddrs for (Ipv4Addr, u16) {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(std::net::SocketAddr::new(IpAddr::V4(self.0), self.1))
    }
}

impl ToInetSocketAddrs for (Ipv6Addr, u16) {
    fn to_inet_socket_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(std::net::SocketAddr::new(IpAddr::V6(self.0), self.1))
    }
}

/// A Unix socket address for `path`.
///
/// # Errors
/// `ConnectError` when the path is empty or longer than `connect(2)` accepts
/// (107 bytes on Linux).
fn uds_addr(path: &str) -> Result<SocketAddr> {
    if path.is_empty() || path.len() > MAX_UDS_PATH_BYTES {
        return Error::e_explain(
            ErrorType::ConnectError,
            format!(
                "invalid upstream Unix socket path '{path}': must be 1 to {MAX_UDS_PATH_BYTES} bytes"
            ),
        );
    }
    Ok(SocketAddr::Unix(Some(PathBuf::from(path))))
}

/// An HTTP upstream: address, scheme, SNI, a user group key and [`PeerOptions`].
///
/// Fields are public, as in Pingora, so a phase can adjust a peer before returning it.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    /// Where to connect.
    pub _address: SocketAddr,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// The TLS SNI (empty = none).
    pub sni: String,
    /// A user-chosen key mixed into [`Peer::reuse_hash`]: peers that differ
    /// only by group key never share pooled connections. Default 0.
    pub group_key: u64,
    /// The client certificate and key presented to the upstream (mTLS). Default `None`.
    pub client_cert_key: Option<Arc<CertKey>>,
    /// How to connect.
    pub options: PeerOptions,
}

impl HttpPeer {
    /// A peer at an inet address (`"127.0.0.1:8000"`, `("example.com", 443)`...).
    ///
    /// Host names resolve with the blocking system resolver; the first address is used.
    ///
    /// # Errors
    /// `ConnectError` naming the address when it does not parse or resolve.
    pub fn try_new<A: ToInetSocketAddrs>(address: A, tls: bool, sni: String) -> Result<Self> {
        let addr = address.to_inet_socket_addr()?;
        Ok(Self::new_from_sockaddr(SocketAddr::Inet(addr), tls, sni))
    }

    /// A peer at an inet address; the infallible form the tutorial uses.
    ///
    /// # Panics
    /// When the address does not parse or resolve; the message names the
    /// address. Use [`HttpPeer::try_new`] for addresses that come from a
    /// config file or a request.
    pub fn new<A: ToInetSocketAddrs>(address: A, tls: bool, sni: String) -> Self {
        match Self::try_new(address, tls, sni) {
            Ok(peer) => peer,
            // documented under `# Panics`: the caller chose the infallible constructor
            Err(e) => panic!("HttpPeer::new: {e}"),
        }
    }

    /// A peer listening on the Unix socket at `path`.
    ///
    /// # Errors
    /// `ConnectError` when the path is empty or longer than 107 bytes.
    pub fn new_uds(path: &str, tls: bool, sni: String) -> Result<Self> {
        Ok(Self::new_from_sockaddr(uds_addr(path)?, tls, sni))
    }

    /// A peer at an already resolved address.
    pub fn new_from_sockaddr(address: SocketAddr, tls: bool, sni: String) -> Self {
        HttpPeer {
            _address: address,
            scheme: Scheme::from_tls_bool(tls),
            sni,
            group_key: 0,
            client_cert_key: None,
            options: PeerOptions::new(),
        }
    }

    /// A TLS peer at an inet address that is shown `cert_key` as the client
    /// certificate (upstream mTLS).
    ///
    /// # Panics
    /// As [`HttpPeer::new`], when the address does not parse or resolve.
    pub fn new_mtls<A: ToInetSocketAddrs>(address: A, sni: String, cert_key: Arc<CertKey>) -> Self {
        let mut peer = Self::new(address, true, sni);
        peer.client_cert_key = Some(cert_key);
        peer
    }

    /// Whether this peer speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.scheme.is_tls()
    }
}

impl Peer for HttpPeer {
    fn address(&self) -> &SocketAddr {
        &self._address
    }

    fn tls(&self) -> bool {
        self.is_tls()
    }

    fn sni(&self) -> &str {
        &self.sni
    }

    fn reuse_hash(&self) -> u64 {
        let mut hasher = reuse_hasher();
        self._address.hash(&mut hasher);
        self.scheme.hash(&mut hasher);
        self.group_key.hash(&mut hasher);
        let tls = self.scheme == Scheme::HTTPS;
        if tls {
            self.sni.hash(&mut hasher);
            self.client_cert_key
                .as_ref()
                .map(|c| c.fingerprint())
                .hash(&mut hasher);
        }
        self.options.hash_reuse_fields(&mut hasher, tls);
        hasher.finish()
    }

    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }

    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        Some(&mut self.options)
    }

    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        self.client_cert_key.as_ref()
    }
}

impl Display for HttpPeer {
    /// `addr: 127.0.0.1:8000, scheme: HTTP`, then `, sni: ...` when an SNI is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "addr: {}, scheme: {}", self._address, self.scheme)?;
        if !self.sni.is_empty() {
            write!(f, ", sni: {}", self.sni)?;
        }
        Ok(())
    }
}

/// A plain L4 peer (no HTTP), e.g. for TCP health checks.
#[derive(Debug, Clone)]
pub struct BasicPeer {
    /// Where to connect.
    pub _address: SocketAddr,
    /// The TLS SNI (empty = none).
    pub sni: String,
    /// How to connect.
    pub options: PeerOptions,
}

impl BasicPeer {
    /// A plaintext peer at an inet address (`"127.0.0.1:8000"`).
    ///
    /// # Errors
    /// `ConnectError` naming the address when it does not parse or resolve.
    pub fn try_new<A: ToInetSocketAddrs>(address: A) -> Result<Self> {
        Ok(Self::from_sockaddr(SocketAddr::Inet(
            address.to_inet_socket_addr()?,
        )))
    }

    /// A plaintext peer at an inet address.
    ///
    /// # Panics
    /// When the address does not parse or resolve; the message names it. Use
    /// [`BasicPeer::try_new`] for untrusted input.
    pub fn new<A: ToInetSocketAddrs>(address: A) -> Self {
        match Self::try_new(address) {
            Ok(peer) => peer,
            // documented under `# Panics`
            Err(e) => panic!("BasicPeer::new: {e}"),
        }
    }

    /// A plaintext peer on the Unix socket at `path`.
    ///
    /// # Errors
    /// `ConnectError` when the path is empty or longer than 107 bytes.
    pub fn new_uds(path: &str) -> Result<Self> {
        Ok(Self::from_sockaddr(uds_addr(path)?))
    }

    fn from_sockaddr(address: SocketAddr) -> Self {
        BasicPeer {
            _address: address,
            sni: String::new(),
            options: PeerOptions::new(),
        }
    }
}

impl Peer for BasicPeer {
    fn address(&self) -> &SocketAddr {
        &self._address
    }

    fn tls(&self) -> bool {
        false
    }

    fn sni(&self) -> &str {
        &self.sni
    }

    fn reuse_hash(&self) -> u64 {
        let mut hasher = reuse_hasher();
        self._address.hash(&mut hasher);
        self.sni.hash(&mut hasher);
        self.options.hash_reuse_fields(&mut hasher, true);
        hasher.finish()
    }

    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }

    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        Some(&mut self.options)
    }
}

impl Display for BasicPeer {
    /// `addr: 127.0.0.1:8000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "addr: {}", self._address)
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
