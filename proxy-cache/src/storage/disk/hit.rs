//! Reading a complete entry: opening and checking its file, and the
//! [`FileHit`] reader with `seek` for ranges.

use std::any::Any;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use proxy_core::error::{Error, ErrorType, Result};

use crate::key::{CacheKey, HashBinary};
use crate::meta::CacheMeta;
use crate::storage::{BodyFile, HandleHit, Storage};

use super::fill::{read_exact_at, READ_CHUNK};
use super::format::EntryHeader;
use super::layout::{blocking, io_err};

/// Bytes read at once when an entry is opened: the header, the meta and,
/// for small entries, the whole body, in one system call.
const PREFETCH: usize = 64 * 1024;

/// An entry file opened and checked.
pub(crate) struct Opened {
    pub(crate) header: EntryHeader,
    pub(crate) meta: CacheMeta,
    pub(crate) file: File,
    /// The first body bytes (up to the whole body).
    pub(crate) prefetch: Bytes,
}

/// What opening an entry file found.
pub(crate) enum OpenOutcome {
    Found(Opened),
    /// No file at the path.
    Missing,
    /// A file that must not be served: why, and its inode (so the caller
    /// deletes this file and not one renamed there since).
    Corrupt {
        reason: String,
        ino: u64,
    },
}

/// Open the entry file at `path` and check it: magic, version, its length
/// against the header's (a shorter or longer file is corrupt), the digest
/// against `want` (when given) and the meta. Blocking.
///
/// # Errors
/// `FileOpenError` / `FileReadError` for I/O errors other than "not found".
pub(crate) fn open_entry(path: &Path, want: Option<&HashBinary>) -> Result<OpenOutcome> {
    let file = match open_to_read(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OpenOutcome::Missing),
        Err(e) => return Err(io_err(ErrorType::FileOpenError, "opening", path, e)),
    };
    let stat = file
        .metadata()
        .map_err(|e| io_err(ErrorType::FileReadError, "stat of", path, e))?;
    let first = read_exact_at(&file, 0, first_read(&stat))?;
    check_entry(file, &stat, want, first, read_exact_at)
}

/// What [`open_entry_cached`] found.
pub(crate) enum CachedOpen {
    /// The entry, whole.
    Found(Opened),
    /// Opened, but its first bytes are not in the page cache: the file
    /// and its metadata, for a read that may wait ([`open_read_entry`]).
    WouldBlock(File, std::fs::Metadata),
    /// Not opened without blocking, missing, not whole, or the kernel lacks
    /// the calls: the caller takes the blocking path ([`open_entry`]),
    /// which also handles missing and corrupt files.
    No,
}

/// [`open_entry`] without blocking, for a lookup on an async worker: only
/// when every directory of `path` is in the kernel's lookup cache
/// (`openat2(2)` with `RESOLVE_CACHED`) and the bytes it reads are in the
/// page cache (`preadv2(2)` with `RWF_NOWAIT`), which is the case for an
/// entry read or written lately. These calls need Linux 5.12; before, every
/// lookup is [`CachedOpen::No`]. Saves the two thread hand-offs of the
/// blocking pool on most hits.
pub(crate) fn open_entry_cached(path: &Path, want: &HashBinary) -> CachedOpen {
    let Ok(file) = open_to_read(path, true) else {
        return CachedOpen::No;
    };
    let Ok(stat) = file.metadata() else {
        return CachedOpen::No;
    };
    match super::page_cache::read_cached(&file, 0, first_read(&stat)) {
        Ok(first) => found(check_entry(file, &stat, Some(want), first, read_cached_at)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => CachedOpen::WouldBlock(file, stat),
        Err(_) => CachedOpen::No,
    }
}

/// Whether opening with `O_NOATIME` is allowed: it is for the owner of a
/// file, which the proxy is for the entries it wrote; cleared the first
/// time an open fails with `EPERM` and succeeds without the flag (entries
/// written by another user), for every cache of the process.
static NOATIME: AtomicBool = AtomicBool::new(true);

/// Open `path` to read, with `O_NOATIME` where allowed: a read then does
/// not update the file's access time, which under `relatime` is a
/// journaled inode write on the first read after each write, so on the
/// first hit of every entry. `cached_only`: with `openat2(2)` and
/// `RESOLVE_CACHED`, which fails with `EAGAIN` instead of reading a
/// directory from disk (Linux 5.12; `ENOSYS` or `EINVAL` before); plain
/// `openat(2)` otherwise.
///
/// # Errors
/// The call's error (`NotFound` for a missing file).
fn open_to_read(path: &Path, cached_only: bool) -> io::Result<File> {
    use rustix::fs::{open, openat2, Mode, OFlags, ResolveFlags, CWD};
    let open_with = |flags: OFlags| {
        if cached_only {
            openat2(CWD, path, flags, Mode::empty(), ResolveFlags::CACHED)
        } else {
            open(path, flags, Mode::empty())
        }
    };
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    if NOATIME.load(Ordering::Relaxed) {
        match open_with(flags | OFlags::NOATIME) {
            Err(rustix::io::Errno::PERM) => {}
            opened => return Ok(File::from(opened?)),
        }
        // the flag is what was refused only if the same open succeeds
        // without it (a seccomp filter may refuse `openat2` itself)
        let file = File::from(open_with(flags)?);
        NOATIME.store(false, Ordering::Relaxed);
        return Ok(file);
    }
    Ok(File::from(open_with(flags)?))
}

/// Finish opening an entry that [`open_entry_cached`] found not cached:
/// its first bytes are read on io_uring ([`super::uring`]), so the worker
/// neither blocks nor hands the read to another thread. [`CachedOpen::No`]
/// when io_uring is unavailable or the read fails or comes short (the
/// caller then takes the blocking path).
pub(crate) async fn open_read_entry(
    file: File,
    stat: std::fs::Metadata,
    want: &HashBinary,
) -> CachedOpen {
    let n = first_read(&stat);
    let Some((file, Ok(first))) = super::uring::read_at(file, 0, n).await else {
        return CachedOpen::No;
    };
    if first.len() != n {
        return CachedOpen::No;
    }
    found(check_entry(file, &stat, Some(want), first, read_cached_at))
}

fn found(checked: Result<OpenOutcome>) -> CachedOpen {
    match checked {
        Ok(OpenOutcome::Found(opened)) => CachedOpen::Found(opened),
        _ => CachedOpen::No,
    }
}

/// Bytes read when an entry is opened: the whole file up to [`PREFETCH`].
fn first_read(stat: &std::fs::Metadata) -> usize {
    usize::try_from(stat.len())
        .unwrap_or(usize::MAX)
        .min(PREFETCH)
}

/// `n` bytes of `file` at `at`, only if they are all in the page cache.
///
/// # Errors
/// `FileReadError` when a read would block (`EAGAIN`), the file ends
/// early, or any other error: the caller reads again on the blocking pool.
fn read_cached_at(file: &File, at: u64, n: usize) -> Result<Bytes> {
    super::page_cache::read_cached(file, at, n).map_err(|e| {
        Error::because(
            ErrorType::FileReadError,
            "disk cache: reading without blocking",
            e,
        )
    })
}

/// Check the opened entry `file` of metadata `stat` (see [`open_entry`])
/// from its `first` bytes (up to [`PREFETCH`]), reading the rest of its
/// meta, if any, with `read`.
fn check_entry(
    file: File,
    stat: &std::fs::Metadata,
    want: Option<&HashBinary>,
    buf: Bytes,
    read: fn(&File, u64, usize) -> Result<Bytes>,
) -> Result<OpenOutcome> {
    let corrupt = |reason: String| {
        Ok(OpenOutcome::Corrupt {
            reason,
            ino: stat.ino(),
        })
    };
    let len = stat.len();
    let header = match EntryHeader::decode(&buf) {
        Ok(Some(h)) => h,
        Ok(None) => return corrupt(format!("{len} bytes: shorter than its header")),
        Err(e) => return corrupt(e.to_string()),
    };
    if header.file_len() != len {
        return corrupt(format!(
            "{len} bytes where its header says {}",
            header.file_len()
        ));
    }
    if let Some(want) = want {
        if header.key.combined_bin() != *want {
            return corrupt("its header names another key".to_owned());
        }
    }
    let meta_at = header.meta_offset() as usize;
    let body_at = header.body_offset() as usize;
    let meta_bytes = if body_at <= buf.len() {
        buf.slice(meta_at..body_at)
    } else {
        read(&file, meta_at as u64, body_at - meta_at)?
    };
    let meta = match CacheMeta::deserialize(&meta_bytes) {
        Ok(m) => m,
        Err(e) => return corrupt(format!("meta: {e}")),
    };
    let prefetch = if body_at < buf.len() {
        buf.slice(body_at..)
    } else {
        Bytes::new()
    };
    Ok(OpenOutcome::Found(Opened {
        header,
        meta,
        file,
        prefetch,
    }))
}

/// Reads a complete entry's body, optionally a range of it.
pub(crate) struct FileHit {
    file: Arc<File>,
    body_offset: u64,
    body_len: u64,
    prefetch: Bytes,
    /// Next body byte to return.
    pos: u64,
    /// End of the range, exclusive.
    end: u64,
}

impl FileHit {
    pub(crate) fn new(opened: Opened) -> Self {
        FileHit {
            body_offset: opened.header.body_offset(),
            body_len: opened.header.body_len,
            end: opened.header.body_len,
            file: Arc::new(opened.file),
            prefetch: opened.prefetch,
            pos: 0,
        }
    }
}

#[async_trait]
impl HandleHit for FileHit {
    /// # Errors
    /// `FileReadError`, also when the file was truncated after it was
    /// opened (the body is then cut short with an error, never padded).
    ///
    /// # Cancel safety
    /// Cancel safe: the position moves only when a piece is returned.
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let pre = self.prefetch.len() as u64;
        if self.pos < pre {
            let to = self.end.min(pre);
            let piece = self.prefetch.slice(self.pos as usize..to as usize);
            self.pos = to;
            return Ok(Some(piece));
        }
        let n = (self.end - self.pos).min(READ_CHUNK as u64) as usize;
        let at = self.body_offset + self.pos;
        // on this worker when the page cache holds the piece (no hand-off);
        // on the blocking pool otherwise, which also reports a short file
        let piece = match super::page_cache::read_cached(&self.file, at, n) {
            Ok(piece) => piece,
            Err(_) => {
                let file = self.file.clone();
                blocking(move || read_exact_at(&file, at, n)).await?
            }
        };
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

    fn can_seek(&self) -> bool {
        true
    }

    /// `start` may equal the body length (an empty read); `end` past the
    /// body is clamped to it.
    ///
    /// # Errors
    /// `InternalError` when `start` is past the end of the body or `end` is
    /// before `start`.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body_len;
        let start = start as u64;
        let end = end.map_or(len, |e| (e as u64).min(len));
        if start > len || end < start {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek {start}..{end} outside a body of {len} bytes"),
            );
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }

    fn body_len(&self) -> Option<usize> {
        usize::try_from(self.body_len).ok()
    }

    /// The rest of the body (within the current range) as a range of the
    /// entry's file, for sendfile(2), when all of it is in the page cache
    /// (cachestat(2)), so that sending it from an async worker never waits
    /// for the disk; `None` otherwise (the body is then read in pieces by
    /// `read_body`: on the worker where the page cache holds them, on the
    /// blocking pool where it does not). Also `None` when the rest was read
    /// with the entry's header (the first 64 KiB of the file): those bytes
    /// are in memory already, and written with the response header they
    /// take one send instead of a header flush, a cachestat(2) and a
    /// sendfile(2). The file does not change while it is open: entries
    /// are written to temporary files and renamed into place whole, and a
    /// replaced or purged entry's file is unlinked, not rewritten.
    fn body_file(&self) -> Option<BodyFile> {
        if self.end <= self.prefetch.len() as u64 {
            return None;
        }
        let offset = self.body_offset + self.pos;
        let len = self.end - self.pos;
        if !super::page_cache::fully_cached(&self.file, offset, len) {
            return None;
        }
        Some(BodyFile {
            file: self.file.clone(),
            offset,
            len,
        })
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Read a file's body bytes `at..at + n` (used by `update_meta`'s copy).
pub(crate) fn copy_range(from: &File, at: u64, n: u64, to: &File, to_at: u64) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(READ_CHUNK as u64) as usize;
        from.read_exact_at(&mut buf[..k], at + done)?;
        to.write_all_at(&buf[..k], to_at + done)?;
        done += k as u64;
    }
    Ok(())
}
