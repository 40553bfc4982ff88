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
//!   idle past it is never handed out; it is closed when `get` meets it, by
//!   the next `get`/`put` when it is among the least recently released
//!   (up to 16 per call, stopping at the first live one), or by
//!   [`ConnectionPool::prune_expired`] / [`ConnectionPool::sweep`].
//!
//! Every `get` and `put` is O(1): the connections sit in a slab, linked in
//! release order on one list of all of them and one per key.
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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The default global cap, Pingora's `upstream_keepalive_pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 128;

/// How many expired connections one `get` or `put` closes on the side, so
/// the critical section stays short however many expired at once.
const PRUNE_PER_CALL: usize = 16;

/// No slot: the end of a list.
const NIL: usize = usize::MAX;

/// A slot's neighbours in one list, in release order.
#[derive(Debug, Clone, Copy)]
struct Links {
    older: usize,
    newer: usize,
}

const UNLINKED: Links = Links {
    older: NIL,
    newer: NIL,
};

/// The two ends of a list and its length.
#[derive(Debug, Clone, Copy)]
struct Ends {
    oldest: usize,
    newest: usize,
    len: usize,
}

const EMPTY: Ends = Ends {
    oldest: NIL,
    newest: NIL,
    len: 0,
};

/// One idle connection and its places in the two lists.
struct Slot<S> {
    /// `None` while the slot is free.
    conn: Option<S>,
    key: u64,
    /// When the connection's idle timeout runs out; `None` = never.
    deadline: Option<Instant>,
    /// In the list of every idle connection (the LRU order).
    all: Links,
    /// In the list of its key's idle connections.
    group: Links,
}

/// Keys are already hashes (a peer's `reuse_hash`): used as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only `write_u64` is used (the key type is u64); fold anything else
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Which list of a slot an operation is on.
#[derive(Clone, Copy)]
enum List {
    All,
    Group,
}

/// The pool's state, behind one lock: the connections in a slab, each on
/// two doubly linked lists in release order, one of every idle connection
/// (its oldest end is the LRU victim) and one per key (its newest end is
/// handed out first, its oldest evicted past the per-key cap). Every
/// operation is O(1) but a search for expired connections, which stops at
/// the first live one from the oldest end.
struct PoolInner<S> {
    slots: Vec<Slot<S>>,
    /// Free slots, reused before the slab grows.
    free: Vec<usize>,
    all: Ends,
    /// Per key; a key whose last connection left keeps its (empty) entry
    /// until empty ones outnumber the cap, so a hot key does not re-insert.
    groups: HashMap<u64, Ends, BuildHasherDefault<KeyHasher>>,
}

impl<S> PoolInner<S> {
    fn new() -> Self {
        PoolInner {
            slots: Vec::new(),
            free: Vec::new(),
            all: EMPTY,
            groups: HashMap::default(),
        }
    }

    fn links(&mut self, idx: usize, list: List) -> Option<&mut Links> {
        let slot = self.slots.get_mut(idx)?;
        Some(match list {
            List::All => &mut slot.all,
            List::Group => &mut slot.group,
        })
    }

    /// Link slot `idx` as the newest of `ends` in `list`.
    fn push_newest(&mut self, ends: &mut Ends, idx: usize, list: List) {
        let older = ends.newest;
        if let Some(l) = self.links(idx, list) {
            *l = Links { older, newer: NIL };
        }
        match self.links(older, list) {
            Some(l) => l.newer = idx,
            None => ends.oldest = idx,
        }
        ends.newest = idx;
        ends.len += 1;
    }

    /// Unlink slot `idx` from `ends` in `list`.
    fn unlink(&mut self, ends: &mut Ends, idx: usize, list: List) {
        let Some(l) = self.links(idx, list) else {
            return;
        };
        let Links { older, newer } = std::mem::replace(l, UNLINKED);
        match self.links(older, list) {
            Some(o) => o.newer = newer,
            None => ends.oldest = newer,
        }
        match self.links(newer, list) {
            Some(n) => n.older = older,
            None => ends.newest = older,
        }
        ends.len = ends.len.saturating_sub(1);
    }

    fn insert(&mut self, key: u64, conn: S, deadline: Option<Instant>) {
        let slot = Slot {
            conn: Some(conn),
            key,
            deadline,
            all: UNLINKED,
            group: UNLINKED,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                if let Some(s) = self.slots.get_mut(idx) {
                    *s = slot;
                }
                idx
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        let mut all = self.all;
        self.push_newest(&mut all, idx, List::All);
        self.all = all;
        let mut group = self.groups.get(&key).copied().unwrap_or(EMPTY);
        self.push_newest(&mut group, idx, List::Group);
        self.groups.insert(key, group);
    }

    /// Take the connection of slot `idx` out of both lists and free the slot.
    fn take(&mut self, idx: usize) -> Option<S> {
        let key = self.slots.get(idx)?.key;
        let mut all = self.all;
        self.unlink(&mut all, idx, List::All);
        self.all = all;
        if let Some(mut group) = self.groups.get(&key).copied() {
            self.unlink(&mut group, idx, List::Group);
            self.groups.insert(key, group);
        }
        let conn = self.slots.get_mut(idx)?.conn.take();
        self.free.push(idx);
        conn
    }

    fn expired(&self, idx: usize, now: Instant) -> bool {
        self.slots
            .get(idx)
            .and_then(|s| s.deadline)
            .is_some_and(|d| d <= now)
    }

    /// Close up to `max` expired connections, from the least recently
    /// released on, stopping at the first that has not expired (the
    /// connector's sweeper, [`ConnectionPool::prune_expired`] and `get`'s
    /// own check cover those behind it).
    fn prune_oldest(&mut self, now: Instant, max: usize, out: &mut Vec<S>) {
        for _ in 0..max {
            let idx = self.all.oldest;
            if idx == NIL || !self.expired(idx, now) {
                return;
            }
            out.extend(self.take(idx));
        }
    }

    /// Close every connection for which `close` is true.
    fn close_where(&mut self, out: &mut Vec<S>, mut close: impl FnMut(&mut Slot<S>) -> bool) {
        for idx in 0..self.slots.len() {
            let doomed = self
                .slots
                .get_mut(idx)
                .is_some_and(|s| s.conn.is_some() && close(s));
            if doomed {
                out.extend(self.take(idx));
            }
        }
    }

    fn len(&self) -> usize {
        self.all.len
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
                let idx = inner.groups.get(&key).map_or(NIL, |g| g.newest);
                if idx == NIL {
                    break None;
                }
                let expired = inner.expired(idx, now);
                let conn = inner.take(idx);
                if expired {
                    closed.extend(conn);
                    continue;
                }
                break conn;
            };
            inner.prune_oldest(now, PRUNE_PER_CALL, &mut closed);
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
    /// closed. Up to 16 expired connections, the least recently released,
    /// are closed on the side.
    pub fn put(&self, key: u64, conn: S, idle_timeout: Option<Duration>, now: Instant) {
        if idle_timeout == Some(Duration::ZERO) || self.capacity == 0 || self.per_key_limit == 0 {
            drop(conn);
            return;
        }
        let deadline = idle_timeout.and_then(|t| now.checked_add(t));
        let mut closed = Vec::new();
        {
            let mut inner = self.inner.lock();
            inner.prune_oldest(now, PRUNE_PER_CALL, &mut closed);
            inner.insert(key, conn, deadline);
            let group = inner.groups.get(&key).copied().unwrap_or(EMPTY);
            if group.len > self.per_key_limit {
                closed.extend(inner.take(group.oldest));
            }
            while inner.len() > self.capacity {
                let victim = inner.all.oldest;
                if victim == NIL {
                    break;
                }
                closed.extend(inner.take(victim));
            }
            if inner.groups.len() > self.capacity.saturating_mul(2).saturating_add(16) {
                inner.groups.retain(|_, g| g.len > 0);
            }
        }
        drop(closed);
    }

    /// Close every connection whose deadline is at or before `now`; returns how many.
    pub fn prune_expired(&self, now: Instant) -> usize {
        let mut closed = Vec::new();
        self.inner
            .lock()
            .close_where(&mut closed, |s| s.deadline.is_some_and(|d| d <= now));
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
            inner.close_where(&mut closed, |s| {
                s.deadline.is_some_and(|d| d <= now)
                    || s.conn.as_mut().is_some_and(|c| !is_usable(c))
            });
            inner.groups.retain(|_, g| g.len > 0);
        }
        closed.len()
    }

    /// How many idle connections the pool holds, all keys together.
    pub fn idle_count(&self) -> usize {
        self.inner.lock().len()
    }

    /// How many idle connections the pool holds for `key`.
    pub fn idle_count_for(&self, key: u64) -> usize {
        self.inner.lock().groups.get(&key).map_or(0, |g| g.len)
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

    /// The pool against a plain list in release order, over random puts
    /// and gets on a few keys with both caps and mixed idle timeouts.
    #[test]
    fn matches_a_simple_model_under_random_use() {
        struct Model {
            // (key, conn, deadline), oldest first
            idle: Vec<(u64, u32, Option<Instant>)>,
            cap: usize,
            per_key: usize,
        }
        impl Model {
            fn prune_oldest(&mut self, now: Instant) {
                for _ in 0..PRUNE_PER_CALL {
                    match self.idle.first() {
                        Some((_, _, Some(d))) if *d <= now => {
                            self.idle.remove(0);
                        }
                        _ => return,
                    }
                }
            }
            fn get(&mut self, key: u64, now: Instant) -> Option<u32> {
                let found = loop {
                    let Some(i) = self.idle.iter().rposition(|c| c.0 == key) else {
                        break None;
                    };
                    let (_, conn, deadline) = self.idle.remove(i);
                    if deadline.is_some_and(|d| d <= now) {
                        continue;
                    }
                    break Some(conn);
                };
                self.prune_oldest(now);
                found
            }
            fn put(&mut self, key: u64, conn: u32, deadline: Option<Instant>, now: Instant) {
                self.prune_oldest(now);
                self.idle.push((key, conn, deadline));
                if self.idle.iter().filter(|c| c.0 == key).count() > self.per_key {
                    let i = self.idle.iter().position(|c| c.0 == key).unwrap();
                    self.idle.remove(i);
                }
                while self.idle.len() > self.cap {
                    self.idle.remove(0);
                }
            }
        }
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let (cap, per_key) = (8, 3);
        let pool = ConnectionPool::with_per_key_limit(cap, per_key);
        let mut model = Model {
            idle: Vec::new(),
            cap,
            per_key,
        };
        let t0 = Instant::now();
        for step in 0..20_000u32 {
            let now = t0 + secs(u64::from(step / 10));
            let key = next(5);
            if next(2) == 0 {
                let timeout = [None, Some(secs(3)), Some(secs(30))][next(3) as usize];
                let deadline = timeout.map(|t| now + t);
                pool.put(key, step, timeout, now);
                model.put(key, step, deadline, now);
            } else {
                assert_eq!(pool.get(key, now), model.get(key, now), "step {step}");
            }
            assert_eq!(pool.idle_count(), model.idle.len(), "step {step}");
            let for_key = model.idle.iter().filter(|c| c.0 == key).count();
            assert_eq!(pool.idle_count_for(key), for_key, "step {step}");
        }
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
