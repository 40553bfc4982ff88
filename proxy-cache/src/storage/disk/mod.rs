//! [`DiskCache`]: a [`Storage`] on a directory, surviving restarts.
//!
//! # Layout on disk
//! One file per entry: a small header (magic, version, lengths, the key's
//! digests and user tag; see `format.rs`), the serialized [`CacheMeta`],
//! then the body. Files live under hashed subdirectories like nginx's
//! `levels=1:2`: `<dir>/c/b7/<32 hex digits of the combined digest>`.
//! Fills are written under `<dir>/tmp/` and renamed into place when whole.
//!
//! # Crash safety
//! A fill becomes visible only by its rename, after its body length was
//! written and the file `fdatasync`ed; a crash, `kill -9` or power cut
//! before that leaves a file under `tmp/`, which the next start removes.
//! Every read checks the file's magic, version, digest and exact length
//! against its header, so a file that is not whole is never served: it is
//! treated as absent and deleted. See `fill.rs` for what is synced.
//!
//! # Restart
//! [`DiskCache::new`] scans the directory and rebuilds the index (digest →
//! size, `fresh_until`) from the file headers; [`DiskCache::entries`] and
//! [`DiskCache::admit_existing`] hand the entries to an eviction manager so
//! its budget covers them too.
//!
//! # Streaming fills
//! As with `MemCache`, a lookup during a fill finds it and reads the body
//! as it is written, from the temporary file (see `fill.rs`); an abandoned
//! fill makes its readers fail and leaves nothing behind.
//!
//! # Bounds
//! - The eviction manager the proxy passes keeps the entries within its
//!   budget (entries are counted as their file size rounded up to 4 KiB
//!   blocks, what `du` counts).
//! - Independently, the storage never lets what it keeps on disk pass
//!   `max_size_bytes`: entry files (in 4 KiB blocks), the directories (a
//!   block each: the cache directory, `tmp/`, at most 16 first-level and
//!   4,096 leaf directories; a leaf directory is removed when its last
//!   entry is) and the temporary files of fills in progress, which reserve
//!   their blocks as they write. A fill that would pass the budget fails
//!   (`write_body` returns an error: the response is served uncached and
//!   nothing is stored). Give the eviction manager a smaller budget than
//!   the storage (e.g. 3/4 of it) so that directories and fills in
//!   progress have room while the manager evicts.
//!
//! # Blocking
//! Every file operation that may block runs on tokio's blocking pool
//! (`spawn_blocking`), never on an async worker thread; [`DiskCache::new`]
//! is synchronous and meant to run at start, before the server's runtime.
//! The one exception is a lookup's open and first read, tried first on the
//! worker with calls that fail rather than block (`openat2` with
//! `RESOLVE_CACHED`, `preadv2` with `RWF_NOWAIT`): a hit in the kernel's
//! caches then costs no thread hand-off. When the file opened but its bytes
//! are not in the page cache, they are read on the worker thread's io_uring
//! (`uring`), which does not block either; anything else goes to the pool.
//!
//! # Errors
//! A full disk, a read-only directory or an I/O error makes the method
//! return `Err`; the cache then serves the request uncached and logs it.
//! One process per directory: two processes filling the same directory
//! would not see each other's index (a graceful upgrade's new process
//! removes the old one's temporary files at start; a fill the old process
//! finishes after that is not stored).

mod fill;
mod format;
mod hit;
mod index;
mod layout;
mod page_cache;
mod scan;
mod uring;

use std::any::Any;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use proxy_core::error::{Error, ErrorType, Result};

use crate::eviction::EvictionManager;
use crate::key::{hex, CacheKey, CompactCacheKey, HashBinary};
use crate::meta::CacheMeta;
use crate::storage::{HitHandler, MissHandler, PurgeType, Storage};

use fill::{DiskMiss, Fill, FillHit};
use format::EntryHeader;
use hit::{
    copy_range, open_entry, open_entry_cached, open_read_entry, CachedOpen, FileHit, OpenOutcome,
};
use index::{Index, Indexed};
use layout::{blocking, entry_path, io_err, on_disk, TMP_DIR};

/// A cache storage on a directory. See the module docs.
pub struct DiskCache {
    dir: PathBuf,
    tmp: PathBuf,
    index: Index,
    /// Numbers temporary file names.
    seq: AtomicU64,
}

impl DiskCache {
    /// Open (creating it if needed) the cache directory `dir`, whose entry
    /// files may take at most `max_size_bytes` bytes on disk. Removes
    /// leftover temporary files, indexes the entries found, deletes those
    /// that are not whole, and, if they pass `max_size_bytes` (the budget
    /// was lowered), deletes the oldest until they fit. Blocking.
    ///
    /// A directory that exists but cannot be written is accepted (with a
    /// warning): its entries are served, and every fill fails.
    ///
    /// # Errors
    /// `FileOpenError` when `dir` cannot be created or read.
    pub fn new(dir: impl AsRef<Path>, max_size_bytes: u64) -> Result<DiskCache> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)
            .map_err(|e| io_err(ErrorType::FileOpenError, "creating", &dir, e))?;
        let scanned =
            scan::scan(&dir).map_err(|e| io_err(ErrorType::FileOpenError, "reading", &dir, e))?;
        let cache = DiskCache {
            tmp: dir.join(TMP_DIR),
            dir,
            index: Index::new(max_size_bytes),
            seq: AtomicU64::new(0),
        };
        cache.index.add(scanned.dir_bytes);
        let found = scanned.entries.len();
        let mut total: u64 = scanned.entries.iter().map(|(_, e)| e.size).sum();
        let mut dropped = 0;
        for (digest, mut entry) in scanned.entries {
            if total + scanned.dir_bytes > max_size_bytes {
                total -= entry.size;
                let path = cache.entry_path(&digest);
                let _ = fs::remove_file(&path);
                cache.remove_empty_leaf(&path);
                dropped += 1;
                continue;
            }
            entry.rank = cache.index.next_rank();
            cache.index.add(entry.size);
            let mut map = cache.index.map(&digest).write();
            map.entries.insert(digest, entry);
        }
        log::info!(
            "disk cache {}: {} entries, {} bytes of {max_size_bytes} (removed {} temporary, {} not whole, {dropped} over the budget)",
            cache.dir.display(),
            found - dropped,
            cache.index.used(),
            scanned.temp_removed,
            scanned.corrupt_removed,
        );
        Ok(cache)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of complete entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there is no complete entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on disk of the complete entries plus those reserved by fills
    /// in progress (file sizes rounded up to 4 KiB blocks).
    pub fn used_bytes(&self) -> u64 {
        self.index.used()
    }

    /// The byte budget given to [`DiskCache::new`].
    pub fn max_size_bytes(&self) -> u64 {
        self.index.max()
    }

    /// Every complete entry, oldest first: its key, its size in bytes (as
    /// [`crate::storage::MissFinishType::Created`] reports it) and its
    /// `fresh_until`. For filling an eviction manager at start.
    pub fn entries(&self) -> Vec<(CompactCacheKey, usize, SystemTime)> {
        self.index
            .all()
            .into_iter()
            .map(|e| (e.key, e.size as usize, e.fresh_until))
            .collect()
    }

    /// Admit every complete entry, oldest first, to `eviction`, deleting
    /// whatever it evicts. Blocking: call at start, before serving. Returns
    /// the number of entries admitted.
    pub fn admit_existing(&self, eviction: &dyn EvictionManager) -> usize {
        let entries = self.entries();
        let n = entries.len();
        for (key, size, fresh_until) in entries {
            for evicted in eviction.admit(key, size, fresh_until) {
                self.purge_blocking(&evicted.combined_bin(), PurgeType::Eviction);
            }
        }
        n
    }

    /// The fill in progress for `key`, if any, with a reader that follows
    /// it. No I/O until the reader reads.
    pub(crate) fn lookup_fill(&self, key: &CacheKey) -> Option<(CacheMeta, HitHandler)> {
        let digest = key.combined_bin();
        let fill = self.index.map(&digest).read().fills.get(&digest).cloned()?;
        let meta = fill.meta.clone();
        Some((meta, Box::new(FillHit { fill, pos: 0 })))
    }

    fn entry_path(&self, digest: &HashBinary) -> PathBuf {
        entry_path(&self.dir, digest)
    }

    /// Remove the entry `digest` (and, for an invalidation, stop a fill in
    /// progress from being stored). Blocking. Whether anything was there.
    fn purge_blocking(&self, digest: &HashBinary, purge_type: PurgeType) -> bool {
        let _io = self.index.io(digest).lock();
        let (removed, fill) = {
            let mut map = self.index.map(digest).write();
            let removed = self.index.remove(&mut map, digest);
            let fill = if purge_type == PurgeType::Invalidation {
                map.fills.remove(digest)
            } else {
                None
            };
            (removed, fill)
        };
        if let Some(fill) = &fill {
            fill.superseded.store(true, Ordering::Relaxed);
        }
        if removed {
            let path = self.entry_path(digest);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("disk cache: removing {}: {e}", path.display());
                }
            }
            self.remove_empty_leaf(&path);
        }
        removed || fill.is_some()
    }

    /// Forget (and delete, if it is still the same file) an entry whose
    /// file was found missing or not whole. Blocking.
    fn drop_bad(&self, digest: &HashBinary, path: &Path, ino: Option<u64>, reason: &str) {
        let _io = self.index.io(digest).lock();
        let current = fs::metadata(path).ok().map(|m| m.ino());
        if current != ino {
            // replaced since it was opened (or still missing): leave the
            // new file; forget the entry only if no file is there at all
            if current.is_some() {
                return;
            }
        } else if ino.is_some() {
            log::warn!("disk cache: removing {}: {reason}", path.display());
            let _ = fs::remove_file(path);
            self.remove_empty_leaf(path);
        }
        let mut map = self.index.map(digest).write();
        self.index.remove(&mut map, digest);
    }

    /// Remove the leaf directory of `entry` if empty, freeing its block.
    /// The caller holds the leaf's `io` lock.
    fn remove_empty_leaf(&self, entry: &Path) {
        if layout::remove_empty_leaf(entry) {
            self.index.release(layout::BLOCK);
        }
    }

    fn temp_path(&self, digest: &HashBinary) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.tmp
            .join(format!("{}.{}.{n}", hex(digest), std::process::id()))
    }
}

/// Create the temporary file and write the header and meta. Blocking.
fn create_temp(tmp_dir: &Path, temp: &Path, head: &[u8]) -> Result<File> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(temp)
    };
    let file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // tmp/ was removed under us: make it again, once
            fs::create_dir_all(tmp_dir)
                .map_err(|e| io_err(ErrorType::FileCreateError, "creating", tmp_dir, e))?;
            open()
        }
        other => other,
    }
    .map_err(|e| io_err(ErrorType::FileCreateError, "creating", temp, e))?;
    file.write_all_at(head, 0)
        .map_err(|e| io_err(ErrorType::FileWriteError, "writing", temp, e))?;
    Ok(file)
}

#[async_trait]
impl Storage for DiskCache {
    /// # Errors
    /// An I/O error opening or reading the entry's file. A file that is
    /// missing or not whole is `Ok(None)` (and is deleted).
    async fn lookup(&'static self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        let digest = key.combined_bin();
        if let Some(found) = self.lookup_fill(key) {
            return Ok(Some(found));
        }
        if !self.index.map(&digest).read().entries.contains_key(&digest) {
            return Ok(None);
        }
        let path = self.entry_path(&digest);
        // most hits are in the kernel's caches: served without a hand-off
        // to the blocking pool and back; an entry whose bytes are not is
        // read on io_uring where the kernel has it
        let opened = match open_entry_cached(&path, &digest) {
            CachedOpen::WouldBlock(file, stat) => open_read_entry(file, stat, &digest).await,
            other => other,
        };
        if let CachedOpen::Found(opened) = opened {
            let meta = opened.meta.clone();
            let hit: HitHandler = Box::new(FileHit::new(opened));
            return Ok(Some((meta, hit)));
        }
        blocking(move || match open_entry(&path, Some(&digest))? {
            OpenOutcome::Found(opened) => {
                let meta = opened.meta.clone();
                let hit: HitHandler = Box::new(FileHit::new(opened));
                Ok(Some((meta, hit)))
            }
            OpenOutcome::Missing => {
                self.drop_bad(&digest, &path, None, "missing");
                Ok(None)
            }
            OpenOutcome::Corrupt { reason, ino } => {
                self.drop_bad(&digest, &path, Some(ino), &reason);
                Ok(None)
            }
        })
        .await
    }

    /// # Errors
    /// `FileWriteError` when the budget has no room even for the header,
    /// `FileCreateError` / `FileWriteError` when the temporary file cannot
    /// be created or written (read-only directory, full disk).
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
    ) -> Result<MissHandler> {
        let digest = key.combined_bin();
        let compact = key.to_compact();
        let meta_bytes = meta.serialize();
        let header = EntryHeader::new(&compact, meta_bytes.len(), u64::MAX)?;
        let head = header.encode(&meta_bytes);
        let body_offset = head.len() as u64;
        let reserved = on_disk(body_offset);
        if !self.index.reserve(reserved) {
            return Error::e_explain(
                ErrorType::FileWriteError,
                format!(
                    "disk cache: the budget of {} bytes is full, entry not stored",
                    self.index.max()
                ),
            );
        }
        let temp = self.temp_path(&digest);
        let (tmp_dir, temp2) = (self.tmp.clone(), temp.clone());
        let file = match blocking(move || create_temp(&tmp_dir, &temp2, &head)).await {
            Ok(f) => f,
            Err(e) => {
                self.index.release(reserved);
                let temp = temp.clone();
                tokio::task::spawn_blocking(move || fs::remove_file(temp));
                return Err(e);
            }
        };
        let fill = Arc::new(Fill::new(meta.clone(), file, body_offset));
        let older = self
            .index
            .map(&digest)
            .write()
            .fills
            .insert(digest, fill.clone());
        if let Some(older) = older {
            older.superseded.store(true, Ordering::Relaxed);
        }
        Ok(Box::new(DiskMiss {
            cache: self,
            digest,
            key: compact,
            fill,
            temp,
            reserved,
            finished: false,
        }))
    }

    async fn purge(&'static self, key: &CompactCacheKey, purge_type: PurgeType) -> Result<bool> {
        let digest = key.combined_bin();
        blocking(move || Ok(self.purge_blocking(&digest, purge_type))).await
    }

    /// Writes a new file with `meta` and the old body, syncs it and renames
    /// it over the old one, so a crash leaves either version, whole.
    ///
    /// # Errors
    /// I/O errors; the old entry then stays as it was.
    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta) -> Result<bool> {
        let digest = key.combined_bin();
        let meta = meta.clone();
        let temp = self.temp_path(&digest);
        blocking(move || {
            let _io = self.index.io(&digest).lock();
            if !self.index.map(&digest).read().entries.contains_key(&digest) {
                return Ok(false);
            }
            let path = self.entry_path(&digest);
            let old = match open_entry(&path, Some(&digest))? {
                OpenOutcome::Found(o) => o,
                _ => return Ok(false),
            };
            let meta_bytes = meta.serialize();
            let header = EntryHeader::new(&old.header.key, meta_bytes.len(), old.header.body_len)?;
            let head = header.encode(&meta_bytes);
            let new_size = on_disk(header.file_len());
            let old_size = on_disk(old.header.file_len());
            if new_size > old_size && !self.index.reserve(new_size - old_size) {
                return Error::e_explain(
                    ErrorType::FileWriteError,
                    "disk cache: no room in the budget to rewrite the meta",
                );
            }
            let grown = new_size.saturating_sub(old_size);
            let written = create_temp(&self.tmp, &temp, &head).and_then(|file| {
                copy_range(
                    &old.file,
                    old.header.body_offset(),
                    old.header.body_len,
                    &file,
                    header.body_offset(),
                )
                .and_then(|()| file.sync_data())
                .map_err(|e| io_err(ErrorType::FileWriteError, "writing", &temp, e))?;
                fs::rename(&temp, &path)
                    .map_err(|e| io_err(ErrorType::FileWriteError, "renaming into", &path, e))
            });
            if let Err(e) = written {
                self.index.release(grown);
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
            let mut map = self.index.map(&digest).write();
            if let Some(entry) = map.entries.get_mut(&digest) {
                // the reservation above covered any growth; give back a shrink
                self.index.release(old_size.saturating_sub(new_size));
                *entry = Indexed {
                    key: entry.key.clone(),
                    size: new_size,
                    fresh_until: meta.fresh_until(),
                    rank: entry.rank,
                };
            }
            Ok(true)
        })
        .await
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests;
