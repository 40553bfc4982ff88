//! [`Rate`]: events per second per key, over fixed windows of time.
//!
//! Time since the `Rate` was made is cut into windows of `interval`.
//! [`Rate::observe`] adds events to the key's count in the current window;
//! [`Rate::rate`] reports the previous, complete window's count divided by
//! the interval in seconds. Counts live in two count-min sketches (one for
//! even windows, one for odd), so memory is fixed whatever the number of
//! keys, and estimates are never below the true count (see
//! [`estimator`](crate::estimator) for how far above they can be).
//!
//! Windows rotate without a lock and without clearing anything: each counter
//! carries the number of the window it counts, and a counter from an older
//! window reads as zero and is replaced by the first addition of the new one.
//!
//! Every method has an `_at` twin that takes the current time as an
//! argument, so a caller that already read the clock does not read it twice,
//! and tests can drive time without sleeping.

use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::hash::{random_seed, Rows};
use crate::window::WindowedSketch;

/// Rows of the sketches of [`Rate::new`].
pub const DEFAULT_HASHES: usize = 4;
/// Slots per row of the sketches of [`Rate::new`] (with
/// [`DEFAULT_HASHES`]: 2 × 32 KiB).
pub const DEFAULT_SLOTS: usize = 1024;

/// The shortest interval a [`Rate`] accepts; shorter ones are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// What [`Rate::rate_with`] hands its function: the raw counts of the two
/// windows and where in the current window "now" is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateComponents {
    /// The key's count in the previous, complete window.
    pub prev_samples: isize,
    /// The key's count so far in the current window.
    pub curr_samples: isize,
    /// The length of a window.
    pub interval: Duration,
    /// How much of the current window has passed, in `0.0..1.0`.
    pub current_interval_fraction: f64,
}

/// A sliding-window estimate of events per second for
/// [`Rate::rate_with`]: the events of the last `interval` of time, taken as
/// all of the current window so far plus the part of the previous window
/// still inside that span (its count scaled by the fraction of it that is),
/// divided by the interval in seconds.
///
/// Unlike [`Rate::rate`] it follows a burst as it happens, at the cost of
/// assuming the previous window's events were spread evenly over it.
pub const PROPORTIONAL_RATE_ESTIMATE_CALC_FN: fn(RateComponents) -> f64 = proportional_rate;

fn proportional_rate(c: RateComponents) -> f64 {
    let prev_part = c.prev_samples as f64 * (1.0 - c.current_interval_fraction);
    (prev_part + c.curr_samples as f64) / c.interval.as_secs_f64()
}

/// Division of `u64`s by one fixed divisor with multiplications instead of
/// a `div` instruction (tens of cycles for 64-bit operands on many CPUs):
/// with `m = ⌊(2^64 − 1) / d⌋`, `⌊n · m / 2^64⌋` is `⌊n / d⌋` or at most two
/// less (Granlund and Montgomery, "Division by invariant integers using
/// multiplication", PLDI 1994, the round-down method), and the remainder
/// corrects it.
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: u64,
    m: u64,
}

impl Divisor {
    /// `d` must be at least 1 (a zero is taken as 1).
    fn new(d: u64) -> Self {
        let d = d.max(1);
        Divisor { d, m: u64::MAX / d }
    }

    /// `(n / d, n % d)`.
    #[inline]
    fn div_rem(self, n: u64) -> (u64, u64) {
        // the high half of a 64 x 64-bit product fits in 64 bits
        let mut q = ((u128::from(n) * u128::from(self.m)) >> 64) as u64;
        // q <= n / d, so q * d <= n: neither overflows
        let mut r = n - q * self.d;
        while r >= self.d {
            q += 1;
            r -= self.d;
        }
        (q, r)
    }
}

/// Events per second per key over fixed windows of time, in fixed memory,
/// without locks. See the [module docs](self).
///
/// ```
/// use std::time::{Duration, Instant};
/// use proxy_limits::Rate;
///
/// let rate = Rate::new(Duration::from_secs(1));
/// let start = Instant::now();
/// // 3 events for a key in the first window...
/// rate.observe_at("10.0.0.1", 1, start);
/// assert_eq!(rate.observe_at("10.0.0.1", 2, start), 3);
/// // ...are its rate during the second one (3 per 1 s window)
/// assert_eq!(rate.rate_at("10.0.0.1", start + Duration::from_millis(1500)), 3.0);
/// ```
#[derive(Debug)]
pub struct Rate {
    sketch: WindowedSketch,
    start: Instant,
    interval: Duration,
    interval_ns: u64,
    /// Divides by `interval_ns`.
    divisor: Divisor,
}

impl Rate {
    /// A rate over windows of `interval` (at least [`MIN_INTERVAL`]), with
    /// sketches of [`DEFAULT_HASHES`] × [`DEFAULT_SLOTS`]. The first window
    /// starts now.
    pub fn new(interval: Duration) -> Self {
        Self::new_with_estimator_config(interval, DEFAULT_HASHES, DEFAULT_SLOTS)
    }

    /// As [`Rate::new`] with sketches of `hashes` rows of `slots` counters
    /// (clamped as in [`Estimator::new`](crate::Estimator::new)); memory is
    /// `2 × hashes × slots × 8` bytes.
    pub fn new_with_estimator_config(interval: Duration, hashes: usize, slots: usize) -> Self {
        Self::with_start_and_seed(interval, hashes, slots, Instant::now(), random_seed())
    }

    /// The general constructor: the first window starts at `start`; keys are
    /// placed by `seed`.
    pub(crate) fn with_start_and_seed(
        interval: Duration,
        hashes: usize,
        slots: usize,
        start: Instant,
        seed: u64,
    ) -> Self {
        let interval = interval.max(MIN_INTERVAL);
        // Saturates past 584 years, which no window needs.
        let interval_ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        Rate {
            sketch: WindowedSketch::new(Rows::new(hashes, slots, seed)),
            start,
            interval,
            interval_ns,
            divisor: Divisor::new(interval_ns),
        }
    }

    /// The length of a window.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The window `now` falls in, and how far into it `now` is, in ns. A
    /// `now` before the start counts as the start.
    #[inline]
    fn window_at(&self, now: Instant) -> (u64, u64) {
        let since = now.saturating_duration_since(self.start);
        let ns = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        self.divisor.div_rem(ns)
    }

    /// Adds `events` to `key` in the current window and returns the key's
    /// count so far in this window (an estimate, never below the truth).
    ///
    /// A negative `events` takes events back (a request that turned out not
    /// to count); a window's count never goes below zero.
    #[inline]
    pub fn observe<T: Hash + ?Sized>(&self, key: &T, events: isize) -> isize {
        self.observe_at(key, events, Instant::now())
    }

    /// [`Rate::observe`] at the time `now`.
    #[inline]
    pub fn observe_at<T: Hash + ?Sized>(&self, key: &T, events: isize, now: Instant) -> isize {
        let (window, _) = self.window_at(now);
        let count = self
            .sketch
            .add(self.sketch.rows().hash(key), window, events);
        // at most 2^40 - 1: fits
        count as isize
    }

    /// The key's events per second in the previous, complete window: its
    /// count there divided by the interval in seconds. 0 in the first
    /// window, and when the key saw no events in the previous window (so
    /// also after being idle for two windows or more).
    #[inline]
    pub fn rate<T: Hash + ?Sized>(&self, key: &T) -> f64 {
        self.rate_at(key, Instant::now())
    }

    /// [`Rate::rate`] at the time `now`.
    #[inline]
    pub fn rate_at<T: Hash + ?Sized>(&self, key: &T, now: Instant) -> f64 {
        let (window, _) = self.window_at(now);
        let Some(prev) = window.checked_sub(1) else {
            return 0.0;
        };
        let count = self.sketch.get(self.sketch.rows().hash(key), prev);
        count as f64 / self.interval.as_secs_f64()
    }

    /// Hands the key's counts in the previous and the current window to
    /// `f` and returns what it computes from them, e.g.
    /// [`PROPORTIONAL_RATE_ESTIMATE_CALC_FN`].
    pub fn rate_with<T, F>(&self, key: &T, f: F) -> f64
    where
        T: Hash + ?Sized,
        F: FnOnce(RateComponents) -> f64,
    {
        self.rate_with_at(key, f, Instant::now())
    }

    /// [`Rate::rate_with`] at the time `now`.
    pub fn rate_with_at<T, F>(&self, key: &T, f: F, now: Instant) -> f64
    where
        T: Hash + ?Sized,
        F: FnOnce(RateComponents) -> f64,
    {
        let (window, offset_ns) = self.window_at(now);
        let hash = self.sketch.rows().hash(key);
        let prev = window
            .checked_sub(1)
            .map_or(0, |prev| self.sketch.get(hash, prev));
        let curr = self.sketch.get(hash, window);
        f(RateComponents {
            // both at most 2^40 - 1: they fit
            prev_samples: prev as isize,
            curr_samples: curr as isize,
            interval: self.interval,
            current_interval_fraction: offset_ns as f64 / self.interval_ns as f64,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn rate(interval: Duration) -> (Rate, Instant) {
        let start = Instant::now();
        (
            Rate::with_start_and_seed(interval, 4, 1024, start, 42),
            start,
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn divisor_divides_exactly() {
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let divisors = [
            1,
            2,
            3,
            7,
            1_000_000,
            999_999_937,
            1_000_000_000,
            u64::MAX / 3,
            u64::MAX,
        ];
        for d in divisors {
            let div = Divisor::new(d);
            let edges = [0, 1, d - 1, d, d.wrapping_add(1), u64::MAX - 1, u64::MAX];
            for n in edges.into_iter().chain((0..10_000).map(|_| next())) {
                assert_eq!(div.div_rem(n), (n / d, n % d), "{n} / {d}");
            }
            for k in [1u64, 2, 1000, 123_456_789] {
                let n = d.saturating_mul(k);
                assert_eq!(div.div_rem(n), (n / d, n % d), "{n} / {d}");
            }
        }
    }

    #[test]
    fn observe_counts_the_current_window_only() {
        let (r, t0) = rate(SEC);
        assert_eq!(r.observe_at("a", 1, t0), 1);
        assert_eq!(r.observe_at("a", 1, t0 + ms(999)), 2);
        assert_eq!(r.observe_at("a", 1, t0 + ms(1000)), 1, "a new window");
        assert_eq!(r.observe_at("b", 5, t0 + ms(1500)), 5);
    }

    #[test]
    fn rate_is_the_previous_window_per_second() {
        let (r, t0) = rate(ms(500));
        for _ in 0..10 {
            r.observe_at("a", 1, t0 + ms(100));
        }
        assert_eq!(r.rate_at("a", t0 + ms(200)), 0.0, "no previous window yet");
        // 10 events in a 0.5 s window: 20 per second, for all of window 1
        assert_eq!(r.rate_at("a", t0 + ms(500)), 20.0);
        assert_eq!(r.rate_at("a", t0 + ms(999)), 20.0);
        assert_eq!(r.rate_at("b", t0 + ms(700)), 0.0);
        // window 2: the previous window (1) saw nothing
        assert_eq!(r.rate_at("a", t0 + ms(1000)), 0.0);
    }

    #[test]
    fn an_idle_key_rates_zero_two_windows_later_though_its_sketch_is_reused() {
        let (r, t0) = rate(SEC);
        r.observe_at("a", 7, t0);
        assert_eq!(r.rate_at("a", t0 + ms(1100)), 7.0);
        // window 2 uses window 0's sketch; window 0's counts must not show
        assert_eq!(r.rate_at("a", t0 + ms(3100)), 0.0);
        assert_eq!(r.observe_at("a", 1, t0 + ms(2100)), 1);
        assert_eq!(r.rate_at("a", t0 + ms(3100)), 1.0);
    }

    #[test]
    fn long_gaps_read_as_idle() {
        let (r, t0) = rate(SEC);
        r.observe_at("a", 3, t0);
        let later = t0 + Duration::from_secs(86_400);
        assert_eq!(r.rate_at("a", later), 0.0);
        assert_eq!(r.observe_at("a", 1, later), 1);
    }

    #[test]
    fn time_before_the_start_counts_as_the_first_window() {
        let start = Instant::now() + SEC;
        let r = Rate::with_start_and_seed(SEC, 4, 64, start, 1);
        assert_eq!(r.observe_at("a", 1, Instant::now()), 1);
        assert_eq!(r.observe_at("a", 1, start + ms(10)), 2);
    }

    #[test]
    fn rate_with_gets_both_windows_and_the_fraction() {
        let (r, t0) = rate(SEC);
        r.observe_at("a", 10, t0 + ms(300));
        r.observe_at("a", 4, t0 + ms(1100));
        let seen = r.rate_with_at(
            "a",
            |c| {
                assert_eq!((c.prev_samples, c.curr_samples), (10, 4));
                assert_eq!(c.interval, SEC);
                assert!((c.current_interval_fraction - 0.25).abs() < 1e-9);
                1.5
            },
            t0 + ms(1250),
        );
        assert_eq!(seen, 1.5);
    }

    #[test]
    fn proportional_estimate_slides_between_the_windows() {
        let (r, t0) = rate(SEC);
        r.observe_at("a", 10, t0);
        r.observe_at("a", 4, t0 + ms(1000));
        // a quarter into window 1: 3/4 of the previous 10 + the current 4
        let est = r.rate_with_at("a", PROPORTIONAL_RATE_ESTIMATE_CALC_FN, t0 + ms(1250));
        assert!((est - 11.5).abs() < 1e-9, "{est}");
    }

    #[test]
    fn negative_events_take_back_but_not_below_zero() {
        let (r, t0) = rate(SEC);
        r.observe_at("a", 2, t0);
        assert_eq!(r.observe_at("a", -1, t0), 1);
        assert_eq!(r.observe_at("a", -5, t0), 0);
    }

    #[test]
    fn tiny_intervals_are_raised_to_the_minimum() {
        let r = Rate::new(Duration::ZERO);
        assert_eq!(r.interval(), MIN_INTERVAL);
    }

    #[test]
    fn concurrent_observers_lose_nothing_across_window_changes() {
        // Two threads add 1 per call for windows 0..100 in turn, each
        // sweeping through the windows at its own pace, so one thread's
        // first addition to a window (which replaces the counter of the
        // window two before) races the other's additions, and a thread two
        // windows behind the other has its (stale) additions dropped.
        let (r, t0) = rate(ms(10));
        let r = std::sync::Arc::new(r);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for w in 0..100u64 {
                        for _ in 0..500 {
                            r.observe_at("k", 1, t0 + ms(10 * w + 5));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Whatever the interleaving, the last window holds both threads'
        // 500 events and the one before it too.
        assert_eq!(r.observe_at("k", 0, t0 + ms(995)), 1000);
        assert_eq!(r.rate_at("k", t0 + ms(1000)), 1000.0 / 0.01);
    }
}
