//! A file's bytes on an async worker, only when the kernel's page cache
//! holds them: whether a byte range is wholly cached, with cachestat(2)
//! (Linux 6.5+), so that sendfile(2) of it never waits for the disk; and a
//! read that returns `WouldBlock` instead of waiting, with preadv2(2) and
//! `RWF_NOWAIT` (Linux 4.14+).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use bytes::Bytes;

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

/// `n` bytes of `file` from byte `at`, read on the calling thread only if
/// all of them are in the page cache: preadv2(2) with `RWF_NOWAIT`, into a
/// buffer that is not zeroed first (a 1 MiB body read in 128 KiB pieces
/// would otherwise be written twice).
///
/// # Errors
/// `WouldBlock` when some bytes are not cached (the caller reads them
/// where it may wait), `UnexpectedEof` when the file ends before `at + n`,
/// or the call's error (`EOPNOTSUPP` from a file system without the flag).
pub(crate) fn read_cached(file: &File, at: u64, n: usize) -> io::Result<Bytes> {
    let mut buf = Vec::<u8>::with_capacity(n);
    while buf.len() < n {
        let done = buf.len();
        let offset = i64::try_from(at + done as u64)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let spare = buf.spare_capacity_mut();
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        // SAFETY: preadv2(2) writes at most `iov_len` bytes at `iov_base`,
        // the vector's spare capacity, which is allocated, ours alone for
        // the call, and not read before the kernel has written it; the fd
        // stays open for the call, borrowed from `file`.
        #[allow(unsafe_code)]
        let r = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        match r {
            r if r < 0 => return Err(io::Error::last_os_error()),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            r => {
                // at most `spare.len()`: the kernel wrote no more than asked
                let k = usize::try_from(r).unwrap_or(0).min(n - done);
                // SAFETY: the kernel initialized the `k` bytes after `done`
                #[allow(unsafe_code)]
                unsafe {
                    buf.set_len(done + k)
                };
            }
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_read_returns_the_bytes_and_a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = File::open(&path).unwrap();
        match read_cached(&f, 1000, 150_000) {
            Ok(got) => assert_eq!(&got[..], &data[1000..151_000]),
            // a file system without RWF_NOWAIT: the caller reads elsewhere
            Err(e) => assert_ne!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
        }
        // never a short piece returned as whole
        assert!(read_cached(&f, 190_000, 20_000).is_err());
        assert!(read_cached(&f, 0, 0).unwrap().is_empty());
    }

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
