//! [`LoadBalancer`]: a selection algorithm over a set of backends kept
//! healthy by checks and fresh by discovery.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use futures_util::FutureExt;
use parking_lot::Mutex;
use proxy_core::server::ShutdownWatch;
use proxy_core::services::background::BackgroundService;
use proxy_core::{Error, ErrorType, Result};

use crate::backends::{Backends, Members};
use crate::discovery::Static;
use crate::health::BackendHealth;
use crate::health_check::HealthCheck;
use crate::selection::{BackendIter, BackendSelection, InFlightGuard, LeastConnections};
use crate::Backend;

/// Passive health: connect failures seen by the request path take a
/// backend out of selection before the next active check notices.
///
/// Off by default. It only acts when an active health check is set,
/// because only a passing active check brings the backend back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveHealth {
    /// This many connect failures in a row (reported with
    /// [`LoadBalancer::report_connect_failure`], with no
    /// [`LoadBalancer::report_connect_success`] in between) mark the backend
    /// unhealthy until its next passing active check.
    pub max_connect_failures: usize,
}

/// What `select` reads: the selections built from the members at one
/// moment. Swapped whole, so a select sees one consistent version.
struct Snapshot<S> {
    /// Over the ready (healthy and enabled) members: what `select` uses.
    ready: Arc<S>,
    /// Over every member: what `select_with` walks, asking the caller.
    all: Arc<S>,
    members: Arc<Members>,
}

/// Spreads requests over a set of backends with the algorithm `S`
/// ([`crate::selection`]), skipping the ones that health checks (or passive
/// reports) took out.
///
/// The selection is an immutable structure rebuilt whenever the set, the
/// health or the enablement of a member changes, and swapped in atomically
/// (arc-swap): [`LoadBalancer::select`] reads it without a lock and never
/// waits for a rebuild.
///
/// Run it as a background service (`background_service("lb", lb)`) to have
/// discovery re-run every [`LoadBalancer::update_frequency`] and checks
/// every [`LoadBalancer::health_check_frequency`] on the server's
/// background runtime, until the server shuts down; share it with the proxy
/// through `GenBackgroundService::task()`.
///
/// ```
/// use std::time::Duration;
/// use proxy_lb::health_check::TcpHealthCheck;
/// use proxy_lb::selection::RoundRobin;
/// use proxy_lb::LoadBalancer;
///
/// let mut upstreams =
///     LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001"]).unwrap();
/// upstreams.set_health_check(TcpHealthCheck::new());
/// upstreams.health_check_frequency = Some(Duration::from_secs(1));
/// let first = upstreams.select(b"", 256).unwrap();
/// let second = upstreams.select(b"", 256).unwrap();
/// assert_ne!(first, second);
/// ```
pub struct LoadBalancer<S: BackendSelection> {
    backends: Backends,
    config: S::Config,
    snapshot: ArcSwap<Snapshot<S>>,
    /// Serialises rebuilds so an older state never overwrites a newer one.
    rebuild_lock: Mutex<()>,
    passive: Option<PassiveHealth>,
    /// How often to run the health check, when one is set. `None` (the
    /// default): once when the background service starts.
    pub health_check_frequency: Option<Duration>,
    /// How often to ask discovery for the set. `None` (the default): once
    /// when the background service starts.
    pub update_frequency: Option<Duration>,
    /// Check all backends at once (`true`) or one after the other (the
    /// default, `false`; a round then takes the sum of the probes' times).
    pub parallel_health_check: bool,
}

impl<S: BackendSelection> Debug for LoadBalancer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadBalancer")
            .field("backends", &self.backends)
            .field("health_check_frequency", &self.health_check_frequency)
            .field("update_frequency", &self.update_frequency)
            .field("parallel_health_check", &self.parallel_health_check)
            .finish_non_exhaustive()
    }
}

impl<S: BackendSelection> LoadBalancer<S> {
    /// A load balancer over a static list: each address (`"10.0.0.7:80"`,
    /// `("example.com", 80)`, a `SocketAddr`...) resolved now with the
    /// blocking system resolver, one backend of weight 1 per address.
    ///
    /// # Errors
    /// `InternalError` naming the first address that does not parse or resolve.
    pub fn try_from_iter<A, T>(iter: T) -> Result<Self>
    where
        A: ToSocketAddrs + Debug,
        T: IntoIterator<Item = A>,
    {
        let lb = Self::from_backends(Backends::new(Static::try_from_iter(iter)?));
        lb.update_now()?;
        Ok(lb)
    }

    /// A load balancer over `backends`, with the algorithm's default config.
    /// The set is empty until the first [`LoadBalancer::update`] (which the
    /// background service runs when it starts) unless `backends` was already
    /// updated.
    pub fn from_backends(backends: Backends) -> Self {
        Self::from_backends_with_config(backends, S::Config::default())
    }

    /// A load balancer over `backends` with algorithm config `config`.
    pub fn from_backends_with_config(backends: Backends, config: S::Config) -> Self {
        let members = backends.members();
        let empty = Arc::new(S::build_with_config(&BTreeSet::new(), &config));
        let lb = LoadBalancer {
            backends,
            config,
            snapshot: ArcSwap::new(Arc::new(Snapshot {
                ready: empty.clone(),
                all: empty,
                members,
            })),
            rebuild_lock: Mutex::new(()),
            passive: None,
            health_check_frequency: None,
            update_frequency: None,
            parallel_health_check: false,
        };
        lb.rebuild();
        lb
    }

    /// A load balancer over `backends`, updated now. For discovery that
    /// answers without waiting (such as [`Static`]).
    ///
    /// # Errors
    /// Discovery's error, or `InternalError` when discovery would wait.
    fn update_now(&self) -> Result<()> {
        match self.update().now_or_never() {
            Some(result) => result,
            None => Error::e_explain(
                ErrorType::InternalError,
                "discovery did not answer at once; call update().await",
            ),
        }
    }

    /// Check backends with `hc`, every [`LoadBalancer::health_check_frequency`].
    pub fn set_health_check(&mut self, hc: Box<dyn HealthCheck + Send + Sync + 'static>) {
        self.backends.set_health_check(hc);
    }

    /// Turn passive health on (`Some`) or off (`None`, the default); see [`PassiveHealth`].
    pub fn set_passive_health(&mut self, passive: Option<PassiveHealth>) {
        self.passive = passive;
    }

    /// The backends, their health and the discovery behind them.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The algorithm's config (for [`LeastConnections`], where the in-flight
    /// counts live).
    pub fn selection_config(&self) -> &S::Config {
        &self.config
    }

    /// The health of every backend, in address order: for metrics and admin pages.
    pub fn health_report(&self) -> Vec<BackendHealth> {
        self.backends.health_report()
    }

    /// Run discovery now and take in its answer, rebuilding the selection
    /// when the set changed.
    ///
    /// # Errors
    /// Discovery's error; the current set stays.
    ///
    /// # Cancel safety
    /// As [`Backends::update`]: dropped before discovery answers, nothing changes.
    pub async fn update(&self) -> Result<()> {
        if self.backends.update().await? {
            self.rebuild();
        }
        Ok(())
    }

    /// Run the health check over every backend now (see
    /// [`Backends::run_health_check`]); each flip rebuilds the selection at once.
    ///
    /// # Cancel safety
    /// Results already observed stay recorded.
    pub async fn run_health_check(&self) {
        self.backends
            .run_health_check_with(self.parallel_health_check, &|| self.rebuild())
            .await;
    }

    /// A healthy backend for `key`, or `None` when no backend is healthy
    /// (or `max_iterations` is 0). Algorithms that hash use `key`; the others
    /// ignore it (the tutorial passes `b""`). Never waits on a lock.
    pub fn select(&self, key: &[u8], max_iterations: usize) -> Option<Backend> {
        if max_iterations == 0 {
            return None;
        }
        self.snapshot.load().ready.first(key).cloned()
    }

    /// The first of at most `max_iterations` candidates for `key` that
    /// `accept(backend, ready)` takes, walking over every backend, ready or
    /// not (`ready` = healthy and enabled). For policies of one's own: fail
    /// open to an unhealthy backend, skip a backend already tried...
    pub fn select_with<F>(&self, key: &[u8], max_iterations: usize, accept: F) -> Option<Backend>
    where
        F: Fn(&Backend, bool) -> bool,
    {
        let snapshot = self.snapshot.load();
        let mut iter = snapshot.all.iter(key);
        for _ in 0..max_iterations {
            let backend = iter.next()?;
            if accept(backend, snapshot.members.ready(backend)) {
                return Some(backend.clone());
            }
        }
        None
    }

    /// Let `backend` take traffic (`true`) or take it out (`false`) without
    /// touching its health; the selection is rebuilt when that changed.
    pub fn set_enable(&self, backend: &Backend, enabled: bool) {
        if self.backends.set_enable(backend, enabled) {
            self.rebuild();
        }
    }

    /// Tell passive health that connecting to `backend` failed. Returns
    /// whether this took it out of selection (see [`PassiveHealth`]); does
    /// nothing (`false`) when passive health is off or no active check is set.
    pub fn report_connect_failure(&self, backend: &Backend) -> bool {
        let Some(passive) = self.passive else {
            return false;
        };
        if !self.backends.has_health_check() {
            return false;
        }
        let Some(health) = self.backends.health_of(backend) else {
            return false;
        };
        if !health.passive_failure(passive.max_connect_failures) {
            return false;
        }
        crate::metrics::set_backend_healthy(backend, false);
        log::warn!(
            "backend {backend} is unhealthy after {} connect failures in a row, out of selection until a health check passes",
            passive.max_connect_failures
        );
        self.rebuild();
        true
    }

    /// Tell passive health that connecting to `backend` worked (resets its
    /// run of failures). Cheap when passive health is off.
    pub fn report_connect_success(&self, backend: &Backend) {
        if self.passive.is_none() {
            return;
        }
        if let Some(health) = self.snapshot.load().members.health.get(backend) {
            health.passive_success();
        }
    }

    /// Build the selections from the members as they are now and swap them in.
    fn rebuild(&self) {
        let _serial = self.rebuild_lock.lock();
        let members = self.backends.members();
        let ready: BTreeSet<Backend> = members
            .set
            .iter()
            .filter(|b| members.ready(b))
            .cloned()
            .collect();
        let all = Arc::new(S::build_with_config(&members.set, &self.config));
        let ready = if ready.len() == members.set.len() {
            all.clone()
        } else {
            Arc::new(S::build_with_config(&ready, &self.config))
        };
        self.snapshot.store(Arc::new(Snapshot {
            ready,
            all,
            members,
        }));
    }
}

impl LoadBalancer<LeastConnections> {
    /// Like [`LoadBalancer::select`], and count the request as in flight to
    /// the backend until the returned guard is dropped: keep the guard for
    /// the life of the request (for instance in its context), or least
    /// connections has nothing to go by.
    pub fn select_tracked(
        &self,
        key: &[u8],
        max_iterations: usize,
    ) -> Option<(Backend, InFlightGuard)> {
        if max_iterations == 0 {
            return None;
        }
        let _ = key; // least connections ignores the key
        self.snapshot.load().ready.pick_tracked()
    }

    /// Requests in flight to `backend` through tracked selects now.
    pub fn in_flight(&self, backend: &Backend) -> usize {
        self.config.in_flight(&backend.addr)
    }
}

/// When `deadline` comes; never when `None`.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl<S: BackendSelection> BackgroundService for LoadBalancer<S> {
    /// Run discovery and the health check once now, then each at its
    /// frequency, until `shutdown` turns `true` (an update or a round of
    /// checks in progress is abandoned then).
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next_update = Some(Instant::now());
        let mut next_check = self.backends.has_health_check().then(Instant::now);
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            let now = Instant::now();
            let work = async {
                if next_update.is_some_and(|t| t <= now) {
                    if let Err(e) = self.update().await {
                        log::error!(
                            "load balancer: discovery failed, keeping the current backends: {e}"
                        );
                    }
                    next_update = self.update_frequency.map(|f| Instant::now() + f);
                }
                if next_check.is_some_and(|t| t <= now) {
                    self.run_health_check().await;
                    next_check = self.health_check_frequency.map(|f| Instant::now() + f);
                }
            };
            tokio::select! {
                _ = work => {}
                _ = shutdown.changed() => return,
            }
            let wake = match (next_update, next_check) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                _ = sleep_until(wake) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::health_check::TcpHealthCheck;
    use crate::selection::{Consistent, RoundRobin};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A health check whose verdicts the test sets: backends listed in
    /// `down` (by port) fail.
    #[derive(Default)]
    struct Scripted {
        down: parking_lot::Mutex<HashSet<u16>>,
        checks: AtomicUsize,
    }

    #[async_trait]
    impl HealthCheck for Arc<Scripted> {
        async fn check(&self, target: &Backend) -> Result<()> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            if self.down.lock().contains(&target.addr.port()) {
                return Error::e_explain(
                    ErrorType::ConnectRefused,
                    format!("{} scripted down", target.addr),
                );
            }
            Ok(())
        }
        fn health_threshold(&self, _success: bool) -> usize {
            1
        }
    }

    fn lb_with(ports: &[u16]) -> (LoadBalancer<RoundRobin>, Arc<Scripted>) {
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(addrs).unwrap();
        let script = Arc::new(Scripted::default());
        lb.set_health_check(Box::new(script.clone()));
        (lb, script)
    }

    fn ports_of(lb: &LoadBalancer<RoundRobin>, n: usize) -> Vec<u16> {
        (0..n)
            .map(|_| lb.select(b"", 256).unwrap().addr.port())
            .collect()
    }

    #[tokio::test]
    async fn unhealthy_backends_leave_selection_and_come_back() {
        let (lb, script) = lb_with(&[1, 2, 3]);
        assert_eq!(ports_of(&lb, 3), [1, 2, 3]);
        script.down.lock().insert(2);
        lb.run_health_check().await;
        let picks = ports_of(&lb, 6);
        assert!(!picks.contains(&2), "{picks:?}");
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 3);
        script.down.lock().clear();
        lb.run_health_check().await;
        let picks: HashSet<u16> = ports_of(&lb, 3).into_iter().collect();
        assert_eq!(picks.len(), 3);
    }

    #[tokio::test]
    async fn all_down_selects_nothing_but_select_with_can_fail_open() {
        let (lb, script) = lb_with(&[1, 2]);
        script.down.lock().extend([1, 2]);
        lb.run_health_check().await;
        assert_eq!(lb.select(b"", 256), None);
        let report = lb.health_report();
        assert!(report.iter().all(|r| !r.ready()));
        assert!(report[0]
            .last_error
            .as_ref()
            .unwrap()
            .contains("scripted down"));
        // a caller may still choose an unhealthy backend
        let any = lb.select_with(b"", 8, |_, ready| !ready).unwrap();
        assert!([1, 2].contains(&any.addr.port()));
        assert_eq!(lb.select_with(b"", 8, |_, ready| ready), None);
        assert_eq!(lb.select(b"", 0), None);
    }

    #[test]
    fn disabled_backends_are_not_selected() {
        let (lb, _) = lb_with(&[1, 2]);
        let one = Backend::new("127.0.0.1:1").unwrap();
        lb.set_enable(&one, false);
        assert_eq!(ports_of(&lb, 4), [2, 2, 2, 2]);
        assert!(!lb.backends().ready(&one));
        lb.set_enable(&one, true);
        assert_eq!(ports_of(&lb, 2).len(), 2);
    }

    #[tokio::test]
    async fn passive_health_is_off_by_default_then_marks_down_until_a_check_passes() {
        let (mut lb, _script) = lb_with(&[1, 2]);
        let one = Backend::new("127.0.0.1:1").unwrap();
        for _ in 0..10 {
            assert!(!lb.report_connect_failure(&one));
        }
        assert!(lb.backends().ready(&one));
        lb.set_passive_health(Some(PassiveHealth {
            max_connect_failures: 3,
        }));
        assert!(!lb.report_connect_failure(&one));
        lb.report_connect_success(&one);
        assert!(!lb.report_connect_failure(&one));
        assert!(!lb.report_connect_failure(&one));
        assert!(lb.report_connect_failure(&one));
        assert_eq!(ports_of(&lb, 3), [2, 2, 2]);
        lb.run_health_check().await;
        assert!(lb.backends().ready(&one));
        assert!(ports_of(&lb, 2).contains(&1));
    }

    #[test]
    fn passive_health_needs_an_active_check() {
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:1"]).unwrap();
        lb.set_passive_health(Some(PassiveHealth {
            max_connect_failures: 1,
        }));
        let one = Backend::new("127.0.0.1:1").unwrap();
        assert!(!lb.report_connect_failure(&one));
        assert!(lb.select(b"", 1).is_some());
    }

    #[tokio::test]
    async fn set_enable_survives_updates_of_a_static_list() {
        let (lb, _) = lb_with(&[1, 2]);
        let one = Backend::new("127.0.0.1:1").unwrap();
        lb.set_enable(&one, false);
        lb.update().await.unwrap();
        assert!(!lb.backends().ready(&one));
        assert_eq!(ports_of(&lb, 2), [2, 2]);
    }

    #[tokio::test]
    async fn update_picks_up_discovery_changes() {
        // keep a handle on the list: discovery behind an Arc is discovery too
        let list: Arc<Static> = Arc::from(Static::try_from_iter(["127.0.0.1:1"]).unwrap());
        let lb = LoadBalancer::<Consistent>::from_backends(Backends::new(Box::new(list.clone())));
        assert_eq!(lb.select(b"k", 1), None, "empty until the first update");
        lb.update().await.unwrap();
        assert_eq!(lb.select(b"k", 1).unwrap().addr.port(), 1);
        list.add(Backend::new("127.0.0.1:2").unwrap());
        list.remove(&Backend::new("127.0.0.1:1").unwrap());
        lb.update().await.unwrap();
        assert_eq!(lb.select(b"k", 1).unwrap().addr.port(), 2);
    }

    #[tokio::test]
    async fn background_service_checks_on_schedule_and_stops_on_shutdown() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let mut lb =
            LoadBalancer::<RoundRobin>::try_from_iter([live.local_addr().unwrap(), dead_addr])
                .unwrap();
        lb.set_health_check(TcpHealthCheck::new());
        lb.health_check_frequency = Some(Duration::from_millis(50));
        lb.update_frequency = Some(Duration::from_millis(50));
        let lb = Arc::new(lb);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = {
            let lb = lb.clone();
            tokio::spawn(async move { lb.start(rx).await })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while lb.health_report().iter().any(|r| r.checks < 3) {
            assert!(Instant::now() < deadline, "{:?}", lb.health_report());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..4 {
            assert_eq!(lb.select(b"", 4).unwrap().addr, live.local_addr().unwrap());
        }
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
