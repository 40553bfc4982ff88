//! The cache storage parts 6 and 8 use, chosen by the conf: a
//! [`TieredCache`] (a memory tier over a [`DiskCache`]) when `cache_dir` is
//! set, else a [`MemCache`]; and the LRU eviction manager that bounds it to
//! `cache_size` bytes, with the admission policy `cache_admission` picks
//! (TinyLFU by default, or plain LRU) in front of it.
//!
//! With `cache_dir`:
//! - the disk storage never takes more than `cache_size` bytes on disk
//!   (entry files in 4 KiB blocks, its directories, fills in progress);
//! - the eviction manager evicts entries past `cache_size` minus a
//!   headroom of min(`cache_size` / 4, [`DISK_HEADROOM_MAX`]), which leaves
//!   room for the directories and for fills in progress (the storage counts
//!   them as they are written, the manager only when they finish): a fill
//!   that would take the directory past `cache_size` is not stored;
//! - the memory tier holds min(64 MiB, `cache_size` / 4) of hot entries;
//! - the entries found on disk are admitted to the eviction manager at
//!   start, oldest first.
//!
//! A `cache_dir` that cannot be created or read is logged and the memory
//! storage used instead: the proxy still starts and caches.

use proxy_facade::cache::eviction::lru::Manager as LruManager;
use proxy_facade::cache::eviction::tinylfu::Manager as TinyLfuManager;
use proxy_facade::cache::eviction::EvictionManager;
use proxy_facade::cache::{DiskCache, MemCache, Storage, TieredCache};

use crate::conf::{CacheAdmission, ExampleConf};

/// The most the memory tier in front of the disk holds, in bytes.
pub const MEMORY_TIER_MAX: usize = 64 * 1024 * 1024;

/// The most of `cache_size` kept out of the eviction manager's budget for
/// directories and fills in progress, with `cache_dir`.
pub const DISK_HEADROOM_MAX: usize = 128 * 1024 * 1024;

/// The average entry size, in bytes, the TinyLFU frequency sketch is sized
/// for: one 8-byte sketch word per this many bytes of `cache_size` (a disk
/// entry takes at least a 4 KiB block).
pub const ADMISSION_ENTRY_BYTES: usize = 4096;

/// The most entries the frequency sketch is sized for (a 32 MiB sketch).
pub const ADMISSION_ENTRIES_MAX: usize = 4 << 20;

/// The eviction manager of `limit_bytes` for `admission`, leaked to
/// `&'static`.
fn eviction(admission: CacheAdmission, limit_bytes: usize) -> &'static dyn EvictionManager {
    match admission {
        CacheAdmission::Lru => Box::leak(Box::new(LruManager::new(limit_bytes))),
        CacheAdmission::Tinylfu => {
            let entries = (limit_bytes / ADMISSION_ENTRY_BYTES).min(ADMISSION_ENTRIES_MAX);
            // the watermark constructor with the limit itself: the LRU
            // evicts down to the limit, and nothing is allocated up front
            // for the entries (the hint sizes only the sketch)
            Box::leak(Box::new(TinyLfuManager::new_with_watermark(
                limit_bytes,
                limit_bytes,
                entries,
            )))
        }
    }
}

/// The storage and eviction manager for `conf`, leaked to `&'static` (they
/// live as long as the process). Blocking (scans `cache_dir`): call at
/// start.
pub fn build(conf: &ExampleConf) -> (&'static dyn Storage, &'static dyn EvictionManager) {
    let admission = conf.cache_admission;
    if let Some(dir) = conf.cache_dir.as_deref().filter(|d| !d.is_empty()) {
        match DiskCache::new(dir, conf.cache_size as u64) {
            Ok(disk) => {
                let headroom = DISK_HEADROOM_MAX.min(conf.cache_size / 4);
                let eviction = eviction(admission, conf.cache_size - headroom);
                let admitted = disk.admit_existing(eviction);
                let memory = MEMORY_TIER_MAX.min(conf.cache_size / 4);
                log::info!(
                    "cache: {dir} on disk ({} bytes, {admitted} entries found) with {memory} bytes in memory, admission {admission:?}",
                    conf.cache_size
                );
                let storage: &'static TieredCache =
                    Box::leak(Box::new(TieredCache::new(disk, memory)));
                return (storage, eviction);
            }
            Err(e) => log::error!("cache_dir {dir}: {e}; caching in memory instead"),
        }
    }
    let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    (storage, eviction(admission, conf.cache_size))
}
