//! Weighted random selection.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::weighted::WeightedIndex;
use super::{usable, BackendIter, BackendSelection};
use crate::Backend;

/// Picks a backend at random, each with probability `weight / sum of
/// weights`; the key is ignored. Every candidate of an iteration is a fresh
/// independent draw. The random numbers come from a thread-local generator
/// (wyrand, via `fastrand`), so concurrent selects share nothing.
#[derive(Debug)]
pub struct Random {
    backends: Box<[Backend]>,
    index: WeightedIndex,
}

impl BackendSelection for Random {
    type Iter = RandomIter;
    type Config = ();

    fn build_with_config(backends: &BTreeSet<Backend>, _config: &()) -> Self {
        let backends = usable(backends);
        Random {
            index: WeightedIndex::new(&backends),
            backends: backends.into_boxed_slice(),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> RandomIter {
        RandomIter {
            random: self.clone(),
        }
    }

    fn first(&self, _key: &[u8]) -> Option<&Backend> {
        self.backends.get(self.index.random()?)
    }
}

/// The candidates of a [`Random`] select: independent weighted draws.
#[derive(Debug)]
pub struct RandomIter {
    random: Arc<Random>,
}

impl BackendIter for RandomIter {
    fn next(&mut self) -> Option<&Backend> {
        self.random.first(b"")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_util::{first, weighted};
    use super::*;

    #[test]
    fn draws_follow_the_weights() {
        let r = Arc::new(Random::build(&weighted(&[(1, 1), (2, 1), (3, 2)])));
        let n = 40_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[first(&r, b"").unwrap().addr.port() as usize] += 1;
        }
        // expected 10000, 10000, 20000; sd ~87 and ~100: 6 sd bounds
        for (port, want, sd) in [(1, 10_000, 87), (2, 10_000, 87), (3, 20_000, 100)] {
            let got = counts[port];
            assert!(got.abs_diff(want) < 6 * sd, "port {port}: {got} of {n}");
        }
    }

    #[test]
    fn empty_and_zero_weight_sets_select_nothing() {
        assert!(first(&Arc::new(Random::build(&BTreeSet::new())), b"").is_none());
        let r = Arc::new(Random::build(&weighted(&[(1, 0)])));
        assert!(first(&r, b"").is_none());
    }
}
