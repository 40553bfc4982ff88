//! Hashing of keys into a sketch's rows: one seeded 64-bit hash per key,
//! then one slot index per row derived from it.
//!
//! The key hash is a multiply-fold hash (each 8-byte word is xored into the
//! state and the state multiplied by a 64-bit constant, the 128-bit product
//! folded back to 64 bits). It is fast (one multiply per word, so an IP
//! address costs two or three) and, because its initial state and
//! multiplier come from a random seed, which keys collide changes from one
//! sketch to the next: a client cannot pick keys that collide with a
//! victim's without knowing the seed. It is not a cryptographic hash.
//!
//! A row's slot is `fold_mul(key_hash ^ row_seed, M) * slots >> 64` (the
//! multiply-shift range reduction, no division). Each row has its own seed,
//! so two keys that share a slot in one row are unlikely to share one in
//! another; they share all of them only when their 64-bit key hashes are
//! equal (probability about 2^-64 per pair).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

/// 2^64 divided by the golden ratio: an odd constant with well-spread bits.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// A second odd constant (from the splitmix64 finaliser).
const MIX: u64 = 0xBF58_476D_1CE4_E5B9;

/// The 128-bit product of `a` and `b`, folded to 64 bits (low xor high).
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    // the casts take the low and the high 64 bits of the product
    (p as u64) ^ ((p >> 64) as u64)
}

/// One step of splitmix64: advances `state` and returns a well-mixed value.
/// Used to expand one seed into the hasher's and each row's seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(MIX);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fresh random seed, from the standard library's per-process random
/// keys (the ones `HashMap` uses against hash flooding).
pub(crate) fn random_seed() -> u64 {
    RandomState::new().hash_one(0x5EED_u64)
}

/// The [`Hasher`] behind [`Rows::hash`]: a multiply-fold hash with a seeded
/// initial state and multiplier.
struct FoldHasher {
    state: u64,
    multiplier: u64,
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = fold_mul(self.state ^ word, self.multiplier);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The tail's length goes in the top byte (which `rest` never
            // reaches: it is at most 7 bytes), so "ab" and "ab\0" differ.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        // the casts take the low and the high 64 bits
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // One more round so the last word's bits reach every output bit.
        fold_mul(self.state ^ GOLDEN, MIX)
    }
}

/// The shape of a sketch (`hashes` rows of `slots` cells, stored row after
/// row in one flat array) and the seeds that place keys in it.
#[derive(Debug)]
pub(crate) struct Rows {
    slots: usize,
    hasher_state: u64,
    hasher_multiplier: u64,
    row_seeds: Box<[u64]>,
}

/// Most rows a sketch may have; more is clamped to this. Each row costs one
/// atomic operation per call, so even 16 is far past useful.
pub(crate) const MAX_HASHES: usize = 64;
/// Most slots per row; more is clamped to this (2^28 slots is 2 GiB of
/// 8-byte counters per row).
pub(crate) const MAX_SLOTS: usize = 1 << 28;

impl Rows {
    /// `hashes` rows of `slots` slots, placed by hashes derived from `seed`.
    /// Both sizes are clamped to `1..=MAX_HASHES` and `1..=MAX_SLOTS`.
    pub(crate) fn new(hashes: usize, slots: usize, seed: u64) -> Rows {
        let hashes = hashes.clamp(1, MAX_HASHES);
        let slots = slots.clamp(1, MAX_SLOTS);
        let mut state = seed;
        let hasher_state = splitmix64(&mut state);
        // odd, so multiplying by it loses no bits
        let hasher_multiplier = splitmix64(&mut state) | 1;
        let row_seeds = (0..hashes).map(|_| splitmix64(&mut state)).collect();
        Rows {
            slots,
            hasher_state,
            hasher_multiplier,
            row_seeds,
        }
    }

    /// Number of rows (hash functions).
    pub(crate) fn hashes(&self) -> usize {
        self.row_seeds.len()
    }

    /// Number of slots in each row.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// Number of cells of the whole sketch: `hashes * slots`.
    pub(crate) fn cells(&self) -> usize {
        self.hashes() * self.slots
    }

    /// The key's 64-bit hash under this sketch's seed.
    #[inline]
    pub(crate) fn hash<T: Hash + ?Sized>(&self, key: &T) -> u64 {
        let mut h = FoldHasher {
            state: self.hasher_state,
            multiplier: self.hasher_multiplier,
        };
        key.hash(&mut h);
        h.finish()
    }

    /// The flat index (into an array of [`Rows::cells`] cells) of the key
    /// hashed to `hash`, in each row in turn.
    #[inline]
    pub(crate) fn indices(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let slots = self.slots;
        self.row_seeds.iter().enumerate().map(move |(row, seed)| {
            let x = fold_mul(hash ^ seed, GOLDEN);
            // multiply-shift range reduction: x / 2^64 * slots, in 0..slots
            let slot = ((u128::from(x) * slots as u128) >> 64) as usize;
            row * slots + slot
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_places_keys_the_same_way() {
        let a = Rows::new(4, 1024, 7);
        let b = Rows::new(4, 1024, 7);
        for key in ["10.0.0.1", "client-42", ""] {
            let (ha, hb) = (a.hash(key), b.hash(key));
            assert_eq!(ha, hb);
            assert!(a.indices(ha).eq(b.indices(hb)));
        }
    }

    #[test]
    fn different_seeds_place_keys_differently() {
        let a = Rows::new(4, 1024, 1);
        let b = Rows::new(4, 1024, 2);
        let same = (0..1000u32)
            .filter(|k| a.indices(a.hash(k)).eq(b.indices(b.hash(k))))
            .count();
        assert_eq!(same, 0);
    }

    #[test]
    fn every_index_falls_in_its_own_row() {
        let rows = Rows::new(5, 37, 3);
        for key in 0..10_000u64 {
            for (row, i) in rows.indices(rows.hash(&key)).enumerate() {
                assert!(
                    (row * 37..(row + 1) * 37).contains(&i),
                    "row {row} index {i}"
                );
            }
        }
    }

    #[test]
    fn sizes_are_clamped_to_at_least_one() {
        let rows = Rows::new(0, 0, 1);
        assert_eq!((rows.hashes(), rows.slots(), rows.cells()), (1, 1, 1));
        assert_eq!(rows.indices(rows.hash("x")).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn tails_of_different_lengths_hash_differently() {
        let rows = Rows::new(1, 1, 9);
        let h = |b: &[u8]| {
            let mut hasher = FoldHasher {
                state: rows.hasher_state,
                multiplier: rows.hasher_multiplier,
            };
            hasher.write(b);
            hasher.finish()
        };
        assert_ne!(h(b"ab"), h(b"ab\0"));
        assert_ne!(h(b""), h(b"\0"));
        assert_ne!(h(b"12345678"), h(b"12345678\0"));
    }

    /// Slots are used evenly: 64k sequential integer keys over 256 slots put
    /// 256 keys in each on average; no slot of any row is off by more than
    /// 40 % (a binomial standard deviation is about 16, so 40 % is 6 sigma).
    #[test]
    fn sequential_keys_spread_evenly_over_the_slots() {
        let rows = Rows::new(4, 256, random_seed());
        let mut counts = vec![0u32; rows.cells()];
        for key in 0..65_536u32 {
            for i in rows.indices(rows.hash(&key)) {
                counts[i] += 1;
            }
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 154 && *max < 358, "min {min} max {max}");
    }
}
