//! Large complete bodies of [`super::memory::MemCache`] kept in a sealed
//! memfd (anonymous shared memory, `memfd_create(2)`) instead of the
//! writer's pieces, so that a hit can be sent to a plain socket with
//! sendfile(2): the kernel hands the pages to the socket without copying
//! them, as nginx does from its page cache. Readers that need bytes (ranges,
//! TLS, HTTP/2, body filters) read the same pages through a read-only
//! mapping, so the body is held once.
//!
//! Every such body holds one file descriptor; at most a quarter of the
//! process's soft `RLIMIT_NOFILE` (and at most [`MAX_FILES`]) are used, and
//! past that, or when the kernel refuses, bodies stay in memory pieces.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, SealFlags};

/// Bodies of at least this many bytes go to a memfd: below it, the system
/// calls of a fill and the page-granular mapping cost more than the copy a
/// hit saves.
pub(crate) const FILE_BODY_MIN: usize = 128 * 1024;

/// The most memfd bodies held at once, whatever the descriptor limit.
pub(crate) const MAX_FILES: usize = 16 * 1024;

/// Memfd bodies alive now.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// min([`MAX_FILES`], soft `RLIMIT_NOFILE` / 4), read once.
fn file_budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let quarter = soft.map_or(MAX_FILES, |n| usize::try_from(n / 4).unwrap_or(MAX_FILES));
        quarter.min(MAX_FILES)
    })
}

/// A complete body in a sealed memfd. Dropping it closes the memfd (the
/// pages go when the last hit reading them is done).
pub(crate) struct FileBody {
    file: Arc<File>,
    map: Bytes,
    _slot: Slot,
}

/// One of the [`file_budget`] slots, given back on drop.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FileBody {
    /// Copy `pieces` (`len` bytes in all) into a new sealed memfd.
    ///
    /// # Errors
    /// `WouldBlock` when the descriptor budget is used up; the kernel's
    /// errors from `memfd_create`, the writes, sealing or mapping (e.g.
    /// `ENOMEM`). The caller keeps the pieces then.
    pub(crate) fn from_pieces(pieces: &[Bytes], len: usize) -> io::Result<FileBody> {
        if OPEN.fetch_add(1, Ordering::Relaxed) >= file_budget() {
            OPEN.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "memfd body budget used up",
            ));
        }
        let slot = Slot;
        let fd = rustix::fs::memfd_create(
            "proxy-cache-body",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        for p in pieces {
            file.write_all(p)?;
        }
        let written = file.metadata()?.len();
        if written != len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("memfd holds {written} bytes, expected {len}"),
            ));
        }
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        // SAFETY: the memfd is sealed against writes, shrinking and growing
        // (and against removing those seals), so the mapped bytes can
        // neither change nor disappear while the mapping lives.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(FileBody {
            file: Arc::new(file),
            map: Bytes::from_owner(map),
            _slot: slot,
        })
    }

    /// The body's bytes (the read-only mapping).
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.map
    }

    /// The memfd, for sendfile(2).
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Bodies in memfds now.
    #[cfg(test)]
    pub(crate) fn open_count() -> usize {
        OPEN.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn pieces_are_joined_sealed_and_readable_both_ways() {
        let a = Bytes::from(vec![1u8; 100_000]);
        let b = Bytes::from(vec![2u8; 50_000]);
        let body = FileBody::from_pieces(&[a.clone(), b.clone()], 150_000).unwrap();
        assert!(FileBody::open_count() >= 1);
        let map = body.bytes();
        assert_eq!(map.len(), 150_000);
        assert_eq!(&map[..100_000], &a[..]);
        assert_eq!(&map[100_000..], &b[..]);
        let mut buf = [0u8; 4];
        body.file().read_exact_at(&mut buf, 99_998).unwrap();
        assert_eq!(buf, [1, 1, 2, 2]);
        // sealed: the body can no longer change
        let mut f: &File = body.file();
        assert!(f.write_all(b"x").is_err());
        assert!(body.file().set_len(10).is_err());
    }

    #[test]
    fn a_wrong_length_is_refused() {
        let a = Bytes::from_static(b"abc");
        assert!(FileBody::from_pieces(&[a], 4).is_err());
    }
}
