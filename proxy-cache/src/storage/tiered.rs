//! [`TieredCache`]: a [`MemCache`] of bounded size in front of a
//! [`DiskCache`], so hot entries are served without touching the
//! filesystem.
//!
//! # Design
//! - **Lookup**: a fill in progress on disk first (it is newer than any
//!   complete copy), then the memory tier, then the disk tier. A
//!   complete disk entry whose body is at most the promotion limit is read
//!   whole and copied into the memory tier (*promoted*), and served from
//!   there, when the memory tier's admission takes it; otherwise it is
//!   served from the disk tier. A fill in progress is always read from the
//!   disk tier.
//! - **Admission**: the memory tier's eviction is TinyLFU over LRU
//!   ([`crate::eviction::tinylfu`]). Once the tier is full, a disk hit is
//!   promoted only if its key has been asked for more often than the entry
//!   LRU would evict for it, and that is decided before its body is copied:
//!   with a working set larger than the tier, most disk hits are not worth
//!   the copy and the eviction it causes (uniformly random keys gain nothing
//!   from promotion), while popular keys still move into memory. Fills pass
//!   the same admission.
//! - **Large disk hits pass the same admission**: a disk hit whose body
//!   is at least `FILE_BODY_MIN` (128 KiB, the size from which the memory
//!   tier keeps a body in a memfd file too) is promoted when the admission
//!   takes it, like any other. Until then it is served from its entry
//!   file, with sendfile(2) where the client connection allows it
//!   ([`HandleHit::body_file`](crate::storage::HandleHit::body_file)).
//!   Over loopback a hot 1 MiB body cost the proxy 98 µs per hit from the
//!   memfd and 213 µs from its ext4 file, both with sendfile
//!   (`docs/benchmarks.md`), so a popular large body is worth its copy; a
//!   uniformly random set larger than the tier is not, and the admission
//!   keeps its promotions rare (ties lose, but for one in 128 once a key is
//!   warm), where promoting every memory-tier miss cost 703 µs per 1 MiB
//!   hit. Stale entries that an earlier load made frequent give way the
//!   same way, one warm tie at a time. Fills still put such bodies in
//!   memory when admitted: their bytes are at hand. A key is promoted by
//!   one request at a time: others that hit it meanwhile are served from
//!   disk instead of each copying the same body.
//! - **Fill**: written to the disk tier (which streams it to readers);
//!   bodies up to the promotion limit are also kept in memory while being
//!   written and, when the fill finishes on disk and the admission takes
//!   it, put into the memory tier, replacing any older copy; a larger or
//!   rejected body removes the older copy. The
//!   disk is the authority: nothing is in memory that is not on disk.
//! - **Memory budget**: the memory tier has its own eviction manager of
//!   `memory_bytes`; it evicts from memory only. The eviction manager the
//!   proxy passes to the cache covers the disk tier; what it evicts is
//!   removed from both tiers, as are purges.
//! - **update_meta** updates both tiers.
//!
//! A promotion that races a fill of the same key finishing can leave the
//! older version in memory until that entry is evicted, purged or filled
//! again.

use std::any::Any;

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use proxy_core::error::Result;

use crate::digest_map::DigestHasher;
use crate::eviction::tinylfu::Manager as TinyLfu;
use crate::eviction::EvictionManager;
use crate::key::{CacheKey, CompactCacheKey, HashBinary};
use crate::meta::CacheMeta;
use crate::storage::disk::DiskCache;
use crate::storage::memory::{entry_size, MemCache};
use crate::storage::{HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeType, Storage};

/// A memory tier over a disk tier. See the module docs.
pub struct TieredCache {
    memory: MemCache,
    memory_lru: TinyLfu,
    promote_max: usize,
    disk: DiskCache,
    /// Digests of the disk hits being copied into memory right now.
    promoting: Mutex<HashSet<HashBinary, BuildHasherDefault<DigestHasher>>>,
}

/// One promotion in progress: its digest leaves
/// [`TieredCache::promoting`] when this is dropped (finished, failed or
/// cancelled).
struct Promotion<'a> {
    cache: &'a TieredCache,
    digest: HashBinary,
}

impl Drop for Promotion<'_> {
    fn drop(&mut self) {
        self.cache.promoting.lock().remove(&self.digest);
    }
}

impl TieredCache {
    /// `disk` with a memory tier of at most `memory_bytes` (headers and
    /// bodies, as `MemCache` counts them). Bodies up to `memory_bytes / 8`
    /// go to memory; change it with [`TieredCache::with_promote_max`]. The
    /// admission's frequency sketch is sized for an entry per 512 bytes of
    /// `memory_bytes` (8 bytes each: 1/64 of the tier).
    pub fn new(disk: DiskCache, memory_bytes: usize) -> Self {
        TieredCache {
            memory: MemCache::new(),
            memory_lru: TinyLfu::new(memory_bytes, memory_bytes / 512),
            promote_max: memory_bytes / 8,
            disk,
            promoting: Mutex::default(),
        }
    }

    /// Claims the promotion of `key`, or `None` when another request is
    /// promoting it already: that one's copy will serve the next hits, and
    /// a second copy of the same body (a read of the file and, for a large
    /// body, a new memfd) would only be dropped.
    fn start_promotion(&self, key: &CacheKey) -> Option<Promotion<'_>> {
        let digest = key.combined_bin();
        // the lock is released before a `Promotion` exists: its drop locks
        let claimed = self.promoting.lock().insert(digest);
        claimed.then(|| Promotion {
            cache: self,
            digest,
        })
    }

    /// The largest body, in bytes, copied into the memory tier, by a fill
    /// or a promoted disk hit, when the admission takes it (default: 1/8
    /// of the tier).
    pub fn with_promote_max(mut self, bytes: usize) -> Self {
        self.promote_max = bytes;
        self
    }

    /// The disk tier (for [`DiskCache::admit_existing`] at start, or its
    /// counters).
    pub fn disk(&self) -> &DiskCache {
        &self.disk
    }

    /// Bytes held by the memory tier.
    pub fn memory_bytes(&self) -> usize {
        self.memory_lru.total_size()
    }

    /// Put a whole body into the memory tier (replacing any older copy)
    /// and let its LRU evict what no longer fits. The admission has
    /// already taken this entry ([`TieredCache::admits`]).
    async fn put_in_memory(&'static self, key: &CacheKey, meta: &CacheMeta, body: Vec<Bytes>) {
        let stored: Result<MissFinishType> = async {
            let mut miss = self.memory.get_miss_handler(key, meta).await?;
            for piece in body {
                miss.write_body(piece).await?;
            }
            miss.finish().await
        }
        .await;
        let Ok(MissFinishType::Created(size) | MissFinishType::Appended(size)) = stored else {
            return;
        };
        for evicted in self
            .memory_lru
            .admit_checked(key.to_compact(), size, meta.fresh_until())
        {
            let _ = self.memory.purge(&evicted, PurgeType::Eviction).await;
        }
    }

    /// Whether the memory tier's admission takes `key` with a body of
    /// `body_len` bytes (counting this access): asked before the body is
    /// copied, so a rejected entry costs no copy.
    fn admits(&self, key: &CacheKey, meta: &CacheMeta, body_len: usize) -> bool {
        let size = entry_size(meta, body_len);
        self.memory_lru.count_and_check(&key.to_compact(), size)
    }

    async fn drop_from_memory(&'static self, key: &CompactCacheKey) {
        let _ = self.memory.purge(key, PurgeType::Invalidation).await;
        self.memory_lru.remove(key);
    }
}

#[async_trait]
impl Storage for TieredCache {
    /// # Errors
    /// The disk tier's errors.
    async fn lookup(&'static self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        // a fill in progress first, as MemCache does: it is newer than any
        // complete copy (the cache lock's waiters must find it)
        if let Some(found) = self.disk.lookup_fill(key) {
            return Ok(Some(found));
        }
        if let Some((meta, hit, size)) = self.memory.lookup_sized(key)? {
            self.memory_lru
                .access(&key.to_compact(), size, meta.fresh_until());
            return Ok(Some((meta, hit)));
        }
        let Some((meta, mut hit)) = self.disk.lookup(key).await? else {
            return Ok(None);
        };
        match hit.body_len() {
            Some(len) if len <= self.promote_max => {
                if !self.admits(key, &meta, len) {
                    return Ok(Some((meta, hit)));
                }
                let Some(_promotion) = self.start_promotion(key) else {
                    return Ok(Some((meta, hit)));
                };
                let mut body = Vec::new();
                while let Some(piece) = hit.read_body().await? {
                    body.push(piece);
                }
                self.put_in_memory(key, &meta, body).await;
                match self.memory.lookup(key).await? {
                    Some(found) => Ok(Some(found)),
                    // evicted at once (a tiny memory tier): read it again
                    None => self.disk.lookup(key).await,
                }
            }
            _ => Ok(Some((meta, hit))),
        }
    }

    /// # Errors
    /// The disk tier's errors.
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
    ) -> Result<MissHandler> {
        let disk = self.disk.get_miss_handler(key, meta).await?;
        Ok(Box::new(TieredMiss {
            cache: self,
            key: key.clone(),
            meta: meta.clone(),
            disk,
            copy: Some(Vec::new()),
            copied: 0,
        }))
    }

    async fn purge(&'static self, key: &CompactCacheKey, purge_type: PurgeType) -> Result<bool> {
        let in_memory = self.memory.purge(key, purge_type).await?;
        self.memory_lru.remove(key);
        let on_disk = self.disk.purge(key, purge_type).await?;
        Ok(in_memory || on_disk)
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta) -> Result<bool> {
        let updated = self.disk.update_meta(key, meta).await;
        match updated {
            Ok(true) => {
                self.memory.update_meta(key, meta).await?;
                Ok(true)
            }
            // the disk no longer has it, or could not be written: memory
            // must not keep a version the disk does not have
            other => {
                self.drop_from_memory(&key.to_compact()).await;
                other
            }
        }
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Writes a fill to the disk tier, keeping a copy of a small body for the
/// memory tier.
struct TieredMiss {
    cache: &'static TieredCache,
    key: CacheKey,
    meta: CacheMeta,
    disk: MissHandler,
    /// The body so far, while it is small enough for the memory tier.
    copy: Option<Vec<Bytes>>,
    copied: usize,
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes) -> Result<()> {
        self.disk.write_body(data.clone()).await?;
        if let Some(copy) = self.copy.as_mut() {
            self.copied += data.len();
            if self.copied <= self.cache.promote_max {
                copy.push(data);
            } else {
                self.copy = None;
            }
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let TieredMiss {
            cache,
            key,
            meta,
            disk,
            copy,
            copied,
        } = *self;
        let finished = disk.finish().await;
        match (&finished, copy) {
            (Ok(_), Some(body)) if cache.admits(&key, &meta, copied) => {
                cache.put_in_memory(&key, &meta, body).await
            }
            // a rejected fill also removes an older copy from memory
            _ => cache.drop_from_memory(&key.to_compact()).await,
        }
        finished
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::storage::file_body::FILE_BODY_MIN;
    use std::time::{Duration, SystemTime};

    use proxy_core::http::ResponseHeader;

    use super::*;

    fn meta(tag: &str) -> CacheMeta {
        let now = SystemTime::now();
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("x-tag", tag).unwrap();
        CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
    }

    fn tag(m: &CacheMeta) -> String {
        m.response_header().headers["x-tag"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    async fn store(cache: &'static TieredCache, key: &CacheKey, tag: &str, body: &[u8]) {
        let mut miss = cache.get_miss_handler(key, &meta(tag)).await.unwrap();
        miss.write_body(Bytes::copy_from_slice(body)).await.unwrap();
        miss.finish().await.unwrap();
    }

    async fn read_all(hit: &mut HitHandler) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = hit.read_body().await.unwrap() {
            out.extend_from_slice(&b);
        }
        out
    }

    fn leak(dir: &std::path::Path, memory: usize) -> &'static TieredCache {
        let disk = DiskCache::new(dir, 1 << 30).unwrap();
        Box::leak(Box::new(TieredCache::new(disk, memory)))
    }

    /// A restarted cache on `dir` with a memory tier of 1 MiB that
    /// promotes bodies of up to 1 MiB, whose disk holds `/large` (a body of
    /// `FILE_BODY_MIN + 5000` bytes, returned), `/small` (1,000 bytes of 3)
    /// and eight fillers of 120,000 bytes of 5 (returned): under 128 KiB,
    /// promoted by the admission, and together leaving the tier less room
    /// than the large body needs.
    async fn large_beside_fillers(
        dir: &std::path::Path,
    ) -> (&'static TieredCache, Vec<u8>, Vec<CacheKey>) {
        let body: Vec<u8> = (0..FILE_BODY_MIN + 5000).map(|i| (i % 251) as u8).collect();
        let fillers: Vec<_> = (0..8)
            .map(|i| CacheKey::new("ns", format!("/filler/{i}"), ""))
            .collect();
        {
            let cache = leak(dir, 1 << 20);
            store(cache, &CacheKey::new("ns", "/large", ""), "l", &body).await;
            store(cache, &CacheKey::new("ns", "/small", ""), "s", &[3; 1000]).await;
            for f in &fillers {
                store(cache, f, "f", &[5; 120_000]).await;
            }
        }
        let disk = DiskCache::new(dir, 1 << 30).unwrap();
        let cache = Box::leak(Box::new(
            TieredCache::new(disk, 1 << 20).with_promote_max(1 << 20),
        ));
        (cache, body, fillers)
    }

    #[tokio::test]
    async fn empty_bodies_stay_within_the_memory_budget_on_fill_and_on_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 20_000;
        let keys: Vec<_> = (0..400)
            .map(|i| CacheKey::new("ns", format!("/empty/{i}"), ""))
            .collect();
        {
            let cache = leak(dir.path(), budget);
            for k in &keys {
                store(cache, k, "e", b"").await;
            }
            assert!(cache.memory_bytes() <= budget, "{}", cache.memory_bytes());
            assert!(cache.memory.len() < keys.len(), "{}", cache.memory.len());
        }
        // a restarted cache promotes disk hits: the budget holds there too
        let cache = leak(dir.path(), budget);
        for k in &keys {
            let (_, mut hit) = cache.lookup(k).await.unwrap().unwrap();
            assert!(read_all(&mut hit).await.is_empty());
        }
        assert!(cache.memory_bytes() <= budget, "{}", cache.memory_bytes());
        assert!(cache.memory.len() < keys.len(), "{}", cache.memory.len());
    }

    #[tokio::test]
    async fn a_full_memory_tier_promotes_a_disk_hit_only_once_it_is_popular() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 20_000;
        let keys: Vec<_> = (0..40)
            .map(|i| CacheKey::new("ns", format!("/k/{i}"), ""))
            .collect();
        {
            let cache = leak(dir.path(), budget);
            for k in &keys {
                store(cache, k, "k", &[5; 1000]).await;
            }
        }
        let cache = leak(dir.path(), budget);
        // promotions while the tier has room
        let mut i = 0;
        while cache.memory_bytes() + 1300 < budget {
            let (_, mut hit) = cache.lookup(&keys[i]).await.unwrap().unwrap();
            assert_eq!(read_all(&mut hit).await, vec![5; 1000]);
            i += 1;
        }
        assert!(cache.memory.len() >= 10, "{}", cache.memory.len());
        let held = cache.memory.len();
        // a key asked for once is served from disk, not copied over an
        // entry asked for as often
        let cold = &keys[39];
        let (_, mut hit) = cache.lookup(cold).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, vec![5; 1000]);
        assert!(cache.memory.lookup(cold).await.unwrap().is_none());
        assert_eq!(cache.memory.len(), held);
        // asked for again, it is more popular than the next victim
        for _ in 0..2 {
            let (_, mut hit) = cache.lookup(cold).await.unwrap().unwrap();
            assert_eq!(read_all(&mut hit).await, vec![5; 1000]);
        }
        assert!(cache.memory.lookup(cold).await.unwrap().is_some());
        assert!(cache.memory_bytes() <= budget, "{}", cache.memory_bytes());
    }

    #[tokio::test]
    async fn small_fills_go_to_both_tiers_large_ones_to_disk_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = leak(dir.path(), 80_000); // promotes up to 10,000 bytes
        let small = CacheKey::new("ns", "/small", "");
        let large = CacheKey::new("ns", "/large", "");
        store(cache, &small, "s", &[1; 5000]).await;
        store(cache, &large, "l", &[2; 50_000]).await;
        assert_eq!(cache.memory.len(), 1);
        assert_eq!(cache.disk.len(), 2);
        let (m, mut hit) = cache.lookup(&small).await.unwrap().unwrap();
        assert_eq!(tag(&m), "s");
        assert_eq!(read_all(&mut hit).await, vec![1; 5000]);
        let (_, mut hit) = cache.lookup(&large).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, vec![2; 50_000]);
        assert_eq!(cache.memory.len(), 1, "too large to promote");
    }

    #[tokio::test]
    async fn a_disk_hit_is_promoted_after_a_restart_and_purge_clears_both() {
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::new("ns", "/p", "");
        {
            let cache = leak(dir.path(), 1 << 20);
            store(cache, &key, "p", b"persisted").await;
        }
        let cache = leak(dir.path(), 1 << 20);
        assert!(cache.memory.is_empty());
        let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, b"persisted");
        assert_eq!(cache.memory.len(), 1, "promoted");
        assert!(cache.memory_bytes() > 0);
        assert!(cache
            .purge(&key.to_compact(), PurgeType::Invalidation)
            .await
            .unwrap());
        assert!(cache.lookup(&key).await.unwrap().is_none());
        assert!(cache.memory.is_empty());
    }

    #[tokio::test]
    async fn a_large_disk_hit_is_promoted_while_memory_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let large = CacheKey::new("ns", "/large", "");
        let body: Vec<u8> = (0..FILE_BODY_MIN + 5000).map(|i| (i % 251) as u8).collect();
        {
            let cache = leak(dir.path(), 16 << 20);
            store(cache, &large, "l", &body).await;
        }
        // restarted: an empty memory tier with room for it
        let cache = leak(dir.path(), 16 << 20);
        let (_, mut hit) = cache.lookup(&large).await.unwrap().unwrap();
        assert_eq!(cache.memory.len(), 1, "promoted into the empty tier");
        assert_eq!(read_all(&mut hit).await, body);
        let (_, mut hit) = cache.lookup(&large).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, body, "a hit from memory");
    }

    #[test]
    fn a_key_is_promoted_by_one_request_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let cache = leak(dir.path(), 1 << 20);
        let key = CacheKey::new("ns", "/p", "");
        let first = cache.start_promotion(&key).expect("the first claims it");
        assert!(
            cache.start_promotion(&key).is_none(),
            "the second serves from disk"
        );
        assert!(cache
            .start_promotion(&CacheKey::new("ns", "/other", ""))
            .is_some());
        drop(first);
        assert!(cache.start_promotion(&key).is_some(), "released when done");
        assert!(cache.promoting.lock().is_empty());
    }

    #[tokio::test]
    async fn a_large_disk_hit_does_not_displace_entries_more_popular_than_it() {
        let dir = tempfile::tempdir().unwrap();
        let large = CacheKey::new("ns", "/large", "");
        let (cache, body, fillers) = large_beside_fillers(dir.path()).await;
        // every filler promoted, then asked for four times in all
        for _ in 0..4 {
            for f in &fillers {
                let (_, mut hit) = cache.lookup(f).await.unwrap().unwrap();
                assert_eq!(read_all(&mut hit).await.len(), 120_000);
            }
        }
        let held = cache.memory.len();
        // asked for three times: more than none, less than the fillers it
        // would displace (two of them), so it stays on disk
        for _ in 0..3 {
            let (_, mut hit) = cache.lookup(&large).await.unwrap().unwrap();
            assert_eq!(read_all(&mut hit).await, body);
        }
        assert!(cache.memory.lookup(&large).await.unwrap().is_none());
        assert_eq!(cache.memory.len(), held);
    }

    #[tokio::test]
    async fn a_full_memory_tier_serves_a_large_disk_hit_from_its_file_until_it_is_popular() {
        let dir = tempfile::tempdir().unwrap();
        let large = CacheKey::new("ns", "/large", "");
        let small = CacheKey::new("ns", "/small", "");
        let (cache, body, fillers) = large_beside_fillers(dir.path()).await;
        // fill the memory tier with small promotions until a large body no
        // longer fits without evicting
        for f in &fillers {
            let (_, mut hit) = cache.lookup(f).await.unwrap().unwrap();
            assert_eq!(read_all(&mut hit).await.len(), 120_000);
        }
        assert!(
            cache.memory_lru.total_size() + body.len() > 1 << 20,
            "the tier is full"
        );
        let in_memory = cache.memory.len();
        // asked for once, no more often than the entry it would evict: sent
        // from its file, not copied
        let (_, hit) = cache.lookup(&large).await.unwrap().unwrap();
        assert_eq!(cache.memory.len(), in_memory, "not promoted yet");
        let f = hit.body_file().expect("a disk hit is a file range");
        assert_eq!(f.len, body.len() as u64);
        let mut sent = vec![0; body.len()];
        std::os::unix::fs::FileExt::read_exact_at(&*f.file, &mut sent, f.offset).unwrap();
        assert_eq!(sent, body);
        // asked for again, it is more popular than the next victim: copied
        // into memory in place of what it needs
        let (_, mut hit) = cache.lookup(&large).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, body);
        assert!(cache.memory.lookup(&large).await.unwrap().is_some());
        assert!(cache.memory_bytes() <= 1 << 20, "{}", cache.memory_bytes());
        let (_, mut hit) = cache.lookup(&small).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, vec![3; 1000]);
    }

    #[tokio::test]
    async fn a_fill_in_progress_is_found_before_an_older_copy_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let cache = leak(dir.path(), 1 << 20);
        let key = CacheKey::new("ns", "/f", "");
        store(cache, &key, "old", b"old body").await;
        let mut miss = cache.get_miss_handler(&key, &meta("new")).await.unwrap();
        miss.write_body(Bytes::from_static(b"new ")).await.unwrap();
        let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
        assert_eq!(tag(&m), "new");
        let reader = tokio::spawn(async move { read_all(&mut hit).await });
        miss.write_body(Bytes::from_static(b"body")).await.unwrap();
        miss.finish().await.unwrap();
        assert_eq!(reader.await.unwrap(), b"new body");
        let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
        assert_eq!(tag(&m), "new");
        assert_eq!(read_all(&mut hit).await, b"new body");
    }

    #[tokio::test]
    async fn update_meta_reaches_both_tiers() {
        let dir = tempfile::tempdir().unwrap();
        let cache = leak(dir.path(), 1 << 20);
        let key = CacheKey::new("ns", "/u", "");
        store(cache, &key, "old", b"body").await;
        assert!(cache.update_meta(&key, &meta("new")).await.unwrap());
        let (m, _) = cache.memory.lookup(&key).await.unwrap().unwrap();
        assert_eq!(tag(&m), "new");
        let (m, _) = cache.disk.lookup(&key).await.unwrap().unwrap();
        assert_eq!(tag(&m), "new");
    }

    #[tokio::test]
    async fn the_memory_tier_stays_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let cache = leak(dir.path(), 64 * 1024);
        for i in 0..50 {
            store(
                cache,
                &CacheKey::new("ns", format!("/{i}"), ""),
                "m",
                &[0; 4000],
            )
            .await;
        }
        assert!(cache.memory_bytes() <= 64 * 1024);
        assert_eq!(cache.disk.len(), 50);
        for i in 0..50 {
            let key = CacheKey::new("ns", format!("/{i}"), "");
            let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
            assert_eq!(read_all(&mut hit).await.len(), 4000);
        }
        assert!(cache.memory_bytes() <= 64 * 1024);
    }
}
