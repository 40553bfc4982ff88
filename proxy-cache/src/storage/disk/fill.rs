//! Fills: a new entry written to a temporary file, readable while it is
//! written, renamed into place when whole.
//!
//! The writer ([`DiskMiss`]) and its readers ([`FillHit`]) share one
//! [`Fill`]: the open temporary file, the number of body bytes written so
//! far and a `Notify`. Readers `pread` the bytes the writer has reported
//! written, from the same open file, so a rename or a delete of the path
//! never disturbs them. A writer dropped without `finish` marks the fill
//! abandoned: its readers' next `read_body` past what was written fails,
//! and the temporary file is deleted.
//!
//! # Crash safety
//! `finish` writes the body length into the header, `fdatasync`s the file
//! and only then renames it to its final name. The sync comes first so that
//! after a power cut the final name never points at a file whose blocks
//! were not written (filesystems may persist a rename before the data it
//! names); the directory itself is not synced, so a power cut just after a
//! fill may lose the rename: the entry is then absent and fetched again.
//! A crash before the rename leaves only a file under `tmp/`, removed at
//! the next start.

use std::any::Any;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use proxy_core::error::{Error, ErrorType, Result};
use tokio::sync::Notify;

use crate::key::{CacheKey, CompactCacheKey, HashBinary};
use crate::meta::CacheMeta;
use crate::storage::{HandleHit, HandleMiss, MissFinishType, Storage};

use super::format::BODY_LEN_AT;
use super::index::{remove_fill, Indexed};
use super::layout::{blocking, io_err, make_dirs, on_disk};
use super::DiskCache;

/// Largest piece a reader returns at once.
pub(crate) const READ_CHUNK: usize = 128 * 1024;

/// A fill in progress, shared by its writer and its readers.
pub(crate) struct Fill {
    pub(crate) meta: CacheMeta,
    file: Arc<File>,
    body_offset: u64,
    state: Mutex<FillState>,
    notify: Notify,
    /// A later fill of the same key, or an invalidation, took over: this
    /// one must not be renamed into place.
    pub(crate) superseded: AtomicBool,
}

struct FillState {
    /// Body bytes written (and readable) so far.
    len: u64,
    phase: FillPhase,
}

/// Where a fill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FillPhase {
    /// The writer may append more.
    Writing,
    /// The body is whole (whether or not it was stored).
    Done,
    /// The writer went away without finishing.
    Abandoned,
}

impl Fill {
    pub(crate) fn new(meta: CacheMeta, file: File, body_offset: u64) -> Self {
        Fill {
            meta,
            file: Arc::new(file),
            body_offset,
            state: Mutex::new(FillState {
                len: 0,
                phase: FillPhase::Writing,
            }),
            notify: Notify::new(),
            superseded: AtomicBool::new(false),
        }
    }

    fn set_phase(&self, phase: FillPhase) {
        self.state.lock().phase = phase;
        self.notify.notify_waiters();
    }
}

/// Writes one fill. Created by [`DiskCache`]'s `get_miss_handler`.
pub(crate) struct DiskMiss {
    pub(crate) cache: &'static DiskCache,
    pub(crate) digest: HashBinary,
    pub(crate) key: CompactCacheKey,
    pub(crate) fill: Arc<Fill>,
    /// The temporary file's path.
    pub(crate) temp: PathBuf,
    /// Budget bytes taken so far (the file's size on disk).
    pub(crate) reserved: u64,
    pub(crate) finished: bool,
}

#[async_trait]
impl HandleMiss for DiskMiss {
    /// # Errors
    /// `FileWriteError` when the entry would pass the cache's byte budget
    /// (the fill is then not stored) or the write failed (disk full, I/O
    /// error).
    ///
    /// # Cancel safety
    /// A dropped call may or may not have written `data`; it is not
    /// counted, and the next call writes at the same offset.
    async fn write_body(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let written = self.fill.state.lock().len;
        let at = self.fill.body_offset + written;
        let need = on_disk(at + data.len() as u64);
        if need > self.reserved {
            if !self.cache.index.reserve(need - self.reserved) {
                return Error::e_explain(
                    ErrorType::FileWriteError,
                    format!(
                        "disk cache: the budget of {} bytes is full, entry not stored",
                        self.cache.index.max()
                    ),
                );
            }
            self.reserved = need;
        }
        let file = self.fill.file.clone();
        let temp = self.temp.clone();
        let n = data.len() as u64;
        blocking(move || {
            file.write_all_at(&data, at)
                .map_err(|e| io_err(ErrorType::FileWriteError, "writing", &temp, e))
        })
        .await?;
        self.fill.state.lock().len = written + n;
        self.fill.notify.notify_waiters();
        Ok(())
    }

    /// Sync, rename into place, index. See the module docs.
    ///
    /// # Errors
    /// `FileWriteError` when the sync or the rename failed; nothing is
    /// stored then (readers following the fill still get the whole body).
    ///
    /// # Cancel safety
    /// The work runs to its end on the blocking pool even if this future is
    /// dropped.
    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        self.finished = true;
        let cache = self.cache;
        let digest = self.digest;
        let key = self.key.clone();
        let fill = self.fill.clone();
        let temp = self.temp.clone();
        let reserved = self.reserved;
        blocking(move || {
            let result = store(cache, digest, key, &fill, &temp, reserved);
            if result.is_err() {
                cache.index.release(reserved);
                let _ = fs::remove_file(&temp);
                let mut map = cache.index.map(&digest).write();
                remove_fill(&mut map, &digest, &fill);
            }
            fill.set_phase(FillPhase::Done);
            result.map(|()| MissFinishType::Created(reserved as usize))
        })
        .await
    }
}

/// The blocking part of `finish`: length, sync, rename, index.
fn store(
    cache: &'static DiskCache,
    digest: HashBinary,
    key: CompactCacheKey,
    fill: &Arc<Fill>,
    temp: &PathBuf,
    reserved: u64,
) -> Result<()> {
    let len = fill.state.lock().len;
    fill.file
        .write_all_at(&len.to_le_bytes(), BODY_LEN_AT)
        .map_err(|e| io_err(ErrorType::FileWriteError, "writing", temp, e))?;
    fill.file
        .sync_data()
        .map_err(|e| io_err(ErrorType::FileWriteError, "syncing", temp, e))?;
    let path = cache.entry_path(&digest);
    let _io = cache.index.io(&digest).lock();
    if fill.superseded.load(Ordering::Relaxed) {
        // replaced or invalidated while being written: not stored
        let _ = fs::remove_file(temp);
        cache.index.release(reserved);
        let mut map = cache.index.map(&digest).write();
        remove_fill(&mut map, &digest, fill);
        return Ok(());
    }
    make_dirs(
        &path,
        |b| cache.index.reserve(b),
        |b| cache.index.release(b),
    )?;
    fs::rename(temp, &path)
        .map_err(|e| io_err(ErrorType::FileWriteError, "renaming into", &path, e))?;
    let entry = Indexed {
        key,
        size: reserved,
        fresh_until: fill.meta.fresh_until(),
        rank: cache.index.next_rank(),
    };
    let mut map = cache.index.map(&digest).write();
    cache.index.insert(&mut map, digest, entry);
    remove_fill(&mut map, &digest, fill);
    Ok(())
}

impl Drop for DiskMiss {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.fill.set_phase(FillPhase::Abandoned);
        {
            let mut map = self.cache.index.map(&self.digest).write();
            remove_fill(&mut map, &self.digest, &self.fill);
        }
        self.cache.index.release(self.reserved);
        let temp = std::mem::take(&mut self.temp);
        let remove = move || {
            if let Err(e) = fs::remove_file(&temp) {
                log::warn!("disk cache: removing {}: {e}", temp.display());
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}

/// Follows a fill in progress: yields the body as the writer writes it.
pub(crate) struct FillHit {
    pub(crate) fill: Arc<Fill>,
    /// Next body byte to return.
    pub(crate) pos: u64,
}

#[async_trait]
impl HandleHit for FillHit {
    /// # Errors
    /// The fill was abandoned before this reader reached its end, or a read
    /// failed.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call returns nothing and the next one resumes
    /// at the same byte.
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let available = loop {
            let mut notified = pin!(self.fill.notify.notified());
            notified.as_mut().enable();
            {
                let state = self.fill.state.lock();
                if state.len > self.pos {
                    break state.len - self.pos;
                }
                match state.phase {
                    FillPhase::Done => return Ok(None),
                    FillPhase::Abandoned => {
                        return Error::e_explain(
                            ErrorType::FileReadError,
                            "the disk cache fill this hit was reading was abandoned",
                        )
                    }
                    FillPhase::Writing => {}
                }
            }
            notified.await;
        };
        let n = available.min(READ_CHUNK as u64) as usize;
        let file = self.fill.file.clone();
        let at = self.fill.body_offset + self.pos;
        let piece = blocking(move || read_exact_at(&file, at, n)).await?;
        self.pos += n as u64;
        Ok(Some(piece))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static dyn Storage,
        _key: &CacheKey,
    ) -> Result<()> {
        Ok(())
    }

    /// # Errors
    /// Always: a body still being written cannot be sought.
    fn seek(&mut self, start: usize, _end: Option<usize>) -> Result<()> {
        Error::e_explain(
            ErrorType::InternalError,
            format!("seek to {start} in a disk cache entry still being filled"),
        )
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Read exactly `n` bytes at `at`.
///
/// # Errors
/// `FileReadError`, also when the file ends first (it was truncated).
pub(crate) fn read_exact_at(file: &File, at: u64, n: usize) -> Result<Bytes> {
    let mut buf = BytesMut::zeroed(n);
    file.read_exact_at(&mut buf, at).map_err(|e| {
        Error::because(
            ErrorType::FileReadError,
            format!("disk cache: reading {n} bytes at {at}"),
            e,
        )
    })?;
    Ok(buf.freeze())
}
