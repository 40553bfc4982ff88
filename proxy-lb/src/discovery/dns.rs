//! [`Dns`]: backends from host names, re-resolved on every update.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::join_all;
use parking_lot::Mutex;
use proxy_core::{Error, ErrorType, Result};

use super::resolver::{Resolve, SystemResolver};
use super::ServiceDiscovery;
use crate::Backend;

/// One name to resolve: every address it resolves to becomes a backend
/// `address:port` of weight `weight`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    /// The host name (or an IP literal).
    pub host: String,
    /// The port of every backend it gives.
    pub port: u16,
    /// The weight of every backend it gives. Default 1.
    pub weight: usize,
}

impl DnsTarget {
    /// Parse `host:port` (`[v6]:port` for IPv6 literals); weight 1.
    ///
    /// # Errors
    /// `InternalError` naming `name` when it has no port or the port is not
    /// a number in 0..=65535.
    pub fn parse(name: &str) -> Result<Self> {
        let bad = || {
            Error::explain(
                ErrorType::InternalError,
                format!("invalid DNS backend '{name}': expected host:port"),
            )
        };
        let (host, port) = name.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(DnsTarget {
            host: host.to_string(),
            port,
            weight: 1,
        })
    }
}

/// Backends from host names (see the [module docs](super)).
///
/// Each [`DnsTarget`] is resolved on every `discover()`; the targets are
/// resolved concurrently. A name whose resolution fails (or gives nothing)
/// keeps the addresses of its last good resolution, and the failure is
/// logged; `discover()` fails only when no target has ever resolved.
///
/// ```no_run
/// use std::time::Duration;
/// use proxy_lb::discovery::{Dns, HostsFile};
/// use proxy_lb::selection::RoundRobin;
/// use proxy_lb::{Backends, LoadBalancer};
///
/// let discovery = Dns::new(["api.internal:8080"]).unwrap();
/// // or from a file kept up to date by other tooling:
/// let _from_file = Dns::new(["api.internal:8080"])
///     .unwrap()
///     .with_resolver(HostsFile::new("/run/backends.hosts"));
/// let mut lb: LoadBalancer<RoundRobin> = LoadBalancer::from_backends(Backends::new(discovery));
/// lb.update_frequency = Some(Duration::from_secs(5));
/// ```
pub struct Dns {
    targets: Vec<DnsTarget>,
    resolver: Arc<dyn Resolve>,
    /// The last good backends of each target (by index).
    last_good: Mutex<HashMap<usize, Vec<Backend>>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Dns {
    /// Names `host:port`, each of weight 1, resolved with the
    /// [`SystemResolver`].
    ///
    /// # Errors
    /// As [`DnsTarget::parse`], for the first name that does not parse.
    pub fn new<I, S>(names: I) -> Result<Box<Self>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let targets = names
            .into_iter()
            .map(|n| DnsTarget::parse(n.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_targets(targets, Arc::new(SystemResolver)))
    }

    /// `targets`, resolved with `resolver`.
    pub fn from_targets(targets: Vec<DnsTarget>, resolver: Arc<dyn Resolve>) -> Box<Self> {
        Box::new(Dns {
            targets,
            resolver,
            last_good: Mutex::new(HashMap::new()),
        })
    }

    /// The same targets, resolved with `resolver` instead.
    pub fn with_resolver(mut self: Box<Self>, resolver: impl Resolve + 'static) -> Box<Self> {
        self.resolver = Arc::new(resolver);
        self.last_good.get_mut().clear();
        self
    }

    /// The backends of target `i` now: fresh, or its last good ones.
    fn settle(
        &self,
        i: usize,
        target: &DnsTarget,
        fresh: Result<Vec<std::net::IpAddr>>,
    ) -> Option<Vec<Backend>> {
        let mut last_good = self.last_good.lock();
        match fresh {
            Ok(ips) if !ips.is_empty() => {
                let backends: Vec<Backend> = ips
                    .into_iter()
                    .map(|ip| Backend::from_addr(SocketAddr::new(ip, target.port), target.weight))
                    .collect();
                last_good.insert(i, backends.clone());
                Some(backends)
            }
            fresh => {
                let why = match fresh {
                    Err(e) => e.to_string(),
                    Ok(_) => "no addresses".to_string(),
                };
                let kept = last_good.get(&i).cloned();
                log::warn!(
                    "DNS discovery: resolving {}:{} failed ({why}); keeping its last {} address(es)",
                    target.host,
                    target.port,
                    kept.as_ref().map_or(0, Vec::len)
                );
                kept
            }
        }
    }
}

#[async_trait]
impl ServiceDiscovery for Dns {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let results = join_all(self.targets.iter().map(|t| self.resolver.resolve(&t.host))).await;
        let mut set = BTreeSet::new();
        let mut any = false;
        for (i, (target, fresh)) in self.targets.iter().zip(results).enumerate() {
            if let Some(backends) = self.settle(i, target, fresh) {
                any = true;
                set.extend(backends);
            }
        }
        if !any && !self.targets.is_empty() {
            return Error::e_explain(
                ErrorType::Custom("ResolveError"),
                "DNS discovery: no name has resolved yet",
            );
        }
        Ok((set, HashMap::new()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::HostsFile;
    use super::*;

    #[test]
    fn targets_parse() {
        let t = DnsTarget::parse("api.internal:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.weight),
            ("api.internal", 8080, 1)
        );
        let t = DnsTarget::parse("[::1]:80").unwrap();
        assert_eq!(t.host, "::1");
        for bad in ["api.internal", "api:http", ":80", "api:70000"] {
            let e = DnsTarget::parse(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[tokio::test]
    async fn several_addresses_give_several_backends_and_failures_keep_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.2 svc\n127.0.0.3 svc\n127.0.0.9 other\n").unwrap();
        let dns = Dns::new(["svc:8080", "other:9000"])
            .unwrap()
            .with_resolver(HostsFile::new(&hosts));
        let (set, _) = dns.discover().await.unwrap();
        let names: Vec<String> = set.iter().map(|b| b.to_string()).collect();
        assert_eq!(
            names,
            ["127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.9:9000"]
        );

        // "other" disappears from the file: it keeps its last address
        std::fs::write(&hosts, "127.0.0.4 svc\n").unwrap();
        let (set, _) = dns.discover().await.unwrap();
        let names: Vec<String> = set.iter().map(|b| b.to_string()).collect();
        assert_eq!(names, ["127.0.0.4:8080", "127.0.0.9:9000"]);

        // the file goes away: everything keeps its last good addresses
        std::fs::remove_file(&hosts).unwrap();
        let (set2, _) = dns.discover().await.unwrap();
        assert_eq!(set2, set);
    }

    #[tokio::test]
    async fn never_resolved_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "").unwrap();
        let dns = Dns::new(["svc:80"])
            .unwrap()
            .with_resolver(HostsFile::new(&hosts));
        assert!(dns.discover().await.is_err());
    }
}
