//! [`Backend`]: one server a load balancer may send requests to.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use proxy_core::upstreams::peer::ToInetSocketAddrs;
use proxy_core::{Error, ErrorType, OrErr, Result};

/// One server: an inet socket address, a weight and a map of user data.
///
/// Two backends are the same backend when their address and weight are
/// equal; `ext` takes no part in equality, ordering or hashing (it carries
/// data *about* a backend, such as a name for the `Host` header or a
/// datacenter tag, from discovery to the code that uses the selection).
///
/// A `Backend` is what [`crate::LoadBalancer::select`] returns, and it can be
/// handed straight to `HttpPeer::new` (it implements the address trait
/// `HttpPeer::new` takes):
///
/// ```
/// use proxy_core::upstreams::peer::HttpPeer;
/// use proxy_lb::Backend;
///
/// let backend = Backend::new_with_weight("127.0.0.1:8000", 3).unwrap();
/// assert_eq!(backend.weight, 3);
/// let peer = HttpPeer::new(backend, false, String::new());
/// assert_eq!(peer.to_string(), "addr: 127.0.0.1:8000, scheme: HTTP");
/// ```
#[derive(Clone, Debug)]
pub struct Backend {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Its share of the traffic relative to the others (nginx's `weight=`);
    /// default 1. A backend of weight 0 is known and health-checked but
    /// never selected.
    pub weight: usize,
    /// User data about this backend (`http::Extensions`: one value per
    /// type). Ignored by equality, ordering and hashing.
    pub ext: http::Extensions,
}

impl Backend {
    /// A backend of weight 1 at `addr`, an IP address and port
    /// (`"10.0.0.7:8080"`, `"[::1]:80"`). Host names are not resolved here:
    /// use [`crate::LoadBalancer::try_from_iter`] or
    /// [`crate::discovery::Dns`] for names.
    ///
    /// # Errors
    /// `InternalError` naming `addr` when it is not `ip:port`.
    pub fn new(addr: &str) -> Result<Self> {
        Self::new_with_weight(addr, 1)
    }

    /// A backend of weight `weight` at `addr` (`ip:port`).
    ///
    /// # Errors
    /// `InternalError` naming `addr` when it is not `ip:port`.
    pub fn new_with_weight(addr: &str, weight: usize) -> Result<Self> {
        let addr: SocketAddr = addr.parse().or_err_with(ErrorType::InternalError, || {
            format!("invalid backend address '{addr}': expected ip:port")
        })?;
        Ok(Self::from_addr(addr, weight))
    }

    /// A backend of weight `weight` at an already parsed address.
    pub fn from_addr(addr: SocketAddr, weight: usize) -> Self {
        Backend {
            addr,
            weight,
            ext: http::Extensions::new(),
        }
    }

    /// A 64-bit hash of the address and weight: the key of the maps
    /// [`crate::discovery::ServiceDiscovery::discover`] returns. Stable
    /// within one process, not across builds.
    pub fn hash_key(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr && self.weight == other.weight
    }
}

impl Eq for Backend {}

impl Hash for Backend {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.weight.hash(state);
    }
}

impl PartialOrd for Backend {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Backend {
    /// By address, then weight.
    fn cmp(&self, other: &Self) -> Ordering {
        self.addr
            .cmp(&other.addr)
            .then(self.weight.cmp(&other.weight))
    }
}

impl fmt::Display for Backend {
    /// The address (`127.0.0.1:8000`), then ` weight=N` when the weight is not 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if self.weight != 1 {
            write!(f, " weight={}", self.weight)?;
        }
        Ok(())
    }
}

impl ToInetSocketAddrs for Backend {
    /// The backend's address; never fails.
    fn to_inet_socket_addr(&self) -> Result<SocketAddr> {
        Ok(self.addr)
    }
}

impl ToInetSocketAddrs for &Backend {
    /// The backend's address; never fails.
    fn to_inet_socket_addr(&self) -> Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Resolve `addr` (`"host:port"`, or anything `std::net::ToSocketAddrs`
/// takes) with the blocking system resolver into one backend per address.
pub(crate) fn resolve_blocking<A: std::net::ToSocketAddrs + fmt::Debug>(
    addr: A,
) -> Result<Vec<Backend>> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .or_err_with(ErrorType::InternalError, || {
            format!("resolving backend address {addr:?}")
        })?
        .collect();
    if addrs.is_empty() {
        return Error::e_explain(
            ErrorType::InternalError,
            format!("backend address {addr:?} resolved to nothing"),
        );
    }
    Ok(addrs
        .into_iter()
        .map(|a| Backend::from_addr(a, 1))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proxy_core::upstreams::peer::{HttpPeer, Peer};
    use std::collections::BTreeSet;

    #[test]
    fn equality_and_order_ignore_ext() {
        let a = Backend::new("127.0.0.1:80").unwrap();
        let mut b = Backend::new("127.0.0.1:80").unwrap();
        b.ext.insert("dc1");
        assert_eq!(a, b);
        assert_eq!(a.hash_key(), b.hash_key());
        let heavier = Backend::new_with_weight("127.0.0.1:80", 2).unwrap();
        assert_ne!(a, heavier);
        assert_ne!(a.hash_key(), heavier.hash_key());
        let set: BTreeSet<Backend> = [Backend::new("127.0.0.2:80").unwrap(), a.clone(), b, heavier]
            .into_iter()
            .collect();
        let order: Vec<String> = set.iter().map(|b| b.to_string()).collect();
        assert_eq!(
            order,
            ["127.0.0.1:80", "127.0.0.1:80 weight=2", "127.0.0.2:80"]
        );
    }

    #[test]
    fn bad_address_is_named_in_the_error() {
        let e = Backend::new("example.com:80").unwrap_err();
        assert!(e.to_string().contains("'example.com:80'"), "{e}");
        assert!(Backend::new("127.0.0.1").is_err());
    }

    #[test]
    fn http_peer_takes_a_backend() {
        let b = Backend::new("[::1]:8443").unwrap();
        let peer = HttpPeer::new(&b, false, String::new());
        assert_eq!(peer.address().to_string(), "[::1]:8443");
        let peer = HttpPeer::try_new(b, true, "example.com".into()).unwrap();
        assert!(peer.is_tls());
    }

    #[test]
    fn resolving_a_name_gives_one_backend_per_address() {
        let v = resolve_blocking("127.0.0.1:81").unwrap();
        assert_eq!(v, [Backend::new("127.0.0.1:81").unwrap()]);
        let v = resolve_blocking(("localhost", 82)).unwrap();
        assert!(!v.is_empty());
        assert!(v
            .iter()
            .all(|b| b.addr.port() == 82 && b.addr.ip().is_loopback()));
        assert!(resolve_blocking("no-such-host.invalid:80").is_err());
    }
}
