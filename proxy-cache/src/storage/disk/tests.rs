#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use proxy_core::http::ResponseHeader;

use super::*;
use crate::eviction::lru::Manager as Lru;
use crate::storage::MissFinishType;

fn open(dir: &Path, max: u64) -> &'static DiskCache {
    Box::leak(Box::new(DiskCache::new(dir, max).unwrap()))
}

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

async fn store(cache: &'static DiskCache, key: &CacheKey, tag: &str, body: &[u8]) -> usize {
    let mut miss = cache.get_miss_handler(key, &meta(tag)).await.unwrap();
    for piece in body.chunks(1000) {
        miss.write_body(Bytes::copy_from_slice(piece))
            .await
            .unwrap();
    }
    match miss.finish().await.unwrap() {
        MissFinishType::Created(n) => n,
        other => panic!("unexpected {other:?}"),
    }
}

/// A cache in a new directory holding one entry, `/TAG` with body `data`:
/// the directory (removed when dropped), the cache, the key and the
/// entry's file.
async fn one_entry(
    tag: &str,
    data: &[u8],
) -> (tempfile::TempDir, &'static DiskCache, CacheKey, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", format!("/{tag}"), "");
    store(cache, &key, tag, data).await;
    let path = entry_path(dir.path(), &key.combined_bin());
    (dir, cache, key, path)
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// What the cache should count for `dir`: every file's length in 4 KiB
/// blocks, and a block per directory (the cache directory included).
fn du(dir: &Path) -> u64 {
    let mut total = layout::BLOCK;
    for e in fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            du(&e.path())
        } else {
            on_disk(m.len())
        };
    }
    total
}

/// Files under `dir/tmp`.
fn temp_files(dir: &Path) -> usize {
    fs::read_dir(dir.join(TMP_DIR)).map_or(0, |d| d.count())
}

/// [`temp_files`] once an abandoned fill's temporary file is gone: a
/// dropped miss handler deletes it on the blocking pool, not before its
/// drop returns. Waits at most 5 s.
async fn temp_files_settled(dir: &Path) -> usize {
    for _ in 0..500 {
        if temp_files(dir) == 0 {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    temp_files(dir)
}

#[tokio::test]
async fn filled_entry_is_found_whole_and_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/a", "");
    assert!(cache.lookup(&key).await.unwrap().is_none());
    let data = body(300_000);
    let size = store(cache, &key, "one", &data).await;
    assert_eq!(cache.used_bytes(), du(dir.path()));
    assert_eq!(size % 4096, 0);
    assert!(entry_path(dir.path(), &key.combined_bin()).is_file());
    assert_eq!(temp_files_settled(dir.path()).await, 0);
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "one");
    assert_eq!(hit.body_len(), Some(300_000));
    assert_eq!(read_all(&mut hit).await.unwrap(), data);
    // ranges, inside the prefetched part and past it
    for (start, end) in [(10, Some(20)), (70_000, Some(200_001)), (299_999, None)] {
        hit.seek(start, end).unwrap();
        let got = read_all(&mut hit).await.unwrap();
        assert_eq!(
            got,
            data[start..end.unwrap_or(data.len())],
            "{start}..{end:?}"
        );
    }
    assert!(hit.seek(300_001, None).is_err());
}

#[tokio::test]
async fn a_complete_entry_offers_its_body_as_a_file_range_and_a_fill_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/f", "");
    let data = body(200_000);
    store(cache, &key, "f", &data).await;
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    let read_range = |f: crate::storage::BodyFile| {
        let mut out = vec![0; f.len as usize];
        f.file.read_exact_at(&mut out, f.offset).unwrap();
        out
    };
    assert_eq!(read_range(hit.body_file().unwrap()), data);
    hit.seek(70_000, Some(150_000)).unwrap();
    assert_eq!(read_range(hit.body_file().unwrap()), data[70_000..150_000]);
    // what read_body already returned is not offered again
    hit.seek(0, None).unwrap();
    let first = hit.read_body().await.unwrap().unwrap();
    let rest = read_range(hit.body_file().unwrap());
    assert_eq!([&first[..], &rest[..]].concat(), data);
    // a range inside the bytes read with the header is served from memory
    hit.seek(100, Some(1100)).unwrap();
    assert!(hit.body_file().is_none(), "read with the header");
    assert_eq!(hit.read_body().await.unwrap().unwrap(), data[100..1100]);
    let small = CacheKey::new("ns", "/s", "");
    store(cache, &small, "s", &data[..1024]).await;
    let (_, mut hit) = cache.lookup(&small).await.unwrap().unwrap();
    assert!(hit.body_file().is_none(), "a small body is in memory");
    assert_eq!(hit.read_body().await.unwrap().unwrap(), data[..1024]);

    let filling = CacheKey::new("ns", "/g", "");
    let mut miss = cache.get_miss_handler(&filling, &meta("g")).await.unwrap();
    miss.write_body(Bytes::from_static(b"partial"))
        .await
        .unwrap();
    let (_, hit) = cache.lookup(&filling).await.unwrap().unwrap();
    assert!(hit.body_file().is_none(), "a growing file is not offered");
    miss.finish().await.unwrap();
}

#[tokio::test]
async fn an_entry_in_the_kernel_caches_opens_without_blocking_a_bad_one_does_not() {
    let data = body(5000);
    let (dir, cache, key, path) = one_entry("c", &data).await;
    let digest = key.combined_bin();
    let opened = found(open_entry_cached(&path, &digest)).expect("just written: cached");
    assert_eq!(tag(&opened.meta), "c");
    assert_eq!(&opened.prefetch[..], &data[..]);

    let none = CacheKey::new("ns", "/none", "").combined_bin();
    assert!(found(open_entry_cached(&entry_path(dir.path(), &none), &none)).is_none());
    assert!(
        found(open_entry_cached(&path, &none)).is_none(),
        "the file names another key"
    );
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    assert!(
        found(open_entry_cached(&path, &digest)).is_none(),
        "not whole"
    );
    assert!(
        cache.lookup(&key).await.unwrap().is_none(),
        "the blocking path drops it"
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn reading_an_entry_leaves_its_access_time_alone() {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let (_dir, cache, key, path) = one_entry("atime", &body(100)).await;
    // an access time before the modification time: under `relatime` the
    // next read would update it, unless the file is opened O_NOATIME
    let old = Timespec {
        tv_sec: 1_000_000,
        tv_nsec: 0,
    };
    let now = Timespec {
        tv_sec: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: old,
        last_modification: now,
    };
    utimensat(CWD, &path, &times, AtFlags::empty()).unwrap();
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), body(100));
    let (_, mut hit) = blocking_lookup(cache, &key).await;
    assert_eq!(read_all(&mut hit).await.unwrap(), body(100));
    let atime = fs::metadata(&path).unwrap().atime();
    assert_eq!(atime, 1_000_000, "the access time was updated");
}

/// A lookup through the blocking path (`open_entry`), as when the
/// non-blocking open is not possible.
async fn blocking_lookup(cache: &'static DiskCache, key: &CacheKey) -> (CacheMeta, HitHandler) {
    let path = entry_path(&cache.dir, &key.combined_bin());
    let digest = key.combined_bin();
    let OpenOutcome::Found(opened) = open_entry(&path, Some(&digest)).unwrap() else {
        panic!("stored");
    };
    (opened.meta.clone(), Box::new(hit::FileHit::new(opened)))
}

fn found(c: CachedOpen) -> Option<hit::Opened> {
    match c {
        CachedOpen::Found(o) => Some(o),
        _ => None,
    }
}

#[tokio::test]
async fn an_entry_out_of_the_page_cache_is_read_on_io_uring_and_served_whole() {
    let data = body(20_000);
    let (_dir, cache, key, path) = one_entry("cold", &data).await;
    let digest = key.combined_bin();
    // written back, then dropped from the page cache (where the file
    // system honours the advice: not on tmpfs)
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    drop(f);
    match open_entry_cached(&path, &digest) {
        CachedOpen::WouldBlock(file, stat) => {
            let read = open_read_entry(file, stat, &digest).await;
            if uring::available() {
                let opened = found(read).expect("read on io_uring");
                assert_eq!(tag(&opened.meta), "cold");
                assert_eq!(&opened.prefetch[..], &data[..]);
            } else {
                assert!(found(read).is_none(), "the blocking path's turn");
            }
        }
        CachedOpen::Found(opened) => assert_eq!(&opened.prefetch[..], &data[..]),
        CachedOpen::No => panic!("opened without blocking just after it was written"),
    }
    // whichever path serves it, the hit is whole
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "cold");
    let mut got = Vec::new();
    while let Some(b) = hit.read_body().await.unwrap() {
        got.extend_from_slice(&b);
    }
    assert_eq!(got, data);
}

#[tokio::test]
async fn a_reader_during_a_fill_streams_the_body_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/s", "");
    let mut miss = cache.get_miss_handler(&key, &meta("s")).await.unwrap();
    miss.write_body(Bytes::from_static(b"first "))
        .await
        .unwrap();
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert!(!hit.can_seek());
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "first ");
    let reader = tokio::spawn(async move { read_all(&mut hit).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    miss.write_body(Bytes::from_static(b"second"))
        .await
        .unwrap();
    miss.finish().await.unwrap();
    assert_eq!(reader.await.unwrap(), b"second");
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"first second");
}

#[tokio::test]
async fn an_abandoned_fill_fails_its_readers_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/x", "");
    let mut miss = cache.get_miss_handler(&key, &meta("x")).await.unwrap();
    miss.write_body(Bytes::from_static(b"part")).await.unwrap();
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    drop(miss);
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "part");
    assert!(hit.read_body().await.is_err(), "never a whole-looking body");
    assert!(cache.lookup(&key).await.unwrap().is_none());
    assert_eq!(
        cache.used_bytes(),
        2 * layout::BLOCK,
        "the directory and tmp/"
    );
    // the temporary file is deleted on the blocking pool
    for _ in 0..100 {
        if temp_files(dir.path()) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(temp_files_settled(dir.path()).await, 0);
    assert!(!entry_path(dir.path(), &key.combined_bin()).exists());
}

#[tokio::test]
async fn a_new_cache_on_the_same_dir_finds_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let mut varied = CacheKey::new("ns", "/v", "tag");
    varied.set_variance_key([5; 16]);
    let plain = CacheKey::new("ns", "/p", "");
    store(cache, &plain, "p", &body(10)).await;
    // modification times order the entries at start; the clock behind them
    // ticks in milliseconds on some filesystems
    tokio::time::sleep(Duration::from_millis(30)).await;
    store(cache, &varied, "v", &body(5000)).await;
    let used = cache.used_bytes();

    let again = open(dir.path(), 1 << 30);
    assert_eq!(again.len(), 2);
    assert_eq!(again.used_bytes(), used);
    let entries = again.entries();
    assert_eq!(entries[0].0, plain.to_compact(), "oldest first");
    assert_eq!(entries[1].0, varied.to_compact(), "digests and tag rebuilt");
    let (m, mut hit) = again.lookup(&varied).await.unwrap().unwrap();
    assert_eq!(tag(&m), "v");
    assert_eq!(read_all(&mut hit).await.unwrap(), body(5000));
}

#[tokio::test]
async fn leftover_temporary_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/t", "");
    let mut miss = cache.get_miss_handler(&key, &meta("t")).await.unwrap();
    miss.write_body(Bytes::from(body(9000))).await.unwrap();
    // a crash: the handler is never finished nor dropped
    std::mem::forget(miss);
    assert_eq!(temp_files(dir.path()), 1);
    let again = open(dir.path(), 1 << 30);
    assert_eq!(temp_files_settled(dir.path()).await, 0);
    assert!(again.is_empty());
    assert!(again.lookup(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_truncated_file_is_absent_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/cut", "");
    store(cache, &key, "c", &body(20_000)).await;
    let path = entry_path(dir.path(), &key.combined_bin());
    let len = fs::metadata(&path).unwrap().len();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    assert!(cache.lookup(&key).await.unwrap().is_none());
    assert!(!path.exists());
    assert!(
        !path.parent().unwrap().exists(),
        "the empty leaf directory is removed"
    );
    assert_eq!(cache.used_bytes(), du(dir.path()));
    assert!(cache.is_empty());
    // and at start
    store(cache, &key, "c", &body(20_000)).await;
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    let again = open(dir.path(), 1 << 30);
    assert!(again.is_empty());
    assert!(!path.exists());
}

#[tokio::test]
async fn purge_deletes_the_file_and_stops_a_fill() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/p", "");
    store(cache, &key, "p", b"x").await;
    let path = entry_path(dir.path(), &key.combined_bin());
    assert!(path.exists());
    assert!(cache
        .purge(&key.to_compact(), PurgeType::Invalidation)
        .await
        .unwrap());
    assert!(!path.exists());
    assert!(cache.lookup(&key).await.unwrap().is_none());
    assert!(!cache
        .purge(&key.to_compact(), PurgeType::Invalidation)
        .await
        .unwrap());
    // an invalidation during a fill: the fill is not stored
    let mut miss = cache.get_miss_handler(&key, &meta("p")).await.unwrap();
    miss.write_body(Bytes::from_static(b"y")).await.unwrap();
    assert!(cache
        .purge(&key.to_compact(), PurgeType::Invalidation)
        .await
        .unwrap());
    miss.finish().await.unwrap();
    assert!(cache.lookup(&key).await.unwrap().is_none());
    assert_eq!(temp_files_settled(dir.path()).await, 0);
    assert_eq!(cache.used_bytes(), du(dir.path()));
}

#[tokio::test]
async fn update_meta_keeps_the_body_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/u", "");
    assert!(!cache.update_meta(&key, &meta("none")).await.unwrap());
    store(cache, &key, "old", &body(100_000)).await;
    assert!(cache
        .update_meta(&key, &meta("a-much-longer-new-tag"))
        .await
        .unwrap());
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "a-much-longer-new-tag");
    assert_eq!(read_all(&mut hit).await.unwrap(), body(100_000));
    assert_eq!(temp_files_settled(dir.path()).await, 0);
    let again = open(dir.path(), 1 << 30);
    let (m, _) = again.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "a-much-longer-new-tag");
}

#[tokio::test]
async fn a_fill_past_the_budget_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 36 * 1024);
    let small = CacheKey::new("ns", "/small", "");
    store(cache, &small, "s", &body(10_000)).await;
    let big = CacheKey::new("ns", "/big", "");
    let mut miss = cache.get_miss_handler(&big, &meta("b")).await.unwrap();
    let mut failed = false;
    for piece in body(100_000).chunks(8192) {
        if miss
            .write_body(Bytes::copy_from_slice(piece))
            .await
            .is_err()
        {
            failed = true;
            break;
        }
        assert!(cache.used_bytes() <= 36 * 1024);
    }
    assert!(failed, "the budget stops the fill");
    drop(miss);
    assert!(cache.lookup(&big).await.unwrap().is_none());
    assert!(cache.lookup(&small).await.unwrap().is_some());
    assert_eq!(temp_files_settled(dir.path()).await, 0);
    // the directory, tmp/, two levels of directories and a 3-block entry
    assert_eq!(cache.used_bytes(), 7 * 4096);
    assert_eq!(cache.used_bytes(), du(dir.path()));
}

#[tokio::test]
async fn admit_existing_fills_an_eviction_manager_and_deletes_what_it_evicts() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let mut keys = Vec::new();
    for i in 0..10 {
        let key = CacheKey::new("ns", format!("/{i}"), "");
        store(cache, &key, "e", &body(5000)).await; // 8 KiB on disk each
        keys.push(key);
        tokio::time::sleep(Duration::from_millis(15)).await; // distinct mtimes
    }
    let again = open(dir.path(), 1 << 30);
    assert_eq!(again.used_bytes(), du(dir.path()));
    let lru = Lru::new(5 * 8192);
    assert_eq!(again.admit_existing(&lru), 10);
    assert_eq!(lru.total_items(), 5);
    assert_eq!(again.len(), 5);
    assert_eq!(again.used_bytes(), du(dir.path()));
    // the oldest went first
    assert!(again.lookup(&keys[0]).await.unwrap().is_none());
    assert!(again.lookup(&keys[9]).await.unwrap().is_some());
}

#[tokio::test]
async fn a_read_only_tmp_makes_fills_fail_but_hits_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let key = CacheKey::new("ns", "/ro", "");
    store(cache, &key, "r", b"kept").await;
    // a file where tmp/ should be: no temporary file can be created
    // (works as root too, unlike chmod)
    fs::remove_dir_all(dir.path().join(TMP_DIR)).unwrap();
    fs::write(dir.path().join(TMP_DIR), b"").unwrap();
    let other = CacheKey::new("ns", "/new", "");
    let before = cache.used_bytes();
    assert!(cache.get_miss_handler(&other, &meta("n")).await.is_err());
    assert_eq!(cache.used_bytes(), before, "nothing left reserved");
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"kept");
}
