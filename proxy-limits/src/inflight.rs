//! [`Inflight`]: how many of something (requests, connections, bytes) are
//! in flight per key, counted up by a call and down by dropping its
//! [`Guard`].
//!
//! Counts live in one count-min sketch ([`Estimator`]): fixed memory however
//! many keys, never below the true count, above it only when a key shares
//! its slot with others in every row (see [`estimator`](crate::estimator)).

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use crate::estimator::Estimator;

/// Rows of the sketch of [`Inflight::new`].
pub const DEFAULT_HASHES: usize = 4;
/// Slots per row of the sketch of [`Inflight::new`] (with
/// [`DEFAULT_HASHES`]: 256 KiB).
pub const DEFAULT_SLOTS: usize = 8192;

/// Per-key counts of things in flight. Cloning is cheap and shares the
/// counts.
///
/// ```
/// use proxy_limits::Inflight;
///
/// let inflight = Inflight::new();
/// let (guard, count) = inflight.incr("10.0.0.1", 1);
/// assert_eq!(count, 1);
/// let (_second, count) = inflight.incr("10.0.0.1", 1);
/// assert_eq!(count, 2);
/// drop(guard);
/// assert_eq!(inflight.get("10.0.0.1"), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Inflight {
    estimator: Arc<Estimator>,
}

impl Default for Inflight {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflight {
    /// Counts in a sketch of [`DEFAULT_HASHES`] × [`DEFAULT_SLOTS`].
    pub fn new() -> Self {
        Self::with_estimator_config(DEFAULT_HASHES, DEFAULT_SLOTS)
    }

    /// Counts in a sketch of `hashes` rows of `slots` counters (clamped as
    /// in [`Estimator::new`]).
    pub fn with_estimator_config(hashes: usize, slots: usize) -> Self {
        Self::with_estimator(Estimator::new(hashes, slots))
    }

    /// Counts in `estimator` (e.g. one made with a fixed seed).
    pub fn with_estimator(estimator: Estimator) -> Self {
        Inflight {
            estimator: Arc::new(estimator),
        }
    }

    /// Adds `value` to `key` until the returned [`Guard`] is dropped;
    /// returns the guard and the key's count with `value` added.
    ///
    /// The guard holds a reference to the shared counts (an `Arc`), so it
    /// can be kept in a per-request context of any lifetime.
    #[inline]
    pub fn incr<T: Hash + ?Sized>(&self, key: &T, value: isize) -> (Guard, isize) {
        let hash = self.estimator.hash_key(key);
        let count = self.estimator.incr_hashed(hash, value);
        let guard = Guard {
            estimator: Arc::clone(&self.estimator),
            hash,
            value,
        };
        (guard, count)
    }

    /// The key's count now.
    #[inline]
    pub fn get<T: Hash + ?Sized>(&self, key: &T) -> isize {
        self.estimator.get(key)
    }
}

/// Holds some of a key's in-flight count (see [`Inflight::incr`]) and gives
/// it back when dropped.
pub struct Guard {
    estimator: Arc<Estimator>,
    hash: u64,
    value: isize,
}

impl Guard {
    /// Adds `value` more to the key, also given back on drop; returns the
    /// key's count afterwards.
    pub fn incr(&mut self, value: isize) -> isize {
        self.value = self.value.wrapping_add(value);
        self.estimator.incr_hashed(self.hash, value)
    }

    /// The key's count now (everyone's, not only this guard's).
    pub fn get(&self) -> isize {
        self.estimator.get_hashed(self.hash)
    }

    /// How much this guard holds and will give back on drop.
    pub fn value(&self) -> isize {
        self.value
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.estimator.decr_hashed(self.hash, self.value);
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inflight() -> Inflight {
        Inflight::with_estimator(Estimator::with_seed(4, 1024, 8))
    }

    #[test]
    fn dropping_guards_gives_their_counts_back() {
        let f = inflight();
        let (a, n) = f.incr("k", 1);
        assert_eq!(n, 1);
        let (b, n) = f.incr("k", 3);
        assert_eq!(n, 4);
        assert_eq!(f.get("other"), 0);
        drop(a);
        assert_eq!(f.get("k"), 3);
        drop(b);
        assert_eq!(f.get("k"), 0);
    }

    #[test]
    fn guard_incr_is_given_back_too() {
        let f = inflight();
        let (mut g, _) = f.incr("k", 1);
        assert_eq!(g.incr(2), 3);
        assert_eq!((g.get(), g.value()), (3, 3));
        drop(g);
        assert_eq!(f.get("k"), 0);
    }

    #[test]
    fn clones_share_the_counts() {
        let f = inflight();
        let g = f.clone();
        let (_guard, _) = f.incr("k", 1);
        assert_eq!(g.get("k"), 1);
    }

    #[test]
    fn guards_outlive_their_inflight() {
        let f = inflight();
        let (g, _) = f.incr("k", 1);
        drop(f);
        assert_eq!(g.get(), 1);
    }

    #[test]
    fn threads_leave_nothing_behind() {
        let f = inflight();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        let (g, n) = f.incr("k", 1);
                        // this guard's 1, and at most the other thread's
                        assert!((1..=2).contains(&n), "{n}");
                        drop(g);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(f.get("k"), 0);
    }
}
