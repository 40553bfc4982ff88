//! Whether a byte range of a file is wholly in the kernel's page cache,
//! with cachestat(2) (Linux 6.5+): sendfile(2) of such a range from an
//! async worker never waits for the disk.

use std::fs::File;
use std::os::fd::AsRawFd;

/// cachestat(2)'s number: the same on every architecture (the syscall
/// table was unified before it was added).
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page holding bytes `offset..offset + len` of `file` is in
/// the page cache (dirty pages count: they are in memory). `false` when the
/// kernel cannot say (no cachestat(2): before Linux 6.5, or refused), so a
/// caller falls back to reading on the blocking pool. An empty range is
/// cached.
pub(crate) fn fully_cached(file: &File, offset: u64, len: u64) -> bool {
    if len == 0 {
        return true;
    }
    let page = rustix::param::page_size() as u64;
    let first = offset / page;
    let last = (offset + len - 1) / page;
    let range = CachestatRange { off: offset, len };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat(2) reads `range` and writes `stat`, both live
    // `#[repr(C)]` values of the kernel's layout, and takes a plain fd that
    // `file` keeps open for the call; it touches no other memory.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    r == 0 && stat.nr_cache > last - first
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_just_written_is_cached_and_an_empty_range_always() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 3 * 4096 + 10]).unwrap();
        let f = File::open(&path).unwrap();
        assert!(fully_cached(&f, 0, 0));
        // pages just written are in the page cache (dirty or clean); on a
        // kernel without cachestat(2) the answer is a safe `false`
        let supported = fully_cached(&f, 0, 1);
        if supported {
            assert!(fully_cached(&f, 100, 3 * 4096));
            assert!(fully_cached(&f, 0, 3 * 4096 + 10));
        }
    }
}
