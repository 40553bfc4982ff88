//! Selection algorithms: which backend gets the next request.
//!
//! Each algorithm is a [`BackendSelection`]: an immutable structure built
//! from a set of backends, which the load balancer rebuilds and swaps in
//! atomically whenever the set or the health of its members changes. A
//! select never takes a lock; the only shared writes are atomic counters
//! (the round-robin turn, least-connections' in-flight counts).
//!
//! | algorithm | file | key | weights | cost per select |
//! |---|---|---|---|---|
//! | [`RoundRobin`] | `round_robin.rs` | ignored | nginx's smooth weighted round robin | one atomic add, one table read |
//! | [`Random`] | `random.rs` | ignored | weighted | one thread-local random number, a binary search over cumulative weights |
//! | [`FNVHash`] | `fnv.rs` | FNV-1a of the key | weighted | the hash, a binary search |
//! | [`Consistent`] (Ketama) | `ketama.rs` | CRC-32 of the key | 160 points per unit of weight, nginx's `hash ... consistent` layout | the CRC, a binary search over the points |
//! | [`LeastConnections`] | `least_conn.rs` | ignored | in-flight ÷ weight | a scan of ≤ 8 counters, else two random choices |

mod crc32;
mod fnv;
mod ketama;
mod least_conn;
mod random;
mod round_robin;
mod weighted;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::Backend;

pub use fnv::{FNVHash, FVNHash};
pub use ketama::{Consistent, KetamaConfig, KetamaHashing};
pub use least_conn::{InFlightGuard, LeastConnections, LeastConnectionsConfig};
pub use random::Random;
pub use round_robin::{RoundRobin, RoundRobinConfig};

/// An algorithm that picks backends out of a set.
///
/// Implementations are built once per change of the set
/// ([`BackendSelection::build_with_config`], off the request path) and then
/// shared read-only by every thread through an `Arc`.
pub trait BackendSelection: Sized + Send + Sync + 'static {
    /// The iterator [`BackendSelection::iter`] returns.
    type Iter: BackendIter;
    /// Settings of the algorithm, kept by the load balancer and passed to
    /// every rebuild (so state such as in-flight counts survives rebuilds).
    type Config: Clone + Default + Send + Sync + 'static;

    /// Build from `backends` with the default config.
    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::build_with_config(backends, &Self::Config::default())
    }

    /// Build from `backends` with `config`.
    fn build_with_config(backends: &BTreeSet<Backend>, config: &Self::Config) -> Self;

    /// The candidates for `key`, best first. Algorithms that ignore the key
    /// accept any (the tutorial passes `b""`). The iterator may repeat a
    /// backend; callers bound how many candidates they look at.
    fn iter(self: &Arc<Self>, key: &[u8]) -> Self::Iter;

    /// The best candidate for `key`: what `iter(key).next()` gives, without
    /// making an iterator. This is `LoadBalancer::select`'s path: it touches
    /// no reference count, so threads selecting at once share no cache line
    /// beyond what the algorithm itself shares.
    fn first(&self, key: &[u8]) -> Option<&Backend>;
}

/// The candidates of one selection, best first.
pub trait BackendIter {
    /// The next candidate, or `None` when there are no more (an empty set,
    /// or a hash walk that went all the way round).
    fn next(&mut self) -> Option<&Backend>;
}

/// The backends of `set` that can receive traffic (weight above 0), in
/// set order.
pub(crate) fn usable(set: &BTreeSet<Backend>) -> Vec<Backend> {
    set.iter().filter(|b| b.weight > 0).cloned().collect()
}

/// Mixes `x` into a well-spread 64-bit value (SplitMix64's finaliser): the
/// deterministic rehash used to walk on from a hashed pick.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A value aligned to its own cache lines, so an atomic inside it does not
/// share a line with its neighbours (128 bytes: two lines, as adjacent-line
/// prefetchers pull pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_util {
    use super::*;

    /// `n` backends `10.0.x.y:80`, all of weight `weight`.
    pub(crate) fn backends(n: usize, weight: usize) -> BTreeSet<Backend> {
        (0..n)
            .map(|i| {
                let addr = format!("10.0.{}.{}:80", i / 250, i % 250 + 1);
                Backend::new_with_weight(&addr, weight).unwrap()
            })
            .collect()
    }

    /// Backends `127.0.0.1:<port>` with the given weights.
    pub(crate) fn weighted(spec: &[(u16, usize)]) -> BTreeSet<Backend> {
        spec.iter()
            .map(|(port, w)| Backend::new_with_weight(&format!("127.0.0.1:{port}"), *w).unwrap())
            .collect()
    }

    #[test]
    fn first_is_the_iterators_first_for_hashing_algorithms() {
        let set = weighted(&[(1, 1), (2, 2), (3, 3), (4, 1)]);
        let fnv = Arc::new(FNVHash::build(&set));
        let ketama = Arc::new(KetamaHashing::build(&set));
        for i in 0..500 {
            let key = format!("k{i}");
            let key = key.as_bytes();
            assert_eq!(fnv.first(key), fnv.iter(key).next());
            assert_eq!(ketama.first(key), ketama.iter(key).next());
        }
        let empty = Arc::new(KetamaHashing::build(&BTreeSet::new()));
        assert_eq!(empty.first(b"k"), None);
    }

    /// The first candidate for `key`.
    pub(crate) fn first<S: BackendSelection>(sel: &Arc<S>, key: &[u8]) -> Option<Backend> {
        sel.iter(key).next().cloned()
    }
}
