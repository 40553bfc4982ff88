//! Where entry files live, how their size is counted, and the bridge from
//! `std::io` on the blocking pool to the cache's errors.
//!
//! An entry whose combined digest spells `…9b7c` in hex lives at
//! `<dir>/c/b7/<32 hex digits>`: the last hex digit names the first level,
//! the two before it the second (nginx's `levels=1:2`). At most 16 × 256 =
//! 4,096 leaf directories, so no directory grows past a few thousand files
//! for a few million entries. Fills are written under `<dir>/tmp/`, on the
//! same filesystem, so the final `rename` is atomic.

use std::io;
use std::path::{Path, PathBuf};

use proxy_core::error::{Error, ErrorType, Result};

use crate::key::{hex, HashBinary};

/// The directory of fills in progress, under the cache directory.
pub(crate) const TMP_DIR: &str = "tmp";

/// The filesystem block an entry's size is rounded up to: what `du` counts.
pub(crate) const BLOCK: u64 = 4096;

/// Bytes an entry file of `len` bytes takes on disk: `len` rounded up to
/// whole [`BLOCK`]s.
pub(crate) fn on_disk(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// The path of the entry file for `digest` under `dir`.
pub(crate) fn entry_path(dir: &Path, digest: &HashBinary) -> PathBuf {
    let name = hex(digest);
    // hex() always returns 32 ASCII characters
    let level1 = &name[31..32];
    let level2 = &name[29..31];
    dir.join(level1).join(level2).join(name)
}

/// Create the entry's leaf directory (and its first-level one) if missing,
/// taking a [`BLOCK`] of the budget for each directory created through
/// `reserve`, and giving it back through `release` if another thread
/// created it first. Blocking; the caller holds the leaf directory's `io`
/// lock.
///
/// # Errors
/// `FileWriteError` when the budget has no room for a directory,
/// `FileCreateError` when it cannot be created.
pub(crate) fn make_dirs(
    entry: &Path,
    reserve: impl Fn(u64) -> bool,
    release: impl Fn(u64),
) -> Result<()> {
    let Some(leaf) = entry.parent() else {
        return Ok(());
    };
    for dir in [leaf.parent(), Some(leaf)].into_iter().flatten() {
        if dir.is_dir() {
            continue;
        }
        if !reserve(BLOCK) {
            return Error::e_explain(
                ErrorType::FileWriteError,
                format!("disk cache: no room in the budget for {}", dir.display()),
            );
        }
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => release(BLOCK),
            Err(e) => {
                release(BLOCK);
                return Err(io_err(ErrorType::FileCreateError, "creating", dir, e));
            }
        }
    }
    Ok(())
}

/// Remove the entry's leaf directory if it is now empty; whether it was
/// removed (its [`BLOCK`] is then free). First-level directories (16 at
/// most) stay. Blocking; the caller holds the leaf directory's `io` lock.
pub(crate) fn remove_empty_leaf(entry: &Path) -> bool {
    entry
        .parent()
        .is_some_and(|leaf| std::fs::remove_dir(leaf).is_ok())
}

/// Whether `name` is a first-level (`len == 1`) or second-level
/// (`len == 2`) directory name, or an entry file name (`len == 32`): that
/// many lowercase hex digits.
pub(crate) fn is_hex_name(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parse an entry file name back into its digest.
pub(crate) fn digest_of_name(name: &str) -> Option<HashBinary> {
    if !is_hex_name(name, 32) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Wrap an I/O error with what was being done and to which file.
pub(crate) fn io_err(kind: ErrorType, what: &str, path: &Path, e: io::Error) -> Box<Error> {
    Error::because(kind, format!("disk cache: {what} {}", path.display()), e)
}

/// Run `f` on tokio's blocking pool, so file I/O never stalls an async
/// worker thread.
///
/// # Errors
/// `f`'s error, or `InternalError` when the blocking task panicked or the
/// runtime is shutting down.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Error::e_because(ErrorType::InternalError, "disk cache: blocking task", e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_use_levels_1_2_from_the_end() {
        let mut d = [0u8; 16];
        d[14] = 0x9b;
        d[15] = 0x7c;
        let p = entry_path(Path::new("/c"), &d);
        let name = hex(&d);
        assert_eq!(p, Path::new("/c/c/b7").join(&name));
        assert_eq!(digest_of_name(&name), Some(d));
        assert_eq!(digest_of_name("zz"), None);
    }

    #[test]
    fn sizes_round_up_to_blocks() {
        assert_eq!(on_disk(0), 0);
        assert_eq!(on_disk(1), 4096);
        assert_eq!(on_disk(4096), 4096);
        assert_eq!(on_disk(4097), 8192);
    }
}
