//! Mapping a number onto backends in proportion to their weights: the
//! shared core of [`super::Random`], [`super::FNVHash`] and
//! [`super::LeastConnections`].

use crate::Backend;

/// Cumulative weights of a list of backends: `pick(r)` for `r` uniform in
/// `0..total()` lands on backend `i` with probability `weight_i / total`.
#[derive(Debug, Clone)]
pub(crate) struct WeightedIndex {
    /// `ends[i]` = sum of the weights of backends `0..=i`; empty when there
    /// are no backends.
    ends: Box<[u64]>,
    /// All weights are equal: `pick` divides instead of searching.
    uniform: bool,
}

impl WeightedIndex {
    /// The index of `backends` (all of weight above 0).
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let mut sum = 0u64;
        let ends: Box<[u64]> = backends
            .iter()
            .map(|b| {
                // weights beyond u32 are clamped so the sum cannot overflow
                sum += b.weight.min(u32::MAX as usize) as u64;
                sum
            })
            .collect();
        let uniform = backends.windows(2).all(|w| w[0].weight == w[1].weight);
        WeightedIndex { ends, uniform }
    }

    /// The sum of the weights (0 when there are no backends).
    pub(crate) fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The backend that owns point `r % total()`; `None` when there are no
    /// backends.
    pub(crate) fn pick(&self, r: u64) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let point = r % total;
        if self.uniform {
            // every backend owns total / len consecutive points
            let per = total / self.ends.len() as u64;
            return Some((point / per) as usize);
        }
        Some(self.ends.partition_point(|&end| end <= point))
    }

    /// A weighted random backend, from the thread-local generator.
    pub(crate) fn random(&self) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        self.pick(fastrand::u64(0..total))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn backends(weights: &[usize]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Backend::new_with_weight(&format!("127.0.0.1:{}", 1000 + i), *w).unwrap())
            .collect()
    }

    #[test]
    fn every_point_maps_in_proportion_to_weight() {
        let idx = WeightedIndex::new(&backends(&[3, 1, 2]));
        assert_eq!(idx.total(), 6);
        let picks: Vec<usize> = (0..6).map(|r| idx.pick(r).unwrap()).collect();
        assert_eq!(picks, [0, 0, 0, 1, 2, 2]);
        assert_eq!(idx.pick(6), Some(0));
    }

    #[test]
    fn uniform_weights_divide() {
        let idx = WeightedIndex::new(&backends(&[2, 2, 2]));
        let picks: Vec<usize> = (0..6).map(|r| idx.pick(r).unwrap()).collect();
        assert_eq!(picks, [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn nothing_to_pick_from() {
        let idx = WeightedIndex::new(&[]);
        assert_eq!(idx.pick(5), None);
        assert_eq!(idx.random(), None);
    }
}
