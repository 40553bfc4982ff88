//! # proxy-limits
//!
//! Counting and limiting per key (a client address, an API key, a host) in
//! memory that does not grow with the number of keys, without locks, on
//! std's atomics alone:
//!
//! - [`Estimator`] ([`estimator`]): a count-min sketch of atomic counters,
//!   the building block; its accuracy, as a function of its size and of the
//!   number of keys, is documented there;
//! - [`Rate`] ([`rate`]): events per second per key over fixed windows of
//!   time, rotated without a lock;
//! - [`Inflight`] ([`inflight`]): things in flight per key, counted down
//!   when a [`Guard`] drops;
//! - [`RateLimiter`] ([`limiter`]): allow or deny each request of a key
//!   for a rate and a burst (GCRA), with the wait until it would be allowed,
//!   for a `429 Too Many Requests` with `Retry-After` (RFC 6585 §4,
//!   RFC 9110 §10.2.3).
//!
//! ```
//! use std::time::Instant;
//! use proxy_limits::{Decision, RateLimiter};
//!
//! let limiter = RateLimiter::new(10.0, 20).unwrap(); // 10/s, bursts of 20
//! let client = "192.0.2.7";
//! let now = Instant::now(); // `check` reads the clock itself
//! let codes: Vec<u16> = (0..25)
//!     .map(|_| match limiter.check_at(client, now) {
//!         Decision::Allowed => 200,
//!         Decision::Limited { .. } => 429,
//!     })
//!     .collect();
//! assert_eq!(codes.iter().filter(|c| **c == 200).count(), 20);
//! ```

pub mod estimator;
mod hash;
pub mod inflight;
pub mod limiter;
pub mod rate;
mod window;

pub use estimator::Estimator;
pub use inflight::{Guard, Inflight};
pub use limiter::{Decision, LimiterConfigError, RateLimiter};
pub use rate::{Rate, RateComponents, PROPORTIONAL_RATE_ESTIMATE_CALC_FN};
