//! Least connections: send the request where the fewest are in flight.
//!
//! The counts are of requests in flight through this load balancer (one
//! process), kept in per-backend atomic counters that a selection
//! increments through an [`InFlightGuard`] and the guard's drop decrements.
//! Only selects that take a guard count: use
//! `LoadBalancer::<LeastConnections>::select_tracked` and keep the guard
//! (for instance in the request's context) until the response is done.
//!
//! Load is `in_flight / weight`. With at most `scan_up_to` backends (default
//! 8) every counter is read and the least loaded backend wins, ties drawn at
//! random in proportion to weight. With more, a full scan would cost too
//! much per request, so two backends are drawn at random (weighted) and the
//! less loaded wins: the "power of two choices" (Mitzenmacher, 2001), which
//! keeps the busiest backend's load within `O(log log n)` of the mean while
//! reading two counters.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::weighted::WeightedIndex;
use super::{usable, BackendIter, BackendSelection, CachePadded};
use crate::Backend;

type Counter = Arc<CachePadded<AtomicUsize>>;

/// The in-flight counters, by backend address. Shared by every build of the
/// selection (through its config) so counts survive rebuilds; the lock is
/// taken only while building and when reading counts for metrics.
#[derive(Debug, Clone, Default)]
struct Counters(Arc<Mutex<HashMap<SocketAddr, Counter>>>);

impl Counters {
    /// The counters of `backends`, made for newcomers; counters nobody
    /// refers to any more (no selection, no guard) are dropped.
    fn for_backends(&self, backends: &[Backend]) -> Vec<Counter> {
        let mut map = self.0.lock();
        map.retain(|_, c| Arc::strong_count(c) > 1);
        backends
            .iter()
            .map(|b| map.entry(b.addr).or_default().clone())
            .collect()
    }

    fn get(&self, addr: &SocketAddr) -> usize {
        self.0
            .lock()
            .get(addr)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Settings of [`LeastConnections`]; also where the in-flight counts live.
#[derive(Debug, Clone)]
pub struct LeastConnectionsConfig {
    /// Up to this many backends every counter is compared; above it, two
    /// random choices. Default 8.
    pub scan_up_to: usize,
    counters: Counters,
}

impl Default for LeastConnectionsConfig {
    fn default() -> Self {
        LeastConnectionsConfig {
            scan_up_to: 8,
            counters: Counters::default(),
        }
    }
}

impl LeastConnectionsConfig {
    /// Requests in flight to `addr` through selections built with this
    /// config (for metrics); 0 for an unknown address.
    pub fn in_flight(&self, addr: &SocketAddr) -> usize {
        self.counters.get(addr)
    }
}

/// Picks the backend with the fewest requests in flight per unit of weight
/// (see the module docs); the key is ignored.
#[derive(Debug)]
pub struct LeastConnections {
    backends: Box<[Backend]>,
    counters: Box<[Counter]>,
    index: WeightedIndex,
    scan_up_to: usize,
}

/// Holds one request in flight to a backend: made by a tracked select,
/// released on drop.
#[derive(Debug)]
pub struct InFlightGuard {
    counter: Counter,
}

impl InFlightGuard {
    /// Requests in flight to this guard's backend now, this one included.
    pub fn in_flight(&self) -> usize {
        self.counter.load(Ordering::Relaxed)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

impl LeastConnections {
    fn load(&self, i: usize) -> (u64, u64) {
        let count = self
            .counters
            .get(i)
            .map_or(0, |c| c.load(Ordering::Relaxed) as u64);
        let weight = self.backends.get(i).map_or(1, |b| b.weight as u64);
        (count, weight)
    }

    /// Whether backend `a` is less loaded than `b` (`count / weight`, cross-multiplied).
    fn less_loaded(&self, a: usize, b: usize) -> std::cmp::Ordering {
        let (ca, wa) = self.load(a);
        let (cb, wb) = self.load(b);
        (u128::from(ca) * u128::from(wb)).cmp(&(u128::from(cb) * u128::from(wa)))
    }

    /// The least loaded of all backends; ties drawn in proportion to weight.
    fn scan(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut tied_weight = 0u64;
        for i in 0..self.backends.len() {
            let w = self.load(i).1;
            match best.map(|b| self.less_loaded(i, b)) {
                None | Some(std::cmp::Ordering::Less) => {
                    best = Some(i);
                    tied_weight = w;
                }
                Some(std::cmp::Ordering::Equal) => {
                    // weighted reservoir sampling over the tied backends
                    tied_weight += w;
                    if fastrand::u64(0..tied_weight) < w {
                        best = Some(i);
                    }
                }
                Some(std::cmp::Ordering::Greater) => {}
            }
        }
        best
    }

    /// The less loaded of two weighted random draws.
    fn two_choices(&self) -> Option<usize> {
        let a = self.index.random()?;
        let mut b = self.index.random()?;
        if b == a {
            b = self.index.random()?;
        }
        Some(match self.less_loaded(b, a) {
            std::cmp::Ordering::Less => b,
            _ => a,
        })
    }

    fn pick(&self) -> Option<usize> {
        if self.backends.len() <= self.scan_up_to {
            self.scan()
        } else {
            self.two_choices()
        }
    }

    /// The least loaded backend, counted in flight until the guard drops.
    pub(crate) fn pick_tracked(&self) -> Option<(Backend, InFlightGuard)> {
        let i = self.pick()?;
        let backend = self.backends.get(i)?.clone();
        let counter = self.counters.get(i)?.clone();
        counter.fetch_add(1, Ordering::Relaxed);
        Some((backend, InFlightGuard { counter }))
    }
}

impl BackendSelection for LeastConnections {
    type Iter = LeastConnectionsIter;
    type Config = LeastConnectionsConfig;

    fn build_with_config(backends: &BTreeSet<Backend>, config: &LeastConnectionsConfig) -> Self {
        let backends = usable(backends);
        LeastConnections {
            counters: config.counters.for_backends(&backends).into_boxed_slice(),
            index: WeightedIndex::new(&backends),
            backends: backends.into_boxed_slice(),
            scan_up_to: config.scan_up_to,
        }
    }

    fn first(&self, _key: &[u8]) -> Option<&Backend> {
        self.backends.get(self.pick()?)
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> LeastConnectionsIter {
        LeastConnectionsIter {
            lc: self.clone(),
            first: true,
            last: None,
        }
    }
}

/// The candidates of a [`LeastConnections`] select: the least loaded
/// backend, then weighted random draws (when the first is rejected).
#[derive(Debug)]
pub struct LeastConnectionsIter {
    lc: Arc<LeastConnections>,
    first: bool,
    last: Option<usize>,
}

impl LeastConnectionsIter {
    /// Count one request in flight to the candidate `next` returned last;
    /// `None` before the first candidate.
    pub fn track_last(&self) -> Option<InFlightGuard> {
        let counter = self.lc.counters.get(self.last?)?.clone();
        counter.fetch_add(1, Ordering::Relaxed);
        Some(InFlightGuard { counter })
    }
}

impl BackendIter for LeastConnectionsIter {
    fn next(&mut self) -> Option<&Backend> {
        let i = if self.first {
            self.first = false;
            self.lc.pick()?
        } else {
            self.lc.index.random()?
        };
        self.last = Some(i);
        self.lc.backends.get(i)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_util::{backends, weighted};
    use super::*;

    fn select(lc: &Arc<LeastConnections>) -> (Backend, InFlightGuard) {
        let mut it = lc.iter(b"");
        let b = it.next().unwrap().clone();
        (b, it.track_last().unwrap())
    }

    #[test]
    fn picks_the_backend_with_fewest_in_flight() {
        let lc = Arc::new(LeastConnections::build(&weighted(&[
            (1, 1),
            (2, 1),
            (3, 1),
        ])));
        let mut held: Vec<(Backend, InFlightGuard)> = (0..3).map(|_| select(&lc)).collect();
        // three requests in flight land on three different backends
        let mut ports: Vec<u16> = held.iter().map(|(b, _)| b.addr.port()).collect();
        ports.sort();
        assert_eq!(ports, [1, 2, 3]);
        // the one on port 2 finishes: the next request goes there
        held.retain(|(b, _)| b.addr.port() != 2);
        let (b, _g) = select(&lc);
        assert_eq!(b.addr.port(), 2);
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn weights_scale_the_load() {
        // weight 3 vs 1: eight requests in flight settle as 6 : 2
        let lc = Arc::new(LeastConnections::build(&weighted(&[(1, 3), (2, 1)])));
        let guards: Vec<_> = (0..8).map(|_| select(&lc)).collect();
        let heavy = guards.iter().filter(|(b, _)| b.addr.port() == 1).count();
        assert_eq!(heavy, 6, "{heavy} of 8 on the weight-3 backend");
    }

    #[test]
    fn idle_ties_are_drawn_evenly() {
        let lc = Arc::new(LeastConnections::build(&weighted(&[
            (1, 1),
            (2, 1),
            (3, 1),
        ])));
        let mut counts = [0usize; 4];
        for _ in 0..30_000 {
            let (b, _g) = select(&lc); // released at once: always a tie
            counts[b.addr.port() as usize] += 1;
        }
        for c in &counts[1..] {
            // expected 10000, sd ~82
            assert!(c.abs_diff(10_000) < 500, "{counts:?}");
        }
    }

    #[test]
    fn counts_survive_a_rebuild_and_guards_release() {
        let config = LeastConnectionsConfig::default();
        let set = weighted(&[(1, 1), (2, 1)]);
        let lc = Arc::new(LeastConnections::build_with_config(&set, &config));
        let (b, g) = select(&lc);
        assert_eq!(config.in_flight(&b.addr), 1);
        let rebuilt = Arc::new(LeastConnections::build_with_config(&set, &config));
        drop(lc);
        // the in-flight request still counts: the next pick avoids it
        let (other, _g2) = select(&rebuilt);
        assert_ne!(other, b);
        drop(g);
        assert_eq!(config.in_flight(&b.addr), 0);
    }

    #[test]
    fn many_backends_use_two_choices_and_stay_balanced() {
        let lc = Arc::new(LeastConnections::build(&backends(100, 1)));
        let guards: Vec<_> = (0..1000).map(|_| select(&lc)).collect();
        let max = lc
            .counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .max()
            .unwrap();
        // mean 10; two choices keep the maximum close to it
        assert!(max <= 16, "max in flight {max}");
        drop(guards);
        assert!(lc.counters.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn empty_set_selects_nothing() {
        let lc = Arc::new(LeastConnections::build(&BTreeSet::new()));
        let mut it = lc.iter(b"");
        assert!(it.next().is_none());
        assert!(it.track_last().is_none());
    }
}
