//! The in-memory index of a [`super::DiskCache`]: which entries are on disk
//! (digest → size, freshness), which fills are in progress, and the byte
//! count the budget is checked against.
//!
//! Two kinds of locks, per shard:
//! - `map`: a `parking_lot::RwLock` over the entries and fills, held for
//!   one map operation at a time, never across an `.await` nor a system
//!   call; async code takes only this one.
//! - `io`: a `parking_lot::Mutex<()>` taken only on the blocking pool,
//!   around the file operations that change what a path names (rename into
//!   place, delete, rewrite of the meta, creating and removing the leaf
//!   directory), so that they happen one at a time and the index changes
//!   with them. It is picked by the entry's leaf directory (the digest's
//!   last byte), so every entry of one leaf directory shares it: removing
//!   an empty directory never races a rename into it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};

use crate::digest_map::{shard_index, DigestMap};
use crate::key::{CompactCacheKey, HashBinary};

use super::fill::Fill;

/// Number of shards.
const SHARDS: usize = 64;

/// What the index keeps per complete entry.
#[derive(Debug, Clone)]
pub(crate) struct Indexed {
    /// The entry's key, as its file header has it.
    pub(crate) key: CompactCacheKey,
    /// Bytes on disk ([`super::layout::on_disk`] of the file length).
    pub(crate) size: u64,
    /// The meta's `fresh_until`.
    pub(crate) fresh_until: SystemTime,
    /// Order of arrival: a counter, older entries lower (at start, in file
    /// modification order).
    pub(crate) rank: u64,
}

#[derive(Default)]
pub(crate) struct MapShard {
    pub(crate) entries: DigestMap<Indexed>,
    pub(crate) fills: DigestMap<Arc<Fill>>,
}

/// The sharded index with its budget counter.
pub(crate) struct Index {
    maps: Box<[RwLock<MapShard>]>,
    io: Box<[Mutex<()>]>,
    /// Bytes of complete entries plus bytes reserved by fills in progress.
    used: AtomicU64,
    /// The budget `used` never passes.
    max: u64,
    next_rank: AtomicU64,
}

impl Index {
    pub(crate) fn new(max: u64) -> Self {
        Index {
            maps: (0..SHARDS).map(|_| RwLock::default()).collect(),
            io: (0..SHARDS).map(|_| Mutex::new(())).collect(),
            used: AtomicU64::new(0),
            max,
            next_rank: AtomicU64::new(0),
        }
    }

    pub(crate) fn map(&self, digest: &HashBinary) -> &RwLock<MapShard> {
        &self.maps[shard_index(digest, SHARDS)]
    }

    /// The file-operation lock of `digest`'s leaf directory. Blocking pool
    /// only.
    pub(crate) fn io(&self, digest: &HashBinary) -> &Mutex<()> {
        &self.io[usize::from(digest[15]) % SHARDS]
    }

    pub(crate) fn next_rank(&self) -> u64 {
        self.next_rank.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// Take `bytes` of the budget; false (nothing taken) when that would
    /// pass it.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|n| *n <= self.max)
            })
            .is_ok()
    }

    /// Count `bytes` without checking the budget (entries found at start).
    pub(crate) fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Give `bytes` back.
    pub(crate) fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    /// Insert or replace a complete entry; the replaced one's bytes are
    /// released. The caller reserved `entry.size` already.
    pub(crate) fn insert(&self, shard: &mut MapShard, digest: HashBinary, entry: Indexed) {
        if let Some(old) = shard.entries.insert(digest, entry) {
            self.release(old.size);
        }
    }

    /// Remove a complete entry, releasing its bytes; whether it was there.
    pub(crate) fn remove(&self, shard: &mut MapShard, digest: &HashBinary) -> bool {
        match shard.entries.remove(digest) {
            Some(old) => {
                self.release(old.size);
                true
            }
            None => false,
        }
    }

    /// Every complete entry, oldest first.
    pub(crate) fn all(&self) -> Vec<Indexed> {
        let mut all: Vec<Indexed> = self
            .maps
            .iter()
            .flat_map(|m| m.read().entries.values().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|e| e.rank);
        all
    }

    /// Number of complete entries.
    pub(crate) fn len(&self) -> usize {
        self.maps.iter().map(|m| m.read().entries.len()).sum()
    }
}

/// Remove `fill` from the shard's fills if it is still the one there.
pub(crate) fn remove_fill(shard: &mut MapShard, digest: &HashBinary, fill: &Arc<Fill>) {
    if shard
        .fills
        .get(digest)
        .is_some_and(|current| Arc::ptr_eq(current, fill))
    {
        shard.fills.remove(digest);
    }
}
