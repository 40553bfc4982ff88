//! A scan-resistant [`EvictionManager`]: TinyLFU admission in front of the
//! sharded LRU ([`super::lru::Manager`]).
//!
//! # How it works
//! Every admit and every hit counts the key in a *frequency sketch*: a
//! count-min sketch of 4-bit counters (four counters per key, the estimate
//! is their minimum, all four in one 64-byte block of the table), packed 16
//! to an `AtomicU64` and updated with compare-and-swap, so counting never
//! takes a lock. After `10 ×` the
//! expected number of entries counts, every counter is halved (aging), so
//! the sketch follows a popularity that changes over time.
//!
//! While the budget has room, every new entry is admitted. Once admitting
//! one would evict, the candidate's estimated frequency is compared with
//! those of the entries the LRU would evict for it (the next victim, and
//! for a candidate larger than that victim the next ones, up to one per
//! shard, until their sizes cover it): the candidate is admitted only if
//! it is more frequent than each, and otherwise rejected — [`admit`] then
//! returns the candidate itself, for the storage to purge. A one-pass scan
//! of cold keys (each seen once) therefore cannot flush the popular
//! entries, which plain LRU lets it do. Candidates seen at least
//! [`WARM_FREQUENCY`] times are also let in one time in 128 when they lose,
//! so an attacker who keeps a victim's counters high cannot lock a popular
//! new key out for ever (Caffeine's defence).
//!
//! Memory: the sketch takes 8 bytes per expected entry (rounded up to a
//! power of two), on top of the LRU's per-entry cost.
//!
//! Hits take no lock: [`EvictionManager::access`] counts in the sketch and
//! tries the LRU shard's lock (skipping the promotion if it is busy).
//!
//! Not done here (W-TinyLFU's other parts): the small admission window and
//! the segmented main LRU; `benches/hit_ratio.rs` measures what this
//! simpler design gets.
//!
//! [`admit`]: EvictionManager::admit

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::eviction::{lru, EvictionManager};
use crate::key::{CompactCacheKey, HashBinary};

/// A losing candidate seen at least this many times is let in one time in
/// 128 (see the module docs).
pub const WARM_FREQUENCY: u8 = 6;

/// TinyLFU admission over a sharded LRU with a byte budget.
pub struct Manager {
    lru: lru::Manager,
    sketch: FrequencySketch,
    rejected: AtomicUsize,
    /// Drives the one-in-128 admission of warm losers.
    ticket: AtomicUsize,
}

impl Manager {
    /// A manager that keeps at most `limit_bytes`, sized for about
    /// `items_hint` entries (the sketch's width and aging period follow it;
    /// at least 1,024).
    pub fn new(limit_bytes: usize, items_hint: usize) -> Self {
        Self::from_lru(
            lru::Manager::with_capacity(limit_bytes, items_hint),
            items_hint,
        )
    }

    /// Like [`Manager::new`], evicting down to `watermark_bytes` once the
    /// limit is crossed (see [`lru::Manager::new_with_watermark`]).
    pub fn new_with_watermark(
        limit_bytes: usize,
        watermark_bytes: usize,
        items_hint: usize,
    ) -> Self {
        Self::from_lru(
            lru::Manager::new_with_watermark(limit_bytes, watermark_bytes),
            items_hint,
        )
    }

    fn from_lru(lru: lru::Manager, items_hint: usize) -> Self {
        Manager {
            lru,
            sketch: FrequencySketch::new(items_hint),
            rejected: AtomicUsize::new(0),
            ticket: AtomicUsize::new(0),
        }
    }

    /// Candidates rejected so far.
    pub fn rejected_items(&self) -> usize {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The estimated frequency of `item` (0 to 15).
    pub fn frequency(&self, item: &CompactCacheKey) -> u8 {
        self.sketch.estimate(&item.combined_bin())
    }

    /// Counts one access of `item` and says whether [`admit`] would keep
    /// it now at `size` bytes: the budget has room, `item` is already
    /// tracked, or it is more frequent than the entries the LRU would
    /// evict for it. A `false` counts as a rejection. For a caller that
    /// stores only what will be kept (a tiered cache deciding whether to
    /// copy a disk hit into memory): on `true` it stores the entry, then
    /// tracks it with [`Manager::admit_checked`], so the access is counted
    /// once.
    ///
    /// [`admit`]: EvictionManager::admit
    pub fn count_and_check(&self, item: &CompactCacheKey, size: usize) -> bool {
        let digest = item.combined_bin();
        self.sketch.increment(&digest);
        if self.lru.would_evict(size) && !self.lru.peek(item) && !self.should_admit(&digest, size) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Tracks `item` (`size` bytes) after [`Manager::count_and_check`]
    /// said yes, without counting or comparing again; returns what the LRU
    /// evicts to stay within the budget, as [`EvictionManager::admit`] does.
    pub fn admit_checked(
        &self,
        item: CompactCacheKey,
        size: usize,
        fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey> {
        self.lru.admit(item, size, fresh_until)
    }

    /// Whether `candidate` (`size` bytes) beats what it would displace: it
    /// must be more frequent than every victim the LRU would evict for it
    /// (as Caffeine compares a weighted candidate with each victim in
    /// turn), or warm and lucky (see the module docs).
    fn should_admit(&self, candidate: &HashBinary, size: usize) -> bool {
        let mut victims = None;
        self.lru.victims_for(size, |d| {
            let f = self.sketch.estimate(d);
            victims = Some(victims.map_or(f, |v: u8| v.max(f)));
        });
        let Some(vict) = victims else {
            return true;
        };
        let cand = self.sketch.estimate(candidate);
        if cand > vict {
            return true;
        }
        cand >= WARM_FREQUENCY
            && self
                .ticket
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(128)
    }
}

impl EvictionManager for Manager {
    fn total_size(&self) -> usize {
        self.lru.total_size()
    }

    fn total_items(&self) -> usize {
        self.lru.total_items()
    }

    fn evicted_size(&self) -> usize {
        self.lru.evicted_size()
    }

    fn evicted_items(&self) -> usize {
        self.lru.evicted_items()
    }

    /// Counts `item`, then admits it if the budget has room, if it is
    /// already tracked (a size update), or if it is more frequent than the
    /// entries it would displace. A rejected `item` is returned alone (not
    /// counted as evicted).
    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey> {
        if !self.count_and_check(&item, size) {
            return vec![item];
        }
        self.admit_checked(item, size, fresh_until)
    }

    fn remove(&self, item: &CompactCacheKey) {
        self.lru.remove(item);
    }

    fn access(&self, item: &CompactCacheKey, size: usize, fresh_until: SystemTime) -> bool {
        self.sketch.increment(&item.combined_bin());
        self.lru.access(item, size, fresh_until)
    }

    fn peek(&self, item: &CompactCacheKey) -> bool {
        self.lru.peek(item)
    }
}

/// A count-min sketch of 4-bit saturating counters with periodic halving,
/// laid out in blocks of one cache line: a key's four counters all lie in
/// one 64-byte block (Caffeine's layout), so counting a hit touches one
/// line of the table instead of four lines anywhere in it (for a table of
/// megabytes, four cache misses per hit).
struct FrequencySketch {
    blocks: Box<[Block]>,
    /// `blocks.len() - 1` (a power of two).
    mask: usize,
    /// Counts since the last halving.
    additions: AtomicUsize,
    /// Halve every counter after this many counts.
    sample_size: usize,
}

/// Eight words of sixteen counters, aligned to a cache line.
#[repr(align(64))]
struct Block([AtomicU64; 8]);

const RESET_MASK: u64 = 0x7777_7777_7777_7777;

impl FrequencySketch {
    fn new(items: usize) -> Self {
        let words = items.max(1024).next_power_of_two();
        let blocks = words / 8;
        FrequencySketch {
            blocks: (0..blocks)
                .map(|_| Block(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            mask: blocks - 1,
            additions: AtomicUsize::new(0),
            sample_size: words.saturating_mul(10),
        }
    }

    /// The four counters of `digest`, as (word, shift): one block, picked
    /// by the digest's first eight bytes; in it, row `r` has the two words
    /// `2r` and `2r + 1`, and digest byte `8 + r` picks one of them (its
    /// low bit) and one of its sixteen counters (the next four bits). The
    /// digest is uniform, so its parts serve as independent hashes.
    fn slots(&self, digest: &HashBinary) -> [(&AtomicU64, u32); 4] {
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        let block = &self.blocks[(u64::from_le_bytes(head) as usize) & self.mask];
        std::array::from_fn(|row| {
            let b = digest[8 + row];
            let word = &block.0[row * 2 + usize::from(b & 1)];
            (word, u32::from((b >> 1) & 15) * 4)
        })
    }

    fn increment(&self, digest: &HashBinary) {
        let mut added = false;
        for (cell, shift) in self.slots(digest) {
            let mut current = cell.load(Ordering::Relaxed);
            loop {
                if (current >> shift) & 15 == 15 {
                    break;
                }
                match cell.compare_exchange_weak(
                    current,
                    current + (1 << shift),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        added = true;
                        break;
                    }
                    Err(now) => current = now,
                }
            }
        }
        if added && self.additions.fetch_add(1, Ordering::Relaxed) + 1 == self.sample_size {
            self.halve();
        }
    }

    fn estimate(&self, digest: &HashBinary) -> u8 {
        self.slots(digest)
            .iter()
            .map(|&(cell, shift)| ((cell.load(Ordering::Relaxed) >> shift) & 15) as u8)
            .min()
            .unwrap_or(0)
    }

    /// Age: halve every counter. Counts racing with this may be lost, which
    /// an estimate tolerates.
    fn halve(&self) {
        for cell in self.blocks.iter().flat_map(|b| b.0.iter()) {
            let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some((w >> 1) & RESET_MASK)
            });
        }
        self.additions
            .fetch_sub(self.sample_size / 2, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(i: u64) -> CompactCacheKey {
        crate::key::CacheKey::new("t", i.to_string(), "").to_compact()
    }

    fn never() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    #[test]
    fn sketch_counts_saturate_at_15_and_halve() {
        let s = FrequencySketch::new(1024);
        let d = key(1).combined_bin();
        assert_eq!(s.estimate(&d), 0);
        for _ in 0..20 {
            s.increment(&d);
        }
        assert_eq!(s.estimate(&d), 15);
        assert_eq!(s.estimate(&key(2).combined_bin()), 0);
        s.halve();
        assert_eq!(s.estimate(&d), 7);
    }

    #[test]
    fn sketch_ages_after_its_sample_size() {
        let s = FrequencySketch::new(1024);
        let hot = key(0).combined_bin();
        for _ in 0..10 {
            s.increment(&hot);
        }
        // enough other counts to reach the sample size (10 x 1024)
        for i in 1..=10_240u64 {
            s.increment(&key(i).combined_bin());
        }
        assert!(s.estimate(&hot) < 10, "{}", s.estimate(&hot));
    }

    #[test]
    fn everything_is_admitted_while_there_is_room() {
        let m = Manager::new(1_000, 10);
        for i in 0..10 {
            assert!(m.admit(key(i), 100, never()).is_empty());
        }
        assert_eq!(m.total_items(), 10);
        assert_eq!(m.rejected_items(), 0);
    }

    #[test]
    fn a_cold_scan_does_not_flush_popular_entries() {
        let m = Manager::new(1_000, 10);
        for round in 0..5 {
            for i in 0..10 {
                if round == 0 {
                    m.admit(key(i), 100, never());
                } else {
                    assert!(m.access(&key(i), 100, never()));
                }
            }
        }
        for i in 1_000..1_500 {
            let out = m.admit(key(i), 100, never());
            assert_eq!(out, vec![key(i)], "a one-hit key is rejected");
        }
        for i in 0..10 {
            assert!(m.peek(&key(i)), "popular key {i} survived the scan");
        }
        assert_eq!(m.rejected_items(), 500);
        assert_eq!(m.evicted_items(), 0);
    }

    #[test]
    fn a_large_candidate_is_weighed_against_every_entry_it_would_displace() {
        // ten entries of 100 bytes, all asked for 4 times but the one in the
        // lowest shard, which is therefore the next victim (the eviction
        // cursor starts at shard 0)
        let m = Manager::new(1_000, 10);
        let shard = |i: u64| crate::digest_map::shard_index(&key(i).combined_bin(), lru::SHARDS);
        let cold = (0..10).min_by_key(|&i| shard(i)).unwrap();
        for i in 0..10 {
            m.admit(key(i), 100, never());
        }
        for _ in 0..3 {
            for i in (0..10).filter(|&i| i != cold) {
                assert!(m.access(&key(i), 100, never()));
            }
        }
        // a candidate of 500 bytes asked for three times beats the cold
        // entry but not the popular ones it would also displace
        for _ in 0..2 {
            m.sketch.increment(&key(50).combined_bin());
        }
        assert!(!m.count_and_check(&key(50), 500));
        assert_eq!(m.total_items(), 10);
        // one of 100 bytes asked for as often displaces only the cold one
        for _ in 0..2 {
            m.sketch.increment(&key(51).combined_bin());
        }
        assert!(m.count_and_check(&key(51), 100));
        assert_eq!(m.admit_checked(key(51), 100, never()), vec![key(cold)]);
    }

    #[test]
    fn a_key_that_becomes_popular_gets_in() {
        let m = Manager::new(1_000, 10);
        for i in 0..10 {
            m.admit(key(i), 100, never());
        }
        // the newcomer is requested (missed) repeatedly
        let mut admitted = false;
        for _ in 0..5 {
            if m.admit(key(99), 100, never()).iter().all(|k| *k != key(99)) {
                admitted = true;
                break;
            }
        }
        assert!(admitted);
        assert!(m.peek(&key(99)));
        assert_eq!(m.total_size(), 1_000);
        assert!(m.frequency(&key(99)) >= 2);
    }

    #[test]
    fn readmitting_a_tracked_key_is_never_rejected() {
        let m = Manager::new(200, 10);
        m.admit(key(1), 100, never());
        m.admit(key(2), 100, never());
        assert!(m.admit(key(1), 100, never()).is_empty());
        m.remove(&key(1));
        assert_eq!(m.total_items(), 1);
    }
}
