//! Smooth weighted round robin, as nginx's default upstream balancer.
//!
//! nginx's rule (`ngx_http_upstream_get_peer`): every backend keeps a
//! `current` weight starting at 0; for each pick, every backend's `current`
//! grows by its weight, the backend with the largest `current` (the first
//! one listed on a tie) is picked, and its `current` drops by the sum of all
//! weights. Weights 5, 1, 1 give `a a b a c a a`: the heavy backend's
//! turns are spread out instead of bunched.
//!
//! The sequence repeats with a period of the sum of the weights (after
//! dividing them by their greatest common divisor), each backend appearing
//! exactly `weight` times per period. So instead of running the rule under a
//! lock for every request, [`RoundRobin`] runs it once when it is built and
//! stores one period; a select is then one atomic increment and a table
//! read, and any `k` consecutive selects split in exact proportion to the
//! weights whenever `k` is a multiple of the period.
//!
//! Two guards keep the build cheap: a period longer than 2^22 entries is
//! shortened by scaling the weights down (proportions then hold to within
//! one part in ~4 million), and when simulating the rule would take more
//! than 2^26 steps (period × backends, e.g. thousands of backends with
//! unequal weights) the period is laid out by stride scheduling instead:
//! the `k`-th turn of a backend of weight `w` sits at `(k + ½) / w`. That
//! has the same exact counts and the same even spread, but may order ties
//! differently from nginx.
//!
//! One shared turn counter is what makes the split exact across threads,
//! and it is also the one cache line every selecting core writes: with two
//! cores selecting at once a select costs about two and a half times what it
//! costs on one (see `docs/benchmarks.md`). [`RoundRobinConfig::per_thread_turns`]
//! gives each thread its own counter instead (each starting at a different
//! point of the period): selects then share nothing and cost the same on any
//! number of cores, and each thread's picks keep the exact proportions, but
//! the total over threads is exact only to within a period per thread.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{usable, BackendIter, BackendSelection, CachePadded};
use crate::Backend;

/// Turn counters when each thread has its own (threads beyond this share).
const TURN_SHARDS: usize = 16;

/// The turn-counter shard of the calling thread: threads are numbered in the
/// order they first select, so the first 16 get distinct shards.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % TURN_SHARDS;
    }
    SHARD.with(|s| *s)
}

/// Settings of [`RoundRobin`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundRobinConfig {
    /// Give each thread its own turn counter (see the module docs): selects
    /// scale with cores, proportions are exact per thread rather than
    /// overall. Default `false`: one shared counter, exact overall.
    pub per_thread_turns: bool,
}

/// The longest period stored, entries.
const MAX_PERIOD: u64 = 1 << 22;
/// The most steps (period × backends) spent simulating nginx's rule.
const SIMULATION_BUDGET: u64 = 1 << 26;

/// Smooth weighted round robin (nginx's default); the key is ignored.
///
/// ```
/// use std::collections::BTreeSet;
/// use std::sync::Arc;
/// use proxy_lb::selection::{BackendIter, BackendSelection, RoundRobin};
/// use proxy_lb::Backend;
///
/// let set: BTreeSet<Backend> = [
///     Backend::new_with_weight("10.0.0.1:80", 5).unwrap(),
///     Backend::new("10.0.0.2:80").unwrap(),
///     Backend::new("10.0.0.3:80").unwrap(),
/// ]
/// .into_iter()
/// .collect();
/// let rr = Arc::new(RoundRobin::build(&set));
/// let picks: Vec<u8> = (0..7)
///     .map(|_| rr.iter(b"").next().unwrap().addr.ip().to_string().as_bytes()[7])
///     .collect();
/// assert_eq!(picks, b"1121311");
/// ```
#[derive(Debug)]
pub struct RoundRobin {
    backends: Box<[Backend]>,
    /// One period of the sequence: indices into `backends`.
    period: Box<[u32]>,
    /// Picks so far, one counter or one per thread shard; shard `s` takes
    /// `period[(turns[s] + s * len / shards) % len]`.
    turns: Box<[CachePadded<AtomicUsize>]>,
}

impl BackendSelection for RoundRobin {
    type Iter = RoundRobinIter;
    type Config = RoundRobinConfig;

    fn build_with_config(backends: &BTreeSet<Backend>, config: &RoundRobinConfig) -> Self {
        let backends = usable(backends);
        let weights: Vec<u64> = backends
            .iter()
            .map(|b| b.weight.min(u32::MAX as usize) as u64)
            .collect();
        RoundRobin {
            period: build_period(&weights).into_boxed_slice(),
            backends: backends.into_boxed_slice(),
            turns: (0..if config.per_thread_turns {
                TURN_SHARDS
            } else {
                1
            })
                .map(|_| CachePadded(AtomicUsize::new(0)))
                .collect(),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> RoundRobinIter {
        RoundRobinIter { rr: self.clone() }
    }

    fn first(&self, _key: &[u8]) -> Option<&Backend> {
        self.next_turn()
    }
}

impl RoundRobin {
    /// Take the next turn of the sequence.
    fn next_turn(&self) -> Option<&Backend> {
        if self.period.is_empty() {
            return None;
        }
        let len = self.period.len();
        let (shard, offset) = match self.turns.len() {
            1 => (0, 0),
            shards => {
                let s = thread_shard() % shards;
                (s, s * len / shards)
            }
        };
        let turn = self.turns.get(shard)?.fetch_add(1, Ordering::Relaxed);
        let index = *self.period.get((turn % len + offset) % len)?;
        self.backends.get(index as usize)
    }
}

/// The candidates of a [`RoundRobin`] select: each `next` takes the next
/// turn of the shared sequence.
#[derive(Debug)]
pub struct RoundRobinIter {
    rr: Arc<RoundRobin>,
}

impl BackendIter for RoundRobinIter {
    fn next(&mut self) -> Option<&Backend> {
        self.rr.next_turn()
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One period of the smooth weighted round-robin sequence of `weights`
/// (all above 0), as indices.
fn build_period(weights: &[u64]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut weights: Vec<u64> = weights.iter().map(|w| w / g).collect();
    if weights.iter().all(|&w| w == 1) {
        // equal weights: the rule visits the backends in order
        return (0..weights.len() as u32).collect();
    }
    let mut total: u64 = weights.iter().sum();
    if total > MAX_PERIOD {
        log::warn!(
            "round robin: weights sum to {total} after reduction; scaling them down to a period of at most {MAX_PERIOD}"
        );
        for w in &mut weights {
            *w = ((u128::from(*w) * u128::from(MAX_PERIOD) / u128::from(total)) as u64).max(1);
        }
        total = weights.iter().sum();
    }
    if total.saturating_mul(weights.len() as u64) <= SIMULATION_BUDGET {
        nginx_sequence(&weights, total)
    } else {
        stride_sequence(&weights, total)
    }
}

/// Run nginx's rule for `total` picks.
fn nginx_sequence(weights: &[u64], total: u64) -> Vec<u32> {
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0usize;
        let mut best_value = i64::MIN;
        for (i, (c, &w)) in current.iter_mut().zip(weights).enumerate() {
            *c += w as i64;
            // strictly greater: the first backend listed wins a tie
            if *c > best_value {
                best_value = *c;
                best = i;
            }
        }
        if let Some(c) = current.get_mut(best) {
            *c -= total as i64;
        }
        out.push(best as u32);
    }
    out
}

/// Lay out `total` turns by stride scheduling: the `k`-th turn (from 0) of
/// backend `i` sits at `(2k + 1) / (2 w_i)`; ties go to the backend listed
/// first.
fn stride_sequence(weights: &[u64], total: u64) -> Vec<u32> {
    let mut turns: Vec<(u64, u32)> = Vec::with_capacity(total as usize);
    for (i, &w) in weights.iter().enumerate() {
        for k in 0..w {
            turns.push((k, i as u32));
        }
    }
    turns.sort_by(|&(k1, i1), &(k2, i2)| {
        let (w1, w2) = (weights[i1 as usize], weights[i2 as usize]);
        // (2k1+1)/(2w1) vs (2k2+1)/(2w2), cross-multiplied
        let a = u128::from(2 * k1 + 1) * u128::from(w2);
        let b = u128::from(2 * k2 + 1) * u128::from(w1);
        a.cmp(&b).then(i1.cmp(&i2))
    });
    turns.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_util::{backends, first, weighted};
    use super::*;
    use std::collections::HashMap;

    fn ports(rr: &Arc<RoundRobin>, n: usize) -> Vec<u16> {
        (0..n)
            .map(|_| first(rr, b"").unwrap().addr.port())
            .collect()
    }

    #[test]
    fn equal_weights_take_turns_in_order() {
        let rr = Arc::new(RoundRobin::build(&weighted(&[(1, 1), (2, 1), (3, 1)])));
        assert_eq!(ports(&rr, 7), [1, 2, 3, 1, 2, 3, 1]);
    }

    #[test]
    fn weights_are_spread_like_nginx() {
        // nginx's documented example (ngx_http_upstream_round_robin.c):
        // weights 5, 1, 1 give a a b a c a a
        let rr = Arc::new(RoundRobin::build(&weighted(&[(1, 5), (2, 1), (3, 1)])));
        assert_eq!(ports(&rr, 14), [1, 1, 2, 1, 3, 1, 1, 1, 1, 2, 1, 3, 1, 1]);
        // 4:2:1 worked by hand from the rule
        let rr = Arc::new(RoundRobin::build(&weighted(&[(1, 4), (2, 2), (3, 1)])));
        assert_eq!(ports(&rr, 7), [1, 2, 1, 3, 1, 2, 1]);
    }

    #[test]
    fn common_factors_do_not_change_the_sequence() {
        let a = build_period(&[5, 1, 1]);
        let b = build_period(&[50, 10, 10]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 7);
    }

    #[test]
    fn every_period_splits_in_exact_proportion() {
        for weights in [
            vec![5u64, 3, 2],
            vec![7, 1],
            vec![1, 2, 3, 4, 5, 6],
            vec![100, 1],
        ] {
            let period = build_period(&weights);
            let total: u64 = weights.iter().sum();
            assert_eq!(period.len() as u64, total);
            let mut counts = HashMap::new();
            for i in &period {
                *counts.entry(*i).or_insert(0u64) += 1;
            }
            for (i, w) in weights.iter().enumerate() {
                assert_eq!(counts[&(i as u32)], *w, "{weights:?}");
            }
        }
    }

    #[test]
    fn stride_layout_has_exact_counts_and_spreads_turns() {
        let weights = [3u64, 1, 2];
        let seq = stride_sequence(&weights, 6);
        // turn times: a 1/6 1/2 5/6, b 1/2, c 1/4 3/4
        assert_eq!(seq, [0, 2, 0, 1, 2, 0]);
        // large sets take the stride path and keep exact counts
        let weights: Vec<u64> = (0..6000).map(|i| 1 + (i % 7)).collect();
        let seq = build_period(&weights);
        let total: u64 = weights.iter().sum();
        assert_eq!(seq.len() as u64, total);
        let mut counts = vec![0u64; weights.len()];
        for i in seq {
            counts[i as usize] += 1;
        }
        assert_eq!(counts, weights);
    }

    #[test]
    fn huge_weights_are_scaled_to_a_bounded_period() {
        let period = build_period(&[u32::MAX as u64, (u32::MAX - 1) as u64]);
        assert!(period.len() as u64 <= MAX_PERIOD + 2, "{}", period.len());
        let zeros = period.iter().filter(|&&i| i == 0).count();
        let ones = period.len() - zeros;
        assert!(zeros.abs_diff(ones) <= 1, "{zeros} {ones}");
    }

    #[test]
    fn zero_weight_backends_are_never_picked() {
        let rr = Arc::new(RoundRobin::build(&weighted(&[(1, 0), (2, 1)])));
        assert_eq!(ports(&rr, 3), [2, 2, 2]);
        let rr = Arc::new(RoundRobin::build(&weighted(&[(1, 0)])));
        assert!(first(&rr, b"").is_none());
    }

    #[test]
    fn per_thread_turns_keep_each_threads_proportions_exact() {
        let config = RoundRobinConfig {
            per_thread_turns: true,
        };
        let rr = Arc::new(RoundRobin::build_with_config(
            &weighted(&[(1, 5), (2, 3), (3, 2)]),
            &config,
        ));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let rr = rr.clone();
                std::thread::spawn(move || {
                    let mut counts = [0usize; 4];
                    for _ in 0..1000 {
                        counts[rr.first(b"").unwrap().addr.port() as usize] += 1;
                    }
                    counts
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), [0, 500, 300, 200]);
        }
    }

    #[test]
    fn empty_set_selects_nothing() {
        let rr = Arc::new(RoundRobin::build(&BTreeSet::new()));
        assert!(first(&rr, b"").is_none());
    }

    #[test]
    fn ten_thousand_equal_backends_build_fast_and_cycle() {
        let rr = Arc::new(RoundRobin::build(&backends(10_000, 1)));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            seen.insert(first(&rr, b"").unwrap().addr);
        }
        assert_eq!(seen.len(), 10_000);
    }
}
