//! A pool of idle connections keyed by peer, shared by every thread of a service.
//!
//! [`ConnectionPool<S>`] holds idle connections (`S` is the connection type,
//! a [`crate::protocols::Stream`] in the transport connector) grouped by a
//! `u64` key, the peer's [`reuse_hash`](crate::upstreams::peer::Peer::reuse_hash).
//! It is the deterministic core of pooling: it never does I/O and never reads
//! the clock. Every call that can expire a connection takes `now` as an
//! argument, so expiry, caps and eviction are unit-tested without sockets or
//! sleeps. Checking that a pooled socket is still usable is the connector's
//! job (see [`ConnectionPool::sweep`] and the connector's liveness check).
//!
//! Limits:
//! - a global cap (`upstream_keepalive_pool_size`, default 128): past it the
//!   least recently released connection is closed;
//! - a per-key cap: past it the key's oldest idle connection is closed;
//! - a per-connection idle deadline (the peer's `idle_timeout`): a connection
//!   idle past it is never handed out and is closed by the next `get`/`put`
//!   (a bounded number per call) or [`ConnectionPool::prune_expired`] /
//!   [`ConnectionPool::sweep`].
//!
//! `get` hands out the most recently released connection of a key (LIFO): it
//! is the one least likely to have been closed by the upstream's own idle
//! timeout. Closed connections are dropped after the lock is released.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use proxy_core::pools::ConnectionPool;
//!
//! let pool: ConnectionPool<&str> = ConnectionPool::new(128);
//! let t0 = Instant::now();
//! pool.put(7, "conn-a", Some(Duration::from_secs(60)), t0);
//! assert_eq!(pool.get(7, t0 + Duration::from_secs(1)), Some("conn-a"));
//! pool.put(7, "conn-b", Some(Duration::from_secs(60)), t0);
//! assert_eq!(pool.get(7, t0 + Duration::from_secs(61)), None); // expired
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The default global cap, Pingora's `upstream_keepalive_pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 128;

/// How many expired connections one `get` or `put` closes on the side, so
/// the critical section stays short however many expired at once.
const PRUNE_PER_CALL: usize = 16;

/// One idle connection and its bookkeeping.
struct IdleConn<S> {
    /// Release order, unique and increasing: the LRU clock.
    id: u64,
    conn: S,
    /// When the connection's idle timeout runs out; `None` = never.
    deadline: Option<Instant>,
}

/// The pool's state, behind one lock.
///
/// Invariants: every entry of `groups` has its `id` in `lru` (mapped to its
/// key) and, when it has a deadline, `(deadline, id, key)` in `deadlines`;
/// each group's deque is sorted by `id` (pushes are at the back with a fresh,
/// larger id), so the globally least recently released connection is at the
/// front of its group.
struct PoolInner<S> {
    next_id: u64,
    groups: HashMap<u64, VecDeque<IdleConn<S>>>,
    /// id → key, in release order: the first entry is the LRU victim.
    lru: BTreeMap<u64, u64>,
    /// Expiry index: the first entry is the next connection to expire.
    deadlines: BTreeSet<(Instant, u64, u64)>,
}

impl<S> PoolInner<S> {
    fn new() -> Self {
        PoolInner {
            next_id: 0,
            groups: HashMap::new(),
            lru: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// Drop `entry`'s index records (it has already left its group).
    fn unindex(&mut self, key: u64, entry: &IdleConn<S>) {
        self.lru.remove(&entry.id);
        if let Some(d) = entry.deadline {
            self.deadlines.remove(&(d, entry.id, key));
        }
    }

    /// Remove the entry `id` of group `key`, wherever it sits.
    fn remove(&mut self, key: u64, id: u64) -> Option<S> {
        let group = self.groups.get_mut(&key)?;
        let idx = group.binary_search_by_key(&id, |c| c.id).ok()?;
        let entry = group.remove(idx)?;
        self.unindex(key, &entry);
        Some(entry.conn)
    }

    /// Move up to `max` connections whose deadline is at or before `now` into `out`.
    fn prune_expired(&mut self, now: Instant, max: usize, out: &mut Vec<S>) {
        for _ in 0..max {
            let Some(&(deadline, id, key)) = self.deadlines.first() else {
                return;
            };
            if deadline > now {
                return;
            }
            match self.remove(key, id) {
                Some(conn) => out.push(conn),
                // a stale index record would loop forever; drop it
                None => {
                    self.deadlines.pop_first();
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.lru.len()
    }
}

/// Idle connections grouped by a `u64` key, with a global cap (LRU
/// eviction), a per-key cap and per-connection idle deadlines.
///
/// `Send + Sync` when `S: Send`; share it behind an `Arc`. Every method takes
/// one short `parking_lot` lock and never awaits; closed connections are
/// dropped after the lock is released.
pub struct ConnectionPool<S> {
    inner: Mutex<PoolInner<S>>,
    capacity: usize,
    per_key_limit: usize,
}

impl<S> ConnectionPool<S> {
    /// A pool holding at most `size` idle connections in all (0 = pool
    /// nothing), with no per-key cap beyond that.
    pub fn new(size: usize) -> Self {
        Self::with_per_key_limit(size, size)
    }

    /// A pool holding at most `size` idle connections in all and at most
    /// `per_key_limit` for any one key.
    pub fn with_per_key_limit(size: usize, per_key_limit: usize) -> Self {
        ConnectionPool {
            inner: Mutex::new(PoolInner::new()),
            capacity: size,
            per_key_limit,
        }
    }

    /// The global cap, in connections.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The per-key cap, in connections.
    pub fn per_key_limit(&self) -> usize {
        self.per_key_limit
    }

    /// Take the most recently released connection of `key` that has not
    /// expired at `now`. Expired connections met on the way are closed, and
    /// so are up to 16 expired connections of other keys.
    pub fn get(&self, key: u64, now: Instant) -> Option<S> {
        let mut closed = Vec::new();
        let found = {
            let mut inner = self.inner.lock();
            let found = loop {
                let Some(entry) = inner.groups.get_mut(&key).and_then(|g| g.pop_back()) else {
                    break None;
                };
                inner.unindex(key, &entry);
                if entry.deadline.is_some_and(|d| d <= now) {
                    closed.push(entry.conn);
                    continue;
                }
                break Some(entry.conn);
            };
            inner.prune_expired(now, PRUNE_PER_CALL, &mut closed);
            found
        };
        drop(closed);
        found
    }

    /// Put an idle connection back under `key`, to expire `idle_timeout`
    /// after `now` (`None` = no deadline; `Some(Duration::ZERO)` = close it
    /// now instead of pooling).
    ///
    /// Past the per-key cap the key's oldest connection is closed; past the
    /// global cap the least recently released connection of any key is
    /// closed. Up to 16 expired connections are closed on the side.
    pub fn put(&self, key: u64, conn: S, idle_timeout: Option<Duration>, now: Instant) {
        if idle_timeout == Some(Duration::ZERO) || self.capacity == 0 || self.per_key_limit == 0 {
            drop(conn);
            return;
        }
        let deadline = idle_timeout.and_then(|t| now.checked_add(t));
        let mut closed = Vec::new();
        {
            let mut inner = self.inner.lock();
            inner.prune_expired(now, PRUNE_PER_CALL, &mut closed);

            let id = inner.next_id;
            inner.next_id += 1;
            inner.lru.insert(id, key);
            if let Some(d) = deadline {
                inner.deadlines.insert((d, id, key));
            }
            let group = inner.groups.entry(key).or_default();
            group.push_back(IdleConn { id, conn, deadline });

            if group.len() > self.per_key_limit {
                if let Some(oldest) = group.pop_front() {
                    inner.unindex(key, &oldest);
                    closed.push(oldest.conn);
                }
            }
            while inner.len() > self.capacity {
                let Some((&victim_id, &victim_key)) = inner.lru.first_key_value() else {
                    break;
                };
                match inner.remove(victim_key, victim_id) {
                    Some(conn) => closed.push(conn),
                    // a stale index record would loop forever; drop it
                    None => {
                        inner.lru.pop_first();
                    }
                }
            }
            // Emptied groups stay (a hot key does not reallocate its deque on
            // every get/put cycle) until they outnumber the cap.
            if inner.groups.len() > self.capacity.saturating_mul(2).saturating_add(16) {
                inner.groups.retain(|_, g| !g.is_empty());
            }
        }
        drop(closed);
    }

    /// Close every connection whose deadline is at or before `now`; returns how many.
    pub fn prune_expired(&self, now: Instant) -> usize {
        let mut closed = Vec::new();
        self.inner
            .lock()
            .prune_expired(now, usize::MAX, &mut closed);
        closed.len()
    }

    /// Close every connection that expired at `now` or for which `is_usable`
    /// returns false (the connector passes a non-blocking liveness check);
    /// returns how many were closed. `is_usable` runs under the lock: it must
    /// not block.
    pub fn sweep(&self, now: Instant, mut is_usable: impl FnMut(&mut S) -> bool) -> usize {
        let mut closed = Vec::new();
        {
            let mut inner = self.inner.lock();
            inner.prune_expired(now, usize::MAX, &mut closed);
            let mut dead = Vec::new();
            for (&key, group) in inner.groups.iter_mut() {
                for entry in group.iter_mut() {
                    if !is_usable(&mut entry.conn) {
                        dead.push((key, entry.id));
                    }
                }
            }
            for (key, id) in dead {
                if let Some(conn) = inner.remove(key, id) {
                    closed.push(conn);
                }
            }
            inner.groups.retain(|_, g| !g.is_empty());
        }
        closed.len()
    }

    /// How many idle connections the pool holds, all keys together.
    pub fn idle_count(&self) -> usize {
        self.inner.lock().len()
    }

    /// How many idle connections the pool holds for `key`.
    pub fn idle_count_for(&self, key: u64) -> usize {
        self.inner.lock().groups.get(&key).map_or(0, |g| g.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const MIN: Duration = Duration::from_secs(60);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A connection that counts how many of its kind were dropped (closed).
    struct Conn {
        name: &'static str,
        dropped: Arc<AtomicUsize>,
    }

    impl Drop for Conn {
        fn drop(&mut self) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn get_returns_what_put_stored_under_the_same_key_only() {
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(1, "a", None, t0);
        assert_eq!(pool.get(2, t0), None);
        assert_eq!(pool.get(1, t0), Some("a"));
        assert_eq!(pool.get(1, t0), None);
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn get_hands_out_the_most_recently_released_first() {
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(1, "old", None, t0);
        pool.put(1, "new", None, t0);
        assert_eq!(pool.get(1, t0), Some("new"));
        assert_eq!(pool.get(1, t0), Some("old"));
    }

    #[test]
    fn expired_connection_is_not_handed_out_and_is_closed() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(
            1,
            Conn {
                name: "a",
                dropped: dropped.clone(),
            },
            Some(secs(10)),
            t0,
        );
        assert!(pool.get(1, t0 + secs(10)).is_none());
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn connection_within_idle_timeout_is_handed_out() {
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(1, "a", Some(secs(10)), t0);
        assert_eq!(pool.get(1, t0 + secs(9)), Some("a"));
    }

    #[test]
    fn get_skips_an_expired_newer_connection_for_a_valid_older_one() {
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(1, "long", Some(secs(100)), t0);
        pool.put(1, "short", Some(secs(1)), t0);
        assert_eq!(pool.get(1, t0 + secs(5)), Some("long"));
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn zero_idle_timeout_is_not_pooled() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let pool = ConnectionPool::new(10);
        pool.put(
            1,
            Conn {
                name: "a",
                dropped: dropped.clone(),
            },
            Some(Duration::ZERO),
            Instant::now(),
        );
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn zero_sized_pool_keeps_nothing() {
        let pool = ConnectionPool::new(0);
        pool.put(1, "a", None, Instant::now());
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn global_cap_evicts_the_least_recently_released_of_any_key() {
        let pool = ConnectionPool::new(3);
        let t0 = Instant::now();
        pool.put(1, "k1-first", None, t0);
        pool.put(2, "k2", None, t0);
        pool.put(1, "k1-second", None, t0);
        pool.put(3, "k3", None, t0);
        assert_eq!(pool.idle_count(), 3);
        assert_eq!(pool.idle_count_for(1), 1);
        assert_eq!(pool.get(1, t0), Some("k1-second"));
        assert_eq!(pool.get(1, t0), None);
        assert_eq!(pool.get(2, t0), Some("k2"));
        assert_eq!(pool.get(3, t0), Some("k3"));
    }

    #[test]
    fn reuse_refreshes_lru_position() {
        let pool = ConnectionPool::new(2);
        let t0 = Instant::now();
        pool.put(1, "a", None, t0);
        pool.put(2, "b", None, t0);
        // "a" is used and released again: now "b" is the least recent
        let a = pool.get(1, t0).unwrap();
        pool.put(1, a, None, t0);
        pool.put(3, "c", None, t0);
        assert_eq!(pool.get(2, t0), None);
        assert_eq!(pool.get(1, t0), Some("a"));
        assert_eq!(pool.get(3, t0), Some("c"));
    }

    #[test]
    fn per_key_cap_evicts_that_keys_oldest() {
        let pool = ConnectionPool::with_per_key_limit(10, 2);
        let t0 = Instant::now();
        pool.put(1, "a", None, t0);
        pool.put(2, "other", None, t0);
        pool.put(1, "b", None, t0);
        pool.put(1, "c", None, t0);
        assert_eq!(pool.idle_count_for(1), 2);
        assert_eq!(pool.idle_count_for(2), 1);
        assert_eq!(pool.get(1, t0), Some("c"));
        assert_eq!(pool.get(1, t0), Some("b"));
        assert_eq!(pool.get(1, t0), None);
    }

    #[test]
    fn put_closes_expired_connections_of_other_keys() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(
            1,
            Conn {
                name: "stale",
                dropped: dropped.clone(),
            },
            Some(secs(1)),
            t0,
        );
        pool.put(
            2,
            Conn {
                name: "fresh",
                dropped: dropped.clone(),
            },
            Some(secs(100)),
            t0 + secs(2),
        );
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count_for(1), 0);
        assert_eq!(pool.get(2, t0 + secs(3)).unwrap().name, "fresh");
    }

    #[test]
    fn prune_expired_closes_only_expired() {
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(1, "a", Some(secs(1)), t0);
        pool.put(2, "b", Some(secs(5)), t0);
        pool.put(3, "c", None, t0);
        assert_eq!(pool.prune_expired(t0 + secs(1)), 1);
        assert_eq!(pool.prune_expired(t0 + secs(1)), 0);
        assert_eq!(pool.prune_expired(t0 + secs(3600)), 1);
        assert_eq!(pool.idle_count(), 1);
        assert_eq!(pool.get(3, t0 + secs(3600)), Some("c"));
    }

    #[test]
    fn sweep_closes_unusable_and_expired() {
        let pool = ConnectionPool::new(10);
        let t0 = Instant::now();
        pool.put(1, "dead", None, t0);
        pool.put(1, "alive", Some(MIN), t0);
        pool.put(2, "expired", Some(secs(1)), t0);
        let closed = pool.sweep(t0 + secs(2), |c| *c != "dead");
        assert_eq!(closed, 2);
        assert_eq!(pool.idle_count(), 1);
        assert_eq!(pool.get(1, t0 + secs(2)), Some("alive"));
    }

    #[test]
    fn dropping_the_pool_closes_everything() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let pool = ConnectionPool::new(10);
        for key in 0..3 {
            pool.put(
                key,
                Conn {
                    name: "x",
                    dropped: dropped.clone(),
                },
                None,
                Instant::now(),
            );
        }
        drop(pool);
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn many_keys_do_not_grow_the_group_table_without_bound() {
        let pool = ConnectionPool::new(4);
        let t0 = Instant::now();
        for key in 0..1000 {
            pool.put(key, key, None, t0);
            assert_eq!(pool.get(key, t0), Some(key));
        }
        assert!(pool.inner.lock().groups.len() <= 4 * 2 + 17);
    }

    #[test]
    fn pool_is_shared_across_threads() {
        let pool = Arc::new(ConnectionPool::new(DEFAULT_POOL_SIZE));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for i in 0..100u64 {
                        pool.put(t, i, None, t0);
                        assert!(pool.get(t, t0).is_some());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(pool.idle_count(), 0);
    }
}
