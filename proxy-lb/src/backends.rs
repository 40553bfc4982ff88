//! [`Backends`]: the set of backends from a discovery source, with the
//! health of each.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::future::join_all;
use proxy_core::Result;

use crate::discovery::ServiceDiscovery;
use crate::health::{BackendHealth, Health};
use crate::health_check::HealthCheck;
use crate::Backend;

/// The backends and their health, swapped as one value so readers never
/// see a set without its health table.
#[derive(Debug, Default)]
pub(crate) struct Members {
    pub(crate) set: BTreeSet<Backend>,
    pub(crate) health: HashMap<Backend, Arc<Health>>,
}

impl Members {
    /// Whether `backend` may take traffic (healthy and enabled); unknown
    /// backends may not.
    pub(crate) fn ready(&self, backend: &Backend) -> bool {
        self.health.get(backend).is_some_and(|h| h.ready())
    }
}

/// A set of backends kept up to date from a [`ServiceDiscovery`], with the
/// health of each member and the optional [`HealthCheck`] that maintains it.
pub struct Backends {
    discovery: Box<dyn ServiceDiscovery + Send + Sync>,
    health_check: Option<Arc<dyn HealthCheck + Send + Sync>>,
    members: ArcSwap<Members>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("members", &self.members.load().set)
            .field("health_check", &self.health_check.is_some())
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// An empty set fed by `discovery`; [`Backends::update`] fills it.
    pub fn new(discovery: Box<dyn ServiceDiscovery + Send + Sync + 'static>) -> Self {
        Backends {
            discovery,
            health_check: None,
            members: ArcSwap::new(Arc::new(Members::default())),
        }
    }

    /// Check the members' health with `hc` (see [`Backends::run_health_check`]).
    pub fn set_health_check(&mut self, hc: Box<dyn HealthCheck + Send + Sync + 'static>) {
        self.health_check = Some(Arc::from(hc));
    }

    /// Whether a health check is set.
    pub fn has_health_check(&self) -> bool {
        self.health_check.is_some()
    }

    /// The current set.
    pub fn get_backend(&self) -> Arc<BTreeSet<Backend>> {
        Arc::new(self.members.load().set.clone())
    }

    pub(crate) fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// Whether `backend` may take traffic now: a member, healthy and enabled.
    pub fn ready(&self, backend: &Backend) -> bool {
        self.members.load().ready(backend)
    }

    /// The health of every member, in set order.
    pub fn health_report(&self) -> Vec<BackendHealth> {
        let members = self.members.load();
        members
            .set
            .iter()
            .filter_map(|b| members.health.get(b).map(|h| h.report(b)))
            .collect()
    }

    /// Let `backend` take traffic (`true`) or not; whether that changed
    /// anything. It holds until discovery's enablement map names the
    /// backend (static discovery never does).
    pub(crate) fn set_enable(&self, backend: &Backend, enabled: bool) -> bool {
        self.members
            .load()
            .health
            .get(backend)
            .is_some_and(|h| h.set_enabled(enabled))
    }

    pub(crate) fn health_of(&self, backend: &Backend) -> Option<Arc<Health>> {
        self.members.load().health.get(backend).cloned()
    }

    /// Ask discovery for the current set and take it in. Members that stay
    /// keep their health and, unless discovery's enablement map names them,
    /// their enablement; newcomers start healthy, enabled unless the map
    /// says otherwise. Returns whether the set or any enablement changed.
    ///
    /// # Errors
    /// Discovery's error; the current set is then kept.
    ///
    /// # Cancel safety
    /// The set is replaced in one step after discovery answers; dropping
    /// the future before that changes nothing.
    pub async fn update(&self) -> Result<bool> {
        let (set, enablement) = self.discovery.discover().await?;
        let current = self.members.load_full();
        // discovery decides enablement only for the backends its map names;
        // the others keep theirs (newcomers start enabled)
        let named = |b: &Backend| enablement.get(&b.hash_key()).copied();
        let enablement_changed = set.iter().any(
            |b| matches!((named(b), current.health.get(b)), (Some(e), Some(h)) if h.enabled() != e),
        );
        if set == current.set && !enablement_changed {
            return Ok(false);
        }
        let mut health = HashMap::with_capacity(set.len());
        for b in &set {
            let h = match current.health.get(b) {
                Some(h) => {
                    if let Some(enabled) = named(b) {
                        h.set_enabled(enabled);
                    }
                    h.clone()
                }
                None => Arc::new(Health::new(named(b).unwrap_or(true))),
            };
            health.insert(b.clone(), h);
        }
        let added = set.difference(&current.set).count();
        let mut removed = 0;
        for gone in current.set.difference(&set) {
            crate::metrics::forget_backend(gone);
            removed += 1;
        }
        if added + removed > 0 {
            log::info!(
                "backends updated: {} now ({added} added, {removed} removed)",
                set.len()
            );
        }
        self.members.store(Arc::new(Members { set, health }));
        Ok(true)
    }

    /// Check every member once (all at once when `parallel`, else one after
    /// the other), update their health and log each flip. Returns whether
    /// any member flipped. Does nothing without a health check.
    ///
    /// # Cancel safety
    /// Results already observed stay recorded; the rest are lost.
    pub async fn run_health_check(&self, parallel: bool) -> bool {
        self.run_health_check_with(parallel, &|| {}).await
    }

    /// [`Backends::run_health_check`], calling `on_flip` right after each
    /// flip (the load balancer rebuilds its selection there, so a dead
    /// backend leaves it before the rest of the round is done).
    pub(crate) async fn run_health_check_with(
        &self,
        parallel: bool,
        on_flip: &(dyn Fn() + Sync),
    ) -> bool {
        let Some(hc) = self.health_check.clone() else {
            return false;
        };
        let members = self.members.load_full();
        let check_one = |backend: &Backend| {
            let hc = hc.clone();
            let health = members.health.get(backend).cloned();
            let backend = backend.clone();
            async move {
                let Some(health) = health else { return false };
                let result = hc.check(&backend).await.map_err(|e| e.to_string());
                let ok = result.is_ok();
                let error = result.as_ref().err().cloned();
                let flipped = health.observe(result, hc.health_threshold(ok));
                crate::metrics::set_backend_healthy(&backend, health.healthy());
                if !flipped {
                    return false;
                }
                if ok {
                    log::info!("backend {backend} is healthy again");
                } else {
                    log::warn!(
                        "backend {backend} is unhealthy, out of selection: {}",
                        error.unwrap_or_default()
                    );
                }
                on_flip();
                hc.health_status_change(&backend, ok).await;
                true
            }
        };
        if parallel {
            join_all(members.set.iter().map(check_one))
                .await
                .contains(&true)
        } else {
            let mut any = false;
            for b in &members.set {
                any |= check_one(b).await;
            }
            any
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::discovery::Static;
    use crate::health_check::TcpHealthCheck;
    use async_trait::async_trait;

    #[tokio::test]
    async fn update_keeps_health_of_members_that_stay() {
        let discovery = Static::try_from_iter(["127.0.0.1:1", "127.0.0.1:2"]).unwrap();
        let a = Backend::new("127.0.0.1:1").unwrap();
        let backends = Backends::new(discovery);
        assert!(backends.update().await.unwrap());
        assert!(!backends.update().await.unwrap());
        assert!(backends.ready(&a));
        backends
            .health_of(&a)
            .unwrap()
            .observe(Err("down".into()), 1);
        assert!(!backends.ready(&a));
        let report = backends.health_report();
        assert_eq!(report.len(), 2);
        assert!(!report[0].healthy);
        assert_eq!(report[0].last_error.as_deref(), Some("down"));
    }

    struct Flaky(std::sync::atomic::AtomicBool);

    #[async_trait]
    impl crate::discovery::ServiceDiscovery for Flaky {
        async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
            if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return proxy_core::Error::e_explain(
                    proxy_core::ErrorType::InternalError,
                    "source down",
                );
            }
            let b = Backend::new("127.0.0.1:7").unwrap();
            let mut en = HashMap::new();
            en.insert(b.hash_key(), false);
            Ok(([b].into_iter().collect(), en))
        }
    }

    #[tokio::test]
    async fn discovery_errors_keep_the_set_and_enablement_applies() {
        let backends = Backends::new(Box::new(Flaky(Default::default())));
        assert!(backends.update().await.unwrap());
        let b = Backend::new("127.0.0.1:7").unwrap();
        assert!(!backends.ready(&b), "disabled by discovery");
        assert!(backends.update().await.is_err());
        assert_eq!(backends.get_backend().len(), 1);
    }

    #[tokio::test]
    async fn health_check_round_flips_dead_backends() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let up = Backend::from_addr(live.local_addr().unwrap(), 1);
        let down = Backend::from_addr(dead_addr, 1);
        let mut backends = Backends::new(Static::new(
            [up.clone(), down.clone()].into_iter().collect(),
        ));
        backends.set_health_check(TcpHealthCheck::new());
        backends.update().await.unwrap();
        let flips = std::sync::atomic::AtomicUsize::new(0);
        let on_flip = || {
            flips.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        for parallel in [false, true] {
            let flipped = backends.run_health_check_with(parallel, &on_flip).await;
            assert_eq!(flipped, !parallel, "only the first round flips");
        }
        assert_eq!(flips.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(backends.ready(&up));
        assert!(!backends.ready(&down));
        let report = backends.health_report();
        let dead_report = report.iter().find(|r| r.backend == down).unwrap();
        assert_eq!(dead_report.checks, 2);
        assert!(
            dead_report.last_error.as_ref().unwrap().contains("Refused"),
            "{dead_report:?}"
        );
    }
}
