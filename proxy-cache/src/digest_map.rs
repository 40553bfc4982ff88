//! Maps keyed by 128-bit BLAKE2b digests ([`HashBinary`]), shared by the
//! memory storage, the eviction managers, the cache lock and the predictor.
//!
//! A digest is already uniformly distributed, so hashing it again (SipHash)
//! only costs time: [`DigestHasher`] takes the first 8 bytes as the hash, and
//! [`shard_index`] takes the last 8 to pick a shard, so the shard choice and
//! the bucket choice inside a shard use independent bits.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::key::HashBinary;

/// A `HashMap` keyed by digests, without rehashing them.
pub(crate) type DigestMap<V> = HashMap<HashBinary, V, BuildHasherDefault<DigestHasher>>;

/// A new, empty [`DigestMap`] with room for `capacity` entries.
pub(crate) fn digest_map<V>(capacity: usize) -> DigestMap<V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// The hasher of [`DigestMap`]: the first 8 bytes of the digest, as is.
///
/// `[u8; 16]` hashes as a length prefix (`write_usize`) followed by its
/// bytes (`write`); the prefix is ignored.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // a digest is written in one call; fold anything else in so the
        // hasher stays correct (if slower) for other inputs
        if bytes.len() >= 8 {
            let mut first = [0u8; 8];
            first.copy_from_slice(&bytes[..8]);
            self.0 ^= u64::from_le_bytes(first);
        } else {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*b);
            }
        }
    }

    fn write_usize(&mut self, _len: usize) {}
}

/// Which of `shards` shards holds `digest` (from its last 8 bytes).
pub(crate) fn shard_index(digest: &HashBinary, shards: usize) -> usize {
    let mut last = [0u8; 8];
    last.copy_from_slice(&digest[8..]);
    (u64::from_le_bytes(last) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_map_finds_what_it_stores() {
        let mut m = digest_map(4);
        for i in 0..100u8 {
            m.insert([i; 16], i);
        }
        for i in 0..100u8 {
            assert_eq!(m.get(&[i; 16]), Some(&i));
        }
        assert_eq!(m.len(), 100);
    }

    #[test]
    fn shard_index_stays_in_range_and_spreads() {
        let mut seen = [0usize; 16];
        for i in 0..=255u8 {
            let mut d = [0u8; 16];
            d[15] = i;
            d[8] = i.wrapping_mul(37);
            seen[shard_index(&d, 16)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }
}
