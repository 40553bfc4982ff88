//! [`RateLimiter`]: allow or deny each request of a key, given a rate and a
//! burst, and say how long a denied client should wait.
//!
//! # The rule: GCRA
//!
//! The limiter applies the Generic Cell Rate Algorithm in its "virtual
//! scheduling" form (ITU-T I.371 Annex A; the ATM Forum's Traffic
//! Management 4.0 §4.4.2), which admits exactly what a token bucket of
//! `burst` tokens refilled at `rate` tokens per second admits: a key may
//! make `burst` requests at once, then one every `1 / rate` seconds, and
//! gets its burst back after `burst / rate` seconds of silence.
//!
//! Per key it keeps one time, the *theoretical arrival time* `TAT` (when the
//! key's bucket would be full again). With the emission interval
//! `T = 1 / rate`, a request at time `t` is allowed when
//! `max(TAT, t) + T − t ≤ burst × T`, and then sets
//! `TAT = max(TAT, t) + T`. A denied request changes nothing; it could
//! pass at `max(TAT, t) + T − burst × T`, and that wait is what
//! [`Decision::Limited`] carries, for a `Retry-After` header
//! (RFC 6585 §4, RFC 9110 §10.2.3).
//!
//! GCRA rather than a token bucket because its whole state is one number, so
//! one atomic word per counter holds it and one compare-and-swap updates it.
//!
//! # Fixed memory: a sketch of arrival times
//!
//! The times live in a count-min-shaped sketch (the same rows and hashes
//! as the [`Estimator`](crate::Estimator)'s): `hashes` rows of `slots`
//! atomic words, one slot per row for each key. A word shared by several
//! keys holds the latest `TAT` of them all, never an earlier one than any
//! of them would have alone, and the key's `TAT` is the earliest of its
//! words. So a key is never allowed more than the rule above allows it; it
//! is denied more only when, in every row, the keys sharing its word
//! together send more than `rate` (plus `burst`). Size `slots` to a few
//! times the number of keys active at once.
//!
//! # Concurrency
//!
//! A check reads the key's words, raises all but the earliest to the new
//! `TAT`, and commits with one compare-and-swap of the earliest; when
//! another check changed that word meanwhile, it reads again. Words only
//! ever increase, so at the moment of a successful commit the key's words
//! all hold what was read or later, and the decision is the one a check
//! alone at that moment would make: two cores checking one key concurrently
//! are allowed exactly what one core checking twice would be. A check never
//! waits for a lock; it retries only when another check made progress.

use std::error::Error;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hash::{random_seed, Rows};

/// Rows of the sketch of [`RateLimiter::new`].
pub const DEFAULT_HASHES: usize = 4;
/// Slots per row of the sketch of [`RateLimiter::new`] (with
/// [`DEFAULT_HASHES`]: 256 KiB).
pub const DEFAULT_SLOTS: usize = 8192;

const NANOS_PER_SEC: f64 = 1e9;

/// What [`RateLimiter::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request is within the key's rate and burst (and was counted).
    Allowed,
    /// The request is over the key's limit (and was not counted).
    Limited {
        /// How long until a request of this key would be allowed (if no
        /// other request of it comes first).
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request was allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }

    /// The wait of a [`Decision::Limited`], `None` when allowed.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Decision::Allowed => None,
            Decision::Limited { retry_after } => Some(*retry_after),
        }
    }

    /// The wait of a [`Decision::Limited`] in whole seconds, rounded up and
    /// at least 1, for the `delay-seconds` form of `Retry-After`
    /// (RFC 9110 §10.2.3: a non-negative decimal integer of seconds).
    /// Rounded up, so a client that waits that long is allowed. `None` when
    /// allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after().map(|wait| {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            secs.max(1)
        })
    }
}

/// Why a [`RateLimiter`] could not be made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimiterConfigError {
    /// The rate (requests per second) is not a finite number above zero.
    InvalidRate(f64),
    /// The rate is over 10^9 per second: less than a nanosecond apart.
    RateTooHigh(f64),
    /// `burst / rate` (the time to refill the burst) is over 500 years.
    BurstTooLong {
        /// The rate, per second.
        rate: f64,
        /// The burst.
        burst: u32,
    },
    /// The burst is 0: nothing would ever be allowed.
    ZeroBurst,
}

impl fmt::Display for LimiterConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimiterConfigError::InvalidRate(r) => {
                write!(f, "rate limit: rate {r} per second is not a number above 0")
            }
            LimiterConfigError::RateTooHigh(r) => {
                write!(f, "rate limit: rate {r} per second is over 10^9")
            }
            LimiterConfigError::BurstTooLong { rate, burst } => write!(
                f,
                "rate limit: a burst of {burst} at {rate} per second takes over 500 years to refill"
            ),
            LimiterConfigError::ZeroBurst => write!(f, "rate limit: burst must be at least 1"),
        }
    }
}

impl Error for LimiterConfigError {}

/// Allows each key `burst` requests at once and `rate` per second after
/// that, in fixed memory and without locks. See the [module docs](self).
///
/// ```
/// use std::time::{Duration, Instant};
/// use proxy_limits::{Decision, RateLimiter};
///
/// // 10 per second, bursts of 20
/// let limiter = RateLimiter::new(10.0, 20).unwrap();
/// let now = Instant::now();
/// for _ in 0..20 {
///     assert!(limiter.check_at("10.0.0.1", now).is_allowed());
/// }
/// let denied = limiter.check_at("10.0.0.1", now);
/// assert_eq!(denied.retry_after(), Some(Duration::from_millis(100)));
/// assert_eq!(denied.retry_after_secs(), Some(1)); // Retry-After: 1
/// // another key has its own budget
/// assert!(limiter.check_at("10.0.0.2", now).is_allowed());
/// // 100 ms later, one more request of the first key is allowed
/// let later = now + Duration::from_millis(100);
/// assert_eq!(limiter.check_at("10.0.0.1", later), Decision::Allowed);
/// ```
pub struct RateLimiter {
    rows: Rows,
    /// Each word: a `TAT`, in ns since `start`.
    words: Box<[AtomicU64]>,
    start: Instant,
    /// `T`, in ns.
    emission_ns: u64,
    /// `burst × T`, in ns.
    capacity_ns: u64,
    rate: f64,
    burst: u32,
}

impl RateLimiter {
    /// A limiter of `rate` requests per second per key, with bursts of up
    /// to `burst` requests, over a sketch of [`DEFAULT_HASHES`] ×
    /// [`DEFAULT_SLOTS`].
    ///
    /// # Errors
    /// [`LimiterConfigError`] when `rate` is not finite and above 0, is over
    /// 10^9, `burst` is 0, or `burst / rate` is over 500 years.
    pub fn new(rate: f64, burst: u32) -> Result<Self, LimiterConfigError> {
        Self::with_sketch(rate, burst, DEFAULT_HASHES, DEFAULT_SLOTS)
    }

    /// As [`RateLimiter::new`] over a sketch of `hashes` rows of `slots`
    /// words (clamped as in [`Estimator::new`](crate::Estimator::new));
    /// memory is `hashes × slots × 8` bytes.
    ///
    /// # Errors
    /// As [`RateLimiter::new`].
    pub fn with_sketch(
        rate: f64,
        burst: u32,
        hashes: usize,
        slots: usize,
    ) -> Result<Self, LimiterConfigError> {
        Self::with_start_and_seed(rate, burst, hashes, slots, Instant::now(), random_seed())
    }

    /// The general constructor: times count from `start`; keys are placed
    /// by `seed`.
    pub(crate) fn with_start_and_seed(
        rate: f64,
        burst: u32,
        hashes: usize,
        slots: usize,
        start: Instant,
        seed: u64,
    ) -> Result<Self, LimiterConfigError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(LimiterConfigError::InvalidRate(rate));
        }
        if burst == 0 {
            return Err(LimiterConfigError::ZeroBurst);
        }
        let emission = (NANOS_PER_SEC / rate).round();
        if emission < 1.0 {
            return Err(LimiterConfigError::RateTooHigh(rate));
        }
        // 500 years in ns (1.6e19 < 2^64) bounds the burst's refill time,
        // so times stay far from u64 overflow for centuries of uptime.
        const MAX_NS: f64 = 500.0 * 365.25 * 86_400.0 * NANOS_PER_SEC;
        if emission * f64::from(burst) > MAX_NS {
            return Err(LimiterConfigError::BurstTooLong { rate, burst });
        }
        // in 1..=MAX_NS, checked above: the casts are exact enough and fit
        let emission_ns = emission as u64;
        let rows = Rows::new(hashes, slots, seed);
        let words = (0..rows.cells()).map(|_| AtomicU64::new(0)).collect();
        Ok(RateLimiter {
            rows,
            words,
            start,
            emission_ns,
            capacity_ns: emission_ns.saturating_mul(u64::from(burst)),
            rate,
            burst,
        })
    }

    /// The rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The burst, requests.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Decides a request of `key` now, and counts it if allowed.
    #[inline]
    pub fn check<T: Hash + ?Sized>(&self, key: &T) -> Decision {
        self.check_at(key, Instant::now())
    }

    /// [`RateLimiter::check`] at the time `now` (a time before the limiter
    /// was made counts as the moment it was made).
    pub fn check_at<T: Hash + ?Sized>(&self, key: &T, now: Instant) -> Decision {
        let hash = self.rows.hash(key);
        let since = now.saturating_duration_since(self.start);
        let t = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        // SeqCst throughout: the argument in the module docs needs one
        // order of all raises and commits that every thread agrees on. On
        // x86 these read-modify-writes cost the same whatever the ordering.
        loop {
            // 1. The key's earliest word.
            let mut earliest: Option<(&AtomicU64, u64)> = None;
            for i in self.rows.indices(hash) {
                let Some(word) = self.words.get(i) else {
                    continue;
                };
                let tat = word.load(Ordering::SeqCst);
                match earliest {
                    Some((_, e)) if e <= tat => {}
                    _ => earliest = Some((word, tat)),
                }
            }
            let Some((earliest_word, tat)) = earliest else {
                // Unreachable: a sketch has at least one row. Deny nothing.
                return Decision::Allowed;
            };
            let new_tat = tat.max(t).saturating_add(self.emission_ns);
            let over = (new_tat - t).saturating_sub(self.capacity_ns);
            if over > 0 {
                return Decision::Limited {
                    retry_after: Duration::from_nanos(over),
                };
            }
            // 2. Raise the key's other words to the new TAT (only ever up).
            for i in self.rows.indices(hash) {
                let Some(word) = self.words.get(i) else {
                    continue;
                };
                if !std::ptr::eq(word, earliest_word) {
                    word.fetch_max(new_tat, Ordering::SeqCst);
                }
            }
            // 3. Commit on the earliest word, unless it moved meanwhile.
            if earliest_word
                .compare_exchange(tat, new_tat, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Decision::Allowed;
            }
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("hashes", &self.rows.hashes())
            .field("slots", &self.rows.slots())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32) -> (RateLimiter, Instant) {
        let start = Instant::now();
        let l = RateLimiter::with_start_and_seed(rate, burst, 4, 1024, start, 99).unwrap();
        (l, start)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_passes_then_one_per_emission_interval() {
        let (l, t0) = limiter(10.0, 20);
        for i in 0..20 {
            assert!(l.check_at("k", t0).is_allowed(), "request {i}");
        }
        assert_eq!(
            l.check_at("k", t0),
            Decision::Limited {
                retry_after: ms(100)
            }
        );
        assert_eq!(
            l.check_at("k", t0 + ms(40)).retry_after(),
            Some(ms(60)),
            "the wait shrinks as time passes"
        );
        assert!(l.check_at("k", t0 + ms(100)).is_allowed());
        assert!(!l.check_at("k", t0 + ms(150)).is_allowed());
        assert!(l.check_at("k", t0 + ms(200)).is_allowed());
    }

    #[test]
    fn denied_requests_do_not_push_the_wait_back() {
        let (l, t0) = limiter(1.0, 1);
        assert!(l.check_at("k", t0).is_allowed());
        for _ in 0..100 {
            assert_eq!(l.check_at("k", t0 + ms(10)).retry_after(), Some(ms(990)));
        }
        assert!(l.check_at("k", t0 + ms(1000)).is_allowed());
    }

    #[test]
    fn silence_refills_the_burst_but_no_more() {
        let (l, t0) = limiter(10.0, 5);
        for _ in 0..5 {
            assert!(l.check_at("k", t0).is_allowed());
        }
        // 10 s of silence refills 100 tokens' worth, but the bucket holds 5
        let later = t0 + Duration::from_secs(10);
        let allowed = (0..50)
            .filter(|_| l.check_at("k", later).is_allowed())
            .count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn keys_are_limited_independently() {
        let (l, t0) = limiter(1.0, 2);
        assert!(l.check_at("a", t0).is_allowed());
        assert!(l.check_at("a", t0).is_allowed());
        assert!(!l.check_at("a", t0).is_allowed());
        assert!(l.check_at("b", t0).is_allowed());
        assert!(l.check_at("b", t0).is_allowed());
        assert!(!l.check_at("b", t0).is_allowed());
    }

    #[test]
    fn a_client_at_exactly_the_rate_is_never_denied() {
        // burst 1: no slack at all; requests exactly 1/rate apart
        let (l, t0) = limiter(50.0, 1);
        for i in 0..10_000u64 {
            assert!(l.check_at("k", t0 + ms(20 * i)).is_allowed(), "request {i}");
        }
        // and one a nanosecond early is not
        assert!(!l
            .check_at("k", t0 + ms(20 * 10_000) - Duration::from_nanos(1))
            .is_allowed());
    }

    #[test]
    fn retry_after_secs_rounds_up_to_whole_seconds() {
        let limited = |d| Decision::Limited { retry_after: d };
        assert_eq!(limited(ms(100)).retry_after_secs(), Some(1));
        assert_eq!(limited(ms(1000)).retry_after_secs(), Some(1));
        assert_eq!(limited(ms(1001)).retry_after_secs(), Some(2));
        assert_eq!(limited(Duration::from_nanos(1)).retry_after_secs(), Some(1));
        assert_eq!(Decision::Allowed.retry_after_secs(), None);
    }

    #[test]
    fn fractional_rates_give_long_waits() {
        let (l, t0) = limiter(0.5, 1);
        assert!(l.check_at("k", t0).is_allowed());
        let d = l.check_at("k", t0 + ms(1));
        assert_eq!(d.retry_after(), Some(ms(1999)));
        assert_eq!(d.retry_after_secs(), Some(2));
    }

    #[test]
    fn bad_configurations_are_refused() {
        use LimiterConfigError::*;
        assert_eq!(RateLimiter::new(0.0, 1).unwrap_err(), InvalidRate(0.0));
        assert!(matches!(
            RateLimiter::new(f64::NAN, 1).unwrap_err(),
            InvalidRate(_)
        ));
        assert_eq!(RateLimiter::new(-1.0, 1).unwrap_err(), InvalidRate(-1.0));
        assert_eq!(RateLimiter::new(1.0, 0).unwrap_err(), ZeroBurst);
        assert_eq!(RateLimiter::new(3e9, 1).unwrap_err(), RateTooHigh(3e9));
        assert_eq!(
            RateLimiter::new(1e-11, 1).unwrap_err(),
            BurstTooLong {
                rate: 1e-11,
                burst: 1
            }
        );
        assert!(RateLimiter::new(1e-11, 1)
            .unwrap_err()
            .to_string()
            .contains("500 years"));
    }

    #[test]
    fn a_key_sharing_every_word_with_a_heavy_key_is_limited_with_it() {
        // One slot per row: every key shares every word. The sketch then
        // limits all keys together, never allowing more than the limit.
        let start = Instant::now();
        let l = RateLimiter::with_start_and_seed(1.0, 3, 2, 1, start, 1).unwrap();
        let allowed = ["a", "b", "c", "d"]
            .iter()
            .filter(|k| l.check_at(*k, start).is_allowed())
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn two_threads_on_one_key_get_exactly_the_burst() {
        for round in 0..20 {
            let (l, t0) = limiter(1.0, 100);
            let l = std::sync::Arc::new(l);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let l = l.clone();
                    std::thread::spawn(move || {
                        (0..1000)
                            .filter(|_| l.check_at("k", t0).is_allowed())
                            .count()
                    })
                })
                .collect();
            let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(total, 100, "round {round}");
        }
    }

    #[test]
    fn two_threads_on_colliding_keys_never_exceed_the_shared_limit() {
        // 2 rows of 2 slots: keys collide in some rows and not others, the
        // case where per-row orders could disagree.
        for round in 0..20 {
            let start = Instant::now();
            let l = RateLimiter::with_start_and_seed(1.0, 10, 2, 2, start, round).unwrap();
            let l = std::sync::Arc::new(l);
            let threads: Vec<_> = (0..2u32)
                .map(|t| {
                    let l = l.clone();
                    std::thread::spawn(move || {
                        let mut allowed = std::collections::HashMap::new();
                        for i in 0..2000u32 {
                            let key = (t + i) % 4;
                            if l.check_at(&key, start).is_allowed() {
                                *allowed.entry(key).or_insert(0u32) += 1;
                            }
                        }
                        allowed
                    })
                })
                .collect();
            let mut per_key = std::collections::HashMap::new();
            for t in threads {
                for (k, n) in t.join().unwrap() {
                    *per_key.entry(k).or_insert(0) += n;
                }
            }
            for (k, n) in per_key {
                assert!(n <= 10, "round {round}: key {k} allowed {n} times");
            }
        }
    }
}
