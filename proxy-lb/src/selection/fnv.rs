//! Weighted hashing of the key with FNV-1a.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::weighted::WeightedIndex;
use super::{mix64, usable, BackendIter, BackendSelection};
use crate::Backend;

/// FNV-1a 64-bit offset basis (Fowler–Noll–Vo, IETF draft-eastlake-fnv).
const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// The 64-bit FNV-1a hash of `key`.
pub(crate) fn fnv1a(key: &[u8]) -> u64 {
    key.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Maps a key to a backend by its FNV-1a hash, in proportion to the
/// weights: the same key goes to the same backend as long as the set does
/// not change. Unlike [`super::Consistent`], adding or removing a backend
/// moves most keys; in exchange the pick is cheaper and the split follows
/// the weights exactly. Further candidates (when the first is rejected)
/// come from rehashing the hash, so they are the same for the same key.
#[derive(Debug)]
pub struct FNVHash {
    backends: Box<[Backend]>,
    index: WeightedIndex,
}

/// Pingora's misspelt name of [`FNVHash`], kept so code written against it compiles.
pub type FVNHash = FNVHash;

impl BackendSelection for FNVHash {
    type Iter = FNVHashIter;
    type Config = ();

    fn build_with_config(backends: &BTreeSet<Backend>, _config: &()) -> Self {
        let backends = usable(backends);
        FNVHash {
            index: WeightedIndex::new(&backends),
            backends: backends.into_boxed_slice(),
        }
    }

    fn first(&self, key: &[u8]) -> Option<&Backend> {
        self.backends.get(self.index.pick(fnv1a(key))?)
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> FNVHashIter {
        FNVHashIter {
            fnv: self.clone(),
            hash: fnv1a(key),
            first: true,
        }
    }
}

/// The candidates of an [`FNVHash`] select: the key's backend, then a
/// deterministic walk by rehashing.
#[derive(Debug)]
pub struct FNVHashIter {
    fnv: Arc<FNVHash>,
    hash: u64,
    first: bool,
}

impl BackendIter for FNVHashIter {
    fn next(&mut self) -> Option<&Backend> {
        if !self.first {
            self.hash = mix64(self.hash);
        }
        self.first = false;
        let i = self.fnv.index.pick(self.hash)?;
        self.fnv.backends.get(i)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_util::{backends, first, weighted};
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // test vectors of the FNV reference code (64-bit FNV-1a)
        assert_eq!(fnv1a(b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_F739_67E8);
    }

    #[test]
    fn same_key_same_backend() {
        let h = Arc::new(FNVHash::build(&backends(10, 1)));
        for key in [&b"alice"[..], b"bob", b"", b"/images/cat.png"] {
            let a = first(&h, key).unwrap();
            for _ in 0..5 {
                assert_eq!(first(&h, key).unwrap(), a);
            }
        }
    }

    #[test]
    fn keys_split_by_weight() {
        let h = Arc::new(FNVHash::build(&weighted(&[(1, 1), (2, 3)])));
        let n = 20_000;
        let heavy = (0..n)
            .filter(|i| {
                first(&h, format!("key-{i}").as_bytes())
                    .unwrap()
                    .addr
                    .port()
                    == 2
            })
            .count();
        // expected 15000, sd ~61
        assert!(heavy.abs_diff(15_000) < 400, "{heavy}");
    }

    #[test]
    fn later_candidates_are_deterministic() {
        let h = Arc::new(FNVHash::build(&backends(5, 1)));
        let walk = |key: &[u8]| -> Vec<Backend> {
            let mut it = h.iter(key);
            (0..6).map(|_| it.next().unwrap().clone()).collect()
        };
        assert_eq!(walk(b"k"), walk(b"k"));
        let distinct: std::collections::HashSet<_> = walk(b"k").into_iter().collect();
        assert!(distinct.len() > 1);
    }
}
