//! A sharded least-recently-used [`EvictionManager`] with a byte budget.
//!
//! # How it works
//! Entries are spread over [`SHARDS`] shards by their digest. Each shard is a
//! `parking_lot::Mutex` over a doubly linked list kept in an arena (a `Vec`
//! of nodes linked by `u32` indices, with a free list) and an index of node
//! numbers hashed by each node's digest: admit, access and remove are O(1),
//! and a lock is held for one of them only. The totals are atomics, read
//! without any lock.
//!
//! The order is least-recently-used *per shard*. When an admit takes the
//! total past the limit, the manager evicts the least recently used entry of
//! one shard after another (a rotating cursor, one shard lock at a time)
//! until the total is at or below the watermark. With many entries per shard
//! this is close to a global LRU (Pingora's `pingora-lru` does the same).
//!
//! # Watermark
//! [`Manager::new_with_watermark`]`(limit, watermark)`: nothing is evicted
//! while the total stays at or below `limit` bytes; once an admit crosses
//! it, entries are evicted until the total is at or below `watermark` bytes.
//! A watermark below the limit evicts in batches, so a cache that runs full
//! does not evict on every admit. (Pingora's `watermark` is an item count;
//! this one is in bytes, like the limit.)
//!
//! # Hits under contention
//! [`EvictionManager::access`] only *tries* the shard lock: when another
//! thread holds it, the promotion is skipped (the entry was recently moved or
//! is being moved by that thread anyway) and the access reports the entry as
//! tracked. A hit therefore never waits for a lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::digest_map::{digest_map, shard_index, DigestMap};
use crate::eviction::EvictionManager;
use crate::key::{CompactCacheKey, HashBinary};
use crate::lru_list::LruList;

/// Number of shards.
pub const SHARDS: usize = 32;

/// A sharded LRU over entries counted in bytes. See the module docs.
pub struct Manager {
    shards: Box<[Mutex<Shard>]>,
    limit: usize,
    watermark: usize,
    total_size: AtomicUsize,
    total_items: AtomicUsize,
    evicted_size: AtomicUsize,
    evicted_items: AtomicUsize,
    /// Which shard evicts next.
    cursor: AtomicUsize,
}

impl Manager {
    /// A manager that keeps at most `limit_bytes` (evicting down to the
    /// limit itself: no watermark).
    pub fn new(limit_bytes: usize) -> Self {
        Self::build(limit_bytes, limit_bytes, 0)
    }

    /// Like [`Manager::new`], with room for about `items_hint` entries
    /// allocated up front.
    pub fn with_capacity(limit_bytes: usize, items_hint: usize) -> Self {
        Self::build(limit_bytes, limit_bytes, items_hint)
    }

    /// A manager that starts evicting when the total passes `limit_bytes`
    /// and then evicts down to `watermark_bytes` (clamped to the limit).
    pub fn new_with_watermark(limit_bytes: usize, watermark_bytes: usize) -> Self {
        Self::build(limit_bytes, watermark_bytes.min(limit_bytes), 0)
    }

    fn build(limit: usize, watermark: usize, items_hint: usize) -> Self {
        let per_shard = items_hint.div_ceil(SHARDS);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    list: LruList::with_capacity(per_shard),
                    extras: digest_map(0),
                })
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Manager {
            shards,
            limit,
            watermark,
            total_size: AtomicUsize::new(0),
            total_items: AtomicUsize::new(0),
            evicted_size: AtomicUsize::new(0),
            evicted_items: AtomicUsize::new(0),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The byte limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The byte watermark evictions go down to.
    pub fn watermark(&self) -> usize {
        self.watermark
    }

    fn shard(&self, digest: &HashBinary) -> &Mutex<Shard> {
        &self.shards[shard_index(digest, self.shards.len())]
    }

    /// Track `item` as most recently used, without evicting anything.
    fn insert(&self, item: CompactCacheKey, size: usize) {
        let digest = item.combined_bin();
        let old = self.shard(&digest).lock().insert(digest, item, size);
        match old {
            Some(old_size) => {
                self.total_size.fetch_add(size, Ordering::Relaxed);
                self.total_size.fetch_sub(old_size, Ordering::Relaxed);
            }
            None => {
                self.total_size.fetch_add(size, Ordering::Relaxed);
                self.total_items.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// If the total is past the limit, evict down to the watermark. The
    /// entry `spare` (the one just admitted) is evicted only when nothing
    /// else is left: with few entries per shard, it may be the least recent
    /// of its own shard while older entries sit in others.
    fn evict_if_needed(&self, spare: &HashBinary) -> Vec<CompactCacheKey> {
        if self.total_size.load(Ordering::Relaxed) <= self.limit {
            return Vec::new();
        }
        let mut evicted = Vec::new();
        let mut empty_in_a_row = 0;
        let mut spare = Some(spare);
        while self.total_size.load(Ordering::Relaxed) > self.watermark {
            if empty_in_a_row >= self.shards.len() {
                if spare.take().is_none() {
                    break;
                }
                empty_in_a_row = 0;
            }
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.shards.len();
            let popped = self.shards[i].lock().pop_tail_unless(spare);
            match popped {
                Some((key, size)) => {
                    empty_in_a_row = 0;
                    self.account_removed(size);
                    self.evicted_size.fetch_add(size, Ordering::Relaxed);
                    self.evicted_items.fetch_add(1, Ordering::Relaxed);
                    evicted.push(key);
                }
                None => empty_in_a_row += 1,
            }
        }
        evicted
    }

    fn account_removed(&self, size: usize) {
        self.total_size.fetch_sub(size, Ordering::Relaxed);
        self.total_items.fetch_sub(1, Ordering::Relaxed);
    }

    /// Calls `each` with the digest of every entry the next evictions
    /// would pick to make room for `size` more bytes, as far as one entry
    /// per shard shows them: the least recent entry of each shard in turn
    /// from the cursor (the order evictions take), until their sizes add
    /// up to what must go (down to the watermark), and at least one. For
    /// an admission policy weighing a candidate against everything it
    /// would displace, not only the first victim: a large candidate needs
    /// many.
    pub(crate) fn victims_for(&self, size: usize, mut each: impl FnMut(&HashBinary)) {
        let need = (self.total_size.load(Ordering::Relaxed) + size).saturating_sub(self.watermark);
        let n = self.shards.len();
        let start = self.cursor.load(Ordering::Relaxed);
        let mut freed = 0;
        let mut seen = false;
        for k in 0..n {
            if seen && freed >= need {
                break;
            }
            let tail = self.shards[(start + k) % n].lock().tail();
            if let Some((digest, bytes)) = tail {
                each(&digest);
                freed += bytes;
                seen = true;
            }
        }
    }

    /// Whether admitting `size` more bytes would cross the limit.
    pub(crate) fn would_evict(&self, size: usize) -> bool {
        self.total_size.load(Ordering::Relaxed) + size > self.limit
    }
}

impl EvictionManager for Manager {
    fn total_size(&self) -> usize {
        self.total_size.load(Ordering::Relaxed)
    }

    fn total_items(&self) -> usize {
        self.total_items.load(Ordering::Relaxed)
    }

    fn evicted_size(&self) -> usize {
        self.evicted_size.load(Ordering::Relaxed)
    }

    fn evicted_items(&self) -> usize {
        self.evicted_items.load(Ordering::Relaxed)
    }

    /// Tracks `item` as most recently used (replacing its size if it was
    /// tracked), then evicts down to the watermark if the limit is crossed.
    /// The result may include `item` itself when it alone exceeds the budget.
    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        _fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey> {
        let digest = item.combined_bin();
        self.insert(item, size);
        self.evict_if_needed(&digest)
    }

    fn remove(&self, item: &CompactCacheKey) {
        let digest = item.combined_bin();
        let removed = self.shard(&digest).lock().remove(&digest);
        if let Some(size) = removed {
            self.account_removed(size);
        }
    }

    /// Moves `item` to the most recently used end. An untracked item is
    /// tracked with `size` but nothing is evicted here: the next
    /// [`EvictionManager::admit`] restores the budget. When the shard is
    /// locked by another thread the move is skipped and `true` returned
    /// (see the module docs).
    fn access(&self, item: &CompactCacheKey, size: usize, _fresh_until: SystemTime) -> bool {
        let digest = item.combined_bin();
        let Some(mut shard) = self.shard(&digest).try_lock() else {
            return true;
        };
        if shard.list.touch(&digest) {
            return true;
        }
        drop(shard);
        self.insert(item.clone(), size);
        false
    }

    fn peek(&self, item: &CompactCacheKey) -> bool {
        let digest = item.combined_bin();
        self.shard(&digest).lock().list.contains(&digest)
    }
}

/// One shard: its entries in LRU order, 28 bytes a node (the digest,
/// [`Tracked`] and two links), and the few entries that need more than
/// that.
struct Shard {
    list: LruList<Tracked>,
    /// The entries whose [`Tracked`] is [`Tracked::EXTRA`].
    extras: DigestMap<Extra>,
}

/// What a node keeps besides its digest: the entry's size in bytes, or
/// [`Tracked::EXTRA`] when the shard's `extras` hold its size and key
/// (a size of 4 GiB or more, or a key whose digest alone does not give
/// it back: a variance or a user tag). Four bytes, so a node of the
/// common key is 28 bytes.
#[derive(Default, Clone, Copy, PartialEq, Debug)]
struct Tracked(u32);

impl Tracked {
    const EXTRA: Tracked = Tracked(u32::MAX);
}

/// An entry that [`Tracked`] cannot hold alone.
struct Extra {
    /// The key, when its digest alone does not give it back.
    full_key: Option<CompactCacheKey>,
    size: usize,
}

impl Shard {
    /// Track `key` (whose digest is `digest`) at `size` bytes as the most
    /// recent entry; returns the size it had if it was tracked.
    fn insert(&mut self, digest: HashBinary, key: CompactCacheKey, size: usize) -> Option<usize> {
        let plain = key.variance.is_none() && key.user_tag.is_empty();
        let tracked = match u32::try_from(size) {
            Ok(small) if plain && Tracked(small) != Tracked::EXTRA => Tracked(small),
            _ => Tracked::EXTRA,
        };
        let old = self.list.insert_head(digest, tracked);
        let old_size = old.map(|t| self.size_of(&digest, t));
        if tracked == Tracked::EXTRA {
            let full_key = (!plain).then_some(key);
            self.extras.insert(digest, Extra { full_key, size });
        }
        old_size
    }

    /// The size of the entry `digest` whose node holds `tracked`, taking
    /// its extra record out if it has one.
    fn size_of(&mut self, digest: &HashBinary, tracked: Tracked) -> usize {
        if tracked == Tracked::EXTRA {
            self.extras.remove(digest).map_or(0, |e| e.size)
        } else {
            tracked.0 as usize
        }
    }

    /// The least recent entry's digest and size.
    fn tail(&self) -> Option<(HashBinary, usize)> {
        let (digest, tracked) = self.list.tail()?;
        let size = if *tracked == Tracked::EXTRA {
            self.extras.get(&digest).map_or(0, |e| e.size)
        } else {
            tracked.0 as usize
        };
        Some((digest, size))
    }

    /// Stop tracking `digest`; returns its size.
    fn remove(&mut self, digest: &HashBinary) -> Option<usize> {
        let tracked = self.list.remove(digest)?;
        Some(self.size_of(digest, tracked))
    }

    /// Remove the least recent entry unless its digest is `spare`; returns
    /// its key and size.
    fn pop_tail_unless(&mut self, spare: Option<&HashBinary>) -> Option<(CompactCacheKey, usize)> {
        let (digest, tracked) = self.list.pop_tail_unless(spare)?;
        let (full_key, size) = if tracked == Tracked::EXTRA {
            let extra = self.extras.remove(&digest);
            // every EXTRA node has its record (`Shard::insert`)
            debug_assert!(extra.is_some(), "an EXTRA node without its record");
            extra.map_or((None, 0), |e| (e.full_key, e.size))
        } else {
            (None, tracked.0 as usize)
        };
        let key = match full_key {
            Some(key) => key,
            None => CompactCacheKey {
                primary: digest,
                variance: None,
                user_tag: Box::default(),
            },
        };
        Some((key, size))
    }

    /// Every entry's size (for tests).
    #[cfg(test)]
    fn sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.list.iter().map(|(d, t)| {
            if *t == Tracked::EXTRA {
                self.extras.get(d).map_or(0, |e| e.size)
            } else {
                t.0 as usize
            }
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len()
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
    fn a_common_entry_is_a_28_byte_node_and_others_come_back_whole() {
        assert_eq!(std::mem::size_of::<Tracked>(), 4);
        assert_eq!(crate::lru_list::node_size::<Tracked>(), 28);
        let mut shard = Shard {
            list: LruList::with_capacity(0),
            extras: digest_map(0),
        };
        let tagged = CompactCacheKey {
            primary: [1; 16],
            variance: Some([2; 16]),
            user_tag: "t".into(),
        };
        let plain = key(3);
        let huge = key(4);
        let huge_size = u32::MAX as usize + 7;
        assert_eq!(
            shard.insert(tagged.combined_bin(), tagged.clone(), 10),
            None
        );
        assert_eq!(shard.insert(plain.combined_bin(), plain.clone(), 20), None);
        assert_eq!(
            shard.insert(huge.combined_bin(), huge.clone(), huge_size),
            None
        );
        assert_eq!(shard.extras.len(), 2, "the tagged key and the huge size");
        assert_eq!(shard.sizes().sum::<usize>(), 30 + huge_size);
        // re-admitted smaller and plain: its extra record goes
        assert_eq!(
            shard.insert(huge.combined_bin(), huge.clone(), 5),
            Some(huge_size)
        );
        assert_eq!(shard.extras.len(), 1);
        assert_eq!(shard.pop_tail_unless(None), Some((tagged, 10)));
        assert_eq!(shard.pop_tail_unless(None), Some((plain, 20)));
        assert_eq!(shard.remove(&huge.combined_bin()), Some(5));
        assert!(shard.extras.is_empty());
        assert_eq!(shard.len(), 0);
    }

    #[test]
    fn budget_holds_under_random_admits() {
        let m = Manager::new(100_000);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut evicted = 0;
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let size = (rng % 5_000) as usize + 1;
            // one key in four a variant, kept in its shard's side map
            let k = match rng % 4 {
                0 => {
                    let mut v = crate::key::CacheKey::new("t", (rng % 3_000).to_string(), "");
                    v.set_variance_key([(rng % 3) as u8; 16]);
                    v.to_compact()
                }
                _ => key(rng % 3_000),
            };
            evicted += m.admit(k, size, never()).len();
            assert!(m.total_size() <= 100_000, "{}", m.total_size());
        }
        // a side record for every node marked for one, and no other
        for s in m.shards.iter() {
            let s = s.lock();
            let marked = s.list.iter().filter(|(_, t)| **t == Tracked::EXTRA).count();
            assert_eq!(marked, s.extras.len());
        }
        assert!(evicted > 0);
        assert_eq!(m.evicted_items(), evicted);
        // the totals agree with what the shards hold
        let (items, bytes) = m.shards.iter().fold((0, 0), |(i, b), s| {
            let s = s.lock();
            (i + s.len(), b + s.sizes().sum::<usize>())
        });
        assert_eq!(items, m.total_items());
        assert_eq!(bytes, m.total_size());
    }

    #[test]
    fn watermark_evicts_in_a_batch() {
        let m = Manager::new_with_watermark(1_000, 500);
        for i in 0..10 {
            assert!(m.admit(key(i), 100, never()).is_empty());
        }
        assert_eq!(m.total_size(), 1_000);
        let evicted = m.admit(key(10), 100, never());
        assert_eq!(evicted.len(), 6);
        assert_eq!(m.total_size(), 500);
        assert!(m.peek(&key(10)), "the new entry is the most recent");
        assert_eq!(m.evicted_size(), 600);
        assert_eq!(m.watermark(), 500);
        assert_eq!(m.limit(), 1_000);
    }

    #[test]
    fn readmit_replaces_the_size_and_remove_forgets() {
        let m = Manager::new(1_000);
        m.admit(key(1), 100, never());
        m.admit(key(1), 300, never());
        assert_eq!((m.total_items(), m.total_size()), (1, 300));
        m.remove(&key(1));
        assert_eq!((m.total_items(), m.total_size()), (0, 0));
        assert!(!m.peek(&key(1)));
        m.remove(&key(1));
        assert_eq!(m.total_size(), 0);
    }

    #[test]
    fn access_tracks_unknown_items_and_protects_known_ones() {
        let m = Manager::new(1);
        assert!(!m.access(&key(5), 0, never()));
        assert!(m.access(&key(5), 0, never()));
        assert!(m.peek(&key(5)));

        // with one shard's worth of keys, the accessed one survives
        let m = Manager::new(300);
        let same_shard: Vec<_> = (0..10_000u64)
            .map(key)
            .filter(|k| shard_index(&k.combined_bin(), SHARDS) == 0)
            .take(4)
            .collect();
        for k in &same_shard[..3] {
            m.admit(k.clone(), 100, never());
        }
        assert!(m.access(&same_shard[0], 100, never()));
        let evicted = m.admit(same_shard[3].clone(), 100, never());
        assert_eq!(evicted, vec![same_shard[1].clone()]);
    }

    #[test]
    fn evicted_keys_come_back_whole() {
        let m = Manager::new(100);
        let mut variant = crate::key::CacheKey::new("t", "/v", "tag");
        variant.set_variance_key([4; 16]);
        let variant = variant.to_compact();
        let tagged = crate::key::CacheKey::new("t", "/t", "tag").to_compact();
        m.admit(variant.clone(), 50, never());
        m.admit(tagged.clone(), 50, never());
        let mut evicted = m.admit(key(1), 100, never());
        evicted.sort_by_key(|k| k.primary);
        let mut want = vec![variant, tagged];
        want.sort_by_key(|k| k.primary);
        assert_eq!(evicted, want);
        assert_eq!(m.admit(key(2), 100, never()), vec![key(1)]);
    }

    #[test]
    fn an_item_larger_than_the_budget_is_evicted_itself() {
        let m = Manager::new(100);
        let evicted = m.admit(key(1), 1_000, never());
        assert_eq!(evicted, vec![key(1)]);
        assert_eq!(m.total_size(), 0);
    }

    #[test]
    fn concurrent_admits_keep_the_totals_consistent() {
        let m = std::sync::Arc::new(Manager::new(50_000));
        let threads: Vec<_> = (0..2u64)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        m.admit(key(t * 100_000 + i), 100, never());
                        m.access(&key(t * 100_000 + i / 2), 100, never());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let items: usize = m.shards.iter().map(|s| s.lock().len()).sum();
        assert_eq!(items, m.total_items());
        assert!(m.total_size() <= 50_000 + 200);
    }
}
