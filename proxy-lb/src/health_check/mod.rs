//! Active health checks: probe every backend on a schedule and mark it
//! unhealthy (out of selection) or healthy again after a run of
//! consecutive results.
//!
//! - [`TcpHealthCheck`]: a TCP connect (TLS once TLS upstreams exist);
//! - [`HttpHealthCheck`]: an HTTP request, a status (200) or a custom
//!   validator, optionally reusing the connection between checks.
//!
//! Both count `consecutive_success` passing checks before an unhealthy
//! backend comes back and `consecutive_failure` failing ones before a
//! healthy one is taken out (both default 1, as Pingora), bound every probe
//! with timeouts (1 s by default), and call `health_changed_callback` when a
//! backend flips. The load balancer runs them every `health_check_frequency`.

mod http;
mod tcp;

use async_trait::async_trait;
use proxy_core::Result;

use crate::Backend;

pub use self::http::{HttpHealthCheck, Validator};
pub use tcp::TcpHealthCheck;

/// A way to tell whether a backend works.
#[async_trait]
pub trait HealthCheck {
    /// Probe `target` once.
    ///
    /// # Errors
    /// Any error means the probe failed; its text is kept as the backend's
    /// `last_error` and logged when the backend flips.
    async fn check(&self, target: &Backend) -> Result<()>;

    /// Called after `target` flipped to `healthy` (`true`) or unhealthy.
    async fn health_status_change(&self, _target: &Backend, _healthy: bool) {}

    /// How many consecutive results of kind `success` flip the state.
    fn health_threshold(&self, success: bool) -> usize;
}

/// A callback told when a backend flips between healthy and unhealthy.
///
/// Any `Fn(&Backend, bool) + Send + Sync` closure is one:
///
/// ```
/// use proxy_lb::health_check::TcpHealthCheck;
///
/// let mut hc = TcpHealthCheck::new();
/// hc.health_changed_callback = Some(Box::new(|b: &proxy_lb::Backend, healthy: bool| {
///     eprintln!("{b} is now {}", if healthy { "up" } else { "down" });
/// }));
/// ```
#[async_trait]
pub trait HealthObserve {
    /// `target` is now `healthy` (`true`) or unhealthy (`false`).
    async fn observe(&self, target: &Backend, healthy: bool);
}

#[async_trait]
impl<F> HealthObserve for F
where
    F: Fn(&Backend, bool) + Send + Sync,
{
    async fn observe(&self, target: &Backend, healthy: bool) {
        self(target, healthy)
    }
}

/// A boxed [`HealthObserve`].
pub type HealthObserveCallback = Box<dyn HealthObserve + Send + Sync>;
