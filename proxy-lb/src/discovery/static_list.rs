//! [`Static`]: a fixed list of backends, changeable from code.

use std::collections::{BTreeSet, HashMap};
use std::net::ToSocketAddrs;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use proxy_core::Result;

use super::ServiceDiscovery;
use crate::backend::resolve_blocking;
use crate::Backend;

/// A list of backends kept in memory. [`Static::add`] and
/// [`Static::remove`] change it; the load balancer sees the change on its
/// next `update()`.
#[derive(Debug)]
pub struct Static {
    backends: ArcSwap<BTreeSet<Backend>>,
}

impl Static {
    /// A list of `backends`.
    pub fn new(backends: BTreeSet<Backend>) -> Box<Self> {
        Box::new(Static {
            backends: ArcSwap::new(Arc::new(backends)),
        })
    }

    /// A list from addresses (`"10.0.0.7:80"`, `("example.com", 80)`, a
    /// `SocketAddr`...), each resolved now with the blocking system
    /// resolver; a name with several addresses gives one backend (weight 1)
    /// per address.
    ///
    /// # Errors
    /// `InternalError` naming the first address that does not parse or
    /// resolve.
    pub fn try_from_iter<A, T>(iter: T) -> Result<Box<Self>>
    where
        A: ToSocketAddrs + std::fmt::Debug,
        T: IntoIterator<Item = A>,
    {
        let mut set = BTreeSet::new();
        for addr in iter {
            set.extend(resolve_blocking(addr)?);
        }
        Ok(Self::new(set))
    }

    /// The current list.
    pub fn get(&self) -> BTreeSet<Backend> {
        BTreeSet::clone(&self.backends.load())
    }

    /// Add `backend` (replacing an equal one).
    pub fn add(&self, backend: Backend) {
        self.backends.rcu(|set| {
            let mut set = BTreeSet::clone(set);
            set.replace(backend.clone());
            set
        });
    }

    /// Remove `backend`, if present.
    pub fn remove(&self, backend: &Backend) {
        self.backends.rcu(|set| {
            let mut set = BTreeSet::clone(set);
            set.remove(backend);
            set
        });
    }
}

#[async_trait]
impl ServiceDiscovery for Static {
    /// The list; every backend enabled. Never fails.
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        Ok((self.get(), HashMap::new()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_what_it_was_given_and_changes() {
        let s = Static::try_from_iter(["127.0.0.1:1", "127.0.0.1:2"]).unwrap();
        let (set, enabled) = s.discover().await.unwrap();
        assert_eq!(set.len(), 2);
        assert!(enabled.is_empty());
        s.add(Backend::new("127.0.0.1:3").unwrap());
        s.remove(&Backend::new("127.0.0.1:1").unwrap());
        let ports: Vec<u16> = s.get().iter().map(|b| b.addr.port()).collect();
        assert_eq!(ports, [2, 3]);
    }

    #[test]
    fn bad_address_fails_naming_it() {
        let e = Static::try_from_iter(["127.0.0.1:1", "nope"]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
