//! What [`super::DiskCache::new`] does with a directory it finds: remove
//! leftover temporary files, and index every whole entry file (deleting the
//! ones that are not whole). Blocking: runs once, at start.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use crate::key::HashBinary;

use super::hit::{open_entry, OpenOutcome};
use super::index::Indexed;
use super::layout::{digest_of_name, is_hex_name, on_disk, BLOCK, TMP_DIR};

/// What the scan found.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// Whole entries, oldest (by modification time) first.
    pub(crate) entries: Vec<(HashBinary, Indexed)>,
    /// Leftover temporary files removed.
    pub(crate) temp_removed: usize,
    /// Entry files removed because they were not whole.
    pub(crate) corrupt_removed: usize,
    /// Blocks taken by the directories kept (the cache directory, `tmp/`,
    /// first-level and non-empty leaf directories), in bytes.
    pub(crate) dir_bytes: u64,
}

/// Empty `<dir>/tmp` (creating it), then index `<dir>/?/??/<32 hex>`.
/// Files and directories with other names are left alone. I/O errors on
/// single files are logged and the file skipped.
///
/// # Errors
/// The cache directory itself cannot be read.
pub(crate) fn scan(dir: &Path) -> io::Result<Scanned> {
    let mut out = Scanned::default();
    let tmp = dir.join(TMP_DIR);
    if let Ok(leftovers) = fs::read_dir(&tmp) {
        for e in leftovers.flatten() {
            match fs::remove_file(e.path()) {
                Ok(()) => out.temp_removed += 1,
                Err(err) => log::warn!("disk cache: removing {}: {err}", e.path().display()),
            }
        }
    }
    if let Err(e) = fs::create_dir_all(&tmp) {
        log::warn!(
            "disk cache: cannot create {} ({e}); nothing will be stored",
            tmp.display()
        );
    }
    let mut found: Vec<(SystemTime, HashBinary, Indexed)> = Vec::new();
    out.dir_bytes = 2 * BLOCK;
    for level1 in fs::read_dir(dir)?.flatten() {
        if !name_is(&level1, 1) {
            continue;
        }
        let Ok(level2s) = fs::read_dir(level1.path()) else {
            continue;
        };
        out.dir_bytes += BLOCK;
        for level2 in level2s.flatten() {
            if !name_is(&level2, 2) {
                continue;
            }
            let Ok(files) = fs::read_dir(level2.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let Some(digest) = name.to_str().and_then(digest_of_name) else {
                    continue;
                };
                let path = file.path();
                match open_entry(&path, Some(&digest)) {
                    Ok(OpenOutcome::Found(opened)) => {
                        let mtime = opened
                            .file
                            .metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        let entry = Indexed {
                            key: opened.header.key.clone(),
                            size: on_disk(opened.header.file_len()),
                            fresh_until: opened.meta.fresh_until(),
                            rank: 0,
                        };
                        found.push((mtime, digest, entry));
                    }
                    Ok(OpenOutcome::Missing) => {}
                    Ok(OpenOutcome::Corrupt { reason, .. }) => {
                        log::warn!("disk cache: removing {}: {reason}", path.display());
                        if fs::remove_file(&path).is_ok() {
                            out.corrupt_removed += 1;
                        }
                    }
                    Err(e) => log::warn!("disk cache: skipping {}: {e}", path.display()),
                }
            }
            // an empty leaf directory is removed; a kept one is counted
            if fs::remove_dir(level2.path()).is_err() {
                out.dir_bytes += BLOCK;
            }
        }
    }
    found.sort_by_key(|(mtime, ..)| *mtime);
    out.entries = found.into_iter().map(|(_, d, e)| (d, e)).collect();
    Ok(out)
}

fn name_is(entry: &fs::DirEntry, len: usize) -> bool {
    entry.file_type().is_ok_and(|t| t.is_dir())
        && entry
            .file_name()
            .to_str()
            .is_some_and(|n| is_hex_name(n, len))
}
