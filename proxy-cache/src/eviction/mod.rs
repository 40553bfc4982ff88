//! Eviction managers: which entries to drop to stay within a byte budget,
//! and (with admission) which new entries are worth keeping at all.
//!
//! The cache state machine tells the manager about every stored entry
//! ([`EvictionManager::admit`]) and every hit ([`EvictionManager::access`]),
//! and purges from the storage whatever `admit` returns.

pub mod lru;
pub mod tinylfu;

use std::time::SystemTime;

use crate::key::CompactCacheKey;

/// An eviction policy over entries counted in bytes.
pub trait EvictionManager: Send + Sync {
    /// Bytes currently tracked.
    fn total_size(&self) -> usize;
    /// Entries currently tracked.
    fn total_items(&self) -> usize;
    /// Bytes evicted so far.
    fn evicted_size(&self) -> usize;
    /// Entries evicted so far.
    fn evicted_items(&self) -> usize;

    /// Track a new (or replaced) entry of `size` bytes (header and body).
    /// Returns the entries to purge from the storage so the budget holds,
    /// which may include `item` itself when an admission policy rejects it.
    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey>;

    /// Stop tracking `item` (it was purged).
    fn remove(&self, item: &CompactCacheKey);

    /// Record a hit on `item`. Returns whether it was tracked; if not, it is
    /// admitted with `size`.
    fn access(&self, item: &CompactCacheKey, size: usize, fresh_until: SystemTime) -> bool;

    /// Whether `item` is tracked, without counting an access.
    fn peek(&self, item: &CompactCacheKey) -> bool;
}
