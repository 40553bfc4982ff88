//! The health of one backend: what checks observed, and the thresholds
//! that turn observations into a healthy/unhealthy state.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::Backend;

/// Health state of one backend, shared between the health checker, passive
/// reports from the request path and readers (selection, metrics).
#[derive(Debug)]
pub(crate) struct Health {
    healthy: AtomicBool,
    enabled: AtomicBool,
    /// Consecutive check results that contradict `healthy`.
    streak: AtomicUsize,
    /// Consecutive connect failures reported by the request path.
    passive_failures: AtomicUsize,
    checks: AtomicU64,
    failed_checks: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Health {
    /// A backend starts healthy (as in Pingora and nginx): it takes traffic
    /// until a check says otherwise.
    pub(crate) fn new(enabled: bool) -> Self {
        Health {
            healthy: AtomicBool::new(true),
            enabled: AtomicBool::new(enabled),
            streak: AtomicUsize::new(0),
            passive_failures: AtomicUsize::new(0),
            checks: AtomicU64::new(0),
            failed_checks: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Healthy and enabled: may receive traffic.
    pub(crate) fn ready(&self) -> bool {
        self.healthy() && self.enabled()
    }

    /// Set enabled; whether it changed.
    pub(crate) fn set_enabled(&self, enabled: bool) -> bool {
        self.enabled.swap(enabled, Ordering::AcqRel) != enabled
    }

    /// Record one active check: `Ok` or the error's text. The state flips
    /// after `threshold` (at least 1) consecutive results that contradict
    /// it. Returns whether it flipped. A success also clears passive
    /// failures.
    pub(crate) fn observe(&self, result: Result<(), String>, threshold: usize) -> bool {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let ok = result.is_ok();
        if ok {
            self.passive_failures.store(0, Ordering::Relaxed);
        } else {
            self.failed_checks.fetch_add(1, Ordering::Relaxed);
        }
        *self.last_error.lock() = result.err();
        if ok == self.healthy() {
            self.streak.store(0, Ordering::Relaxed);
            return false;
        }
        let streak = self.streak.fetch_add(1, Ordering::AcqRel) + 1;
        if streak < threshold.max(1) {
            return false;
        }
        self.streak.store(0, Ordering::Relaxed);
        self.healthy.swap(ok, Ordering::AcqRel) != ok
    }

    /// Record a connect failure seen by the request path; marks the backend
    /// unhealthy when it is the `limit`-th in a row. Returns whether it
    /// flipped to unhealthy.
    pub(crate) fn passive_failure(&self, limit: usize) -> bool {
        let n = self.passive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n < limit.max(1) {
            return false;
        }
        self.passive_failures.store(0, Ordering::Relaxed);
        self.streak.store(0, Ordering::Relaxed);
        self.healthy.swap(false, Ordering::AcqRel)
    }

    /// Record a successful connect seen by the request path.
    pub(crate) fn passive_success(&self) {
        if self.passive_failures.load(Ordering::Relaxed) != 0 {
            self.passive_failures.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn report(&self, backend: &Backend) -> BackendHealth {
        BackendHealth {
            backend: backend.clone(),
            healthy: self.healthy(),
            enabled: self.enabled(),
            checks: self.checks.load(Ordering::Relaxed),
            failed_checks: self.failed_checks.load(Ordering::Relaxed),
            passive_failures: self.passive_failures.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }
}

/// One backend's health, as of the moment it was read: for metrics, admin
/// pages and logs (see `LoadBalancer::health_report`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackendHealth {
    /// The backend.
    pub backend: Backend,
    /// What the checks (and passive reports) say.
    pub healthy: bool,
    /// Whether discovery (or `set_enable`) lets it take traffic.
    pub enabled: bool,
    /// Active checks run so far.
    pub checks: u64,
    /// Active checks that failed so far.
    pub failed_checks: u64,
    /// Consecutive connect failures reported by the request path since the
    /// last success (passive health).
    pub passive_failures: usize,
    /// The error of the last active check, `None` when it passed (or none ran).
    pub last_error: Option<String>,
}

impl BackendHealth {
    /// Healthy and enabled: the backend can be selected.
    pub fn ready(&self) -> bool {
        self.healthy && self.enabled
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flips_after_threshold_consecutive_results() {
        let h = Health::new(true);
        assert!(h.ready());
        assert!(!h.observe(Err("refused".into()), 2));
        assert!(!h.observe(Ok(()), 2)); // streak broken
        assert!(!h.observe(Err("refused".into()), 2));
        assert!(h.observe(Err("refused".into()), 2));
        assert!(!h.healthy());
        assert!(!h.observe(Ok(()), 3));
        assert!(!h.observe(Ok(()), 3));
        assert!(h.observe(Ok(()), 3));
        assert!(h.healthy());
    }

    #[test]
    fn threshold_zero_acts_as_one() {
        let h = Health::new(true);
        assert!(h.observe(Err("x".into()), 0));
    }

    #[test]
    fn report_counts_checks_and_keeps_the_last_error() {
        let h = Health::new(false);
        let b = Backend::new("127.0.0.1:1").unwrap();
        h.observe(Err("connection refused".into()), 1);
        let r = h.report(&b);
        assert!(!r.healthy && !r.enabled && !r.ready());
        assert_eq!((r.checks, r.failed_checks), (1, 1));
        assert_eq!(r.last_error.as_deref(), Some("connection refused"));
        h.observe(Ok(()), 1);
        let r = h.report(&b);
        assert!(r.healthy);
        assert_eq!(r.last_error, None);
        assert!(h.set_enabled(true));
        assert!(!h.set_enabled(true));
        assert!(h.report(&b).ready());
    }

    #[test]
    fn passive_failures_mark_down_at_the_limit_and_a_check_clears_them() {
        let h = Health::new(true);
        assert!(!h.passive_failure(3));
        h.passive_success();
        assert!(!h.passive_failure(3));
        assert!(!h.passive_failure(3));
        assert!(h.passive_failure(3));
        assert!(!h.healthy());
        assert!(h.observe(Ok(()), 1));
        assert!(h.healthy());
    }
}
