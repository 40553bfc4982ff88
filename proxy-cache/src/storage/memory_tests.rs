#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use proxy_core::http::ResponseHeader;

use super::*;

fn leak() -> &'static MemCache {
    Box::leak(Box::new(MemCache::new()))
}

fn meta(tag: &str) -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).unwrap();
    h.insert_header("x-tag", tag).unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
}

fn tag(m: &CacheMeta) -> String {
    m.response_header()
        .headers
        .get("x-tag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

async fn store(cache: &'static MemCache, key: &CacheKey, tag: &str, pieces: &[&[u8]]) -> usize {
    let mut miss = cache.get_miss_handler(key, &meta(tag)).await.unwrap();
    for p in pieces {
        miss.write_body(Bytes::copy_from_slice(p)).await.unwrap();
    }
    match miss.finish().await.unwrap() {
        MissFinishType::Created(n) => n,
        other => panic!("unexpected {other:?}"),
    }
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

#[tokio::test]
async fn stored_entry_is_found_whole_with_its_meta() {
    let cache = leak();
    let key = CacheKey::new("ns", "/a", "");
    assert!(cache.lookup(&key).await.unwrap().is_none());
    let size = store(cache, &key, "one", &[b"hello ", b"world"]).await;
    assert_eq!(size, entry_size(&meta("one"), 11));
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "one");
    assert!(hit.can_seek());
    assert_eq!(hit.body_len(), Some(11));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"hello world");
    hit.finish(cache, &key).await.unwrap();
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn variants_are_separate_entries() {
    let cache = leak();
    let plain = CacheKey::new("ns", "/v", "");
    let mut variant = plain.clone();
    variant.set_variance_key([9; 16]);
    store(cache, &variant, "gzip", &[b"zz"]).await;
    assert!(cache.lookup(&plain).await.unwrap().is_none());
    let (m, _) = cache.lookup(&variant).await.unwrap().unwrap();
    assert_eq!(tag(&m), "gzip");
}

#[tokio::test]
async fn reader_started_during_fill_gets_every_piece_in_order() {
    let cache = leak();
    let key = CacheKey::new("ns", "/stream", "");
    let mut miss = cache.get_miss_handler(&key, &meta("s")).await.unwrap();
    miss.write_body(Bytes::from_static(b"first,"))
        .await
        .unwrap();
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "s");
    assert!(!hit.can_seek());
    assert_eq!(hit.body_len(), None);
    let reader = tokio::spawn(async move {
        let mut pieces = Vec::new();
        while let Some(b) = hit.read_body().await.unwrap() {
            pieces.push(b);
        }
        pieces
    });
    // let the reader consume the first piece and park on the notify
    tokio::task::yield_now().await;
    miss.write_body(Bytes::from_static(b"second,"))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    miss.write_body(Bytes::from_static(b"third")).await.unwrap();
    miss.finish().await.unwrap();
    let pieces = reader.await.unwrap();
    assert_eq!(pieces, vec!["first,", "second,", "third"]);
    // the finished entry is complete and seekable
    let (_, hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert!(hit.can_seek());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_readers_follow_one_fill_across_threads() {
    let cache = leak();
    let key = CacheKey::new("ns", "/stream-mt", "");
    let mut miss = cache.get_miss_handler(&key, &meta("s")).await.unwrap();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
        readers.push(tokio::spawn(
            async move { read_all(&mut hit).await.unwrap() },
        ));
    }
    let mut expected = Vec::new();
    for i in 0..200u32 {
        let piece = format!("{i},");
        expected.extend_from_slice(piece.as_bytes());
        miss.write_body(Bytes::from(piece)).await.unwrap();
        if i % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    miss.finish().await.unwrap();
    for r in readers {
        assert_eq!(r.await.unwrap(), expected);
    }
}

#[tokio::test]
async fn abandoned_fill_fails_its_readers_and_leaves_the_older_entry() {
    let cache = leak();
    let key = CacheKey::new("ns", "/abandon", "");
    store(cache, &key, "old", &[b"old body"]).await;
    let mut miss = cache.get_miss_handler(&key, &meta("new")).await.unwrap();
    miss.write_body(Bytes::from_static(b"partial"))
        .await
        .unwrap();
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "new", "a lookup during a fill follows the fill");
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "partial");
    let waiting = tokio::spawn(async move { hit.read_body().await });
    tokio::task::yield_now().await;
    drop(miss);
    assert!(waiting.await.unwrap().is_err());
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "old");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"old body");
}

#[tokio::test]
async fn abandoned_first_fill_leaves_nothing() {
    let cache = leak();
    let key = CacheKey::new("ns", "/abandon-first", "");
    let mut miss = cache.get_miss_handler(&key, &meta("new")).await.unwrap();
    miss.write_body(Bytes::from_static(b"partial"))
        .await
        .unwrap();
    drop(miss);
    assert!(cache.lookup(&key).await.unwrap().is_none());
    assert!(cache.is_empty());
}

#[tokio::test]
async fn finish_replaces_the_older_entry_and_old_readers_keep_theirs() {
    let cache = leak();
    let key = CacheKey::new("ns", "/replace", "");
    store(cache, &key, "v1", &[b"one"]).await;
    let (_, mut old_hit) = cache.lookup(&key).await.unwrap().unwrap();
    store(cache, &key, "v2", &[b"two!"]).await;
    assert_eq!(read_all(&mut old_hit).await.unwrap(), b"one");
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "v2");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"two!");
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn a_later_fill_wins_over_an_earlier_one_that_finishes_last() {
    let cache = leak();
    let key = CacheKey::new("ns", "/race", "");
    let mut early = cache.get_miss_handler(&key, &meta("early")).await.unwrap();
    let mut late = cache.get_miss_handler(&key, &meta("late")).await.unwrap();
    late.write_body(Bytes::from_static(b"late")).await.unwrap();
    late.finish().await.unwrap();
    early
        .write_body(Bytes::from_static(b"early"))
        .await
        .unwrap();
    early.finish().await.unwrap();
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "late");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"late");
}

/// Three pieces of 10,000 bytes (too large to be inlined): bytes 0..30000,
/// byte i is `i % 251`.
async fn big_entry(cache: &'static MemCache, key: &CacheKey) -> Vec<u8> {
    let body: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    let pieces: Vec<&[u8]> = body.chunks(10_000).collect();
    store(cache, key, "big", &pieces).await;
    body
}

#[tokio::test]
async fn seek_serves_ranges_within_and_across_pieces() {
    let cache = leak();
    let key = CacheKey::new("ns", "/seek", "");
    let body = big_entry(cache, &key).await;
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(hit.body_len(), Some(30_000));
    for (start, end) in [
        (0, Some(1)),
        (5, Some(15)),
        (9_999, Some(10_001)),
        (10_000, Some(20_000)),
        (5_000, Some(25_000)),
        (29_999, None),
        (0, None),
        (12_345, Some(12_346)),
    ] {
        hit.seek(start, end).unwrap();
        let want = &body[start..end.unwrap_or(body.len())];
        assert_eq!(read_all(&mut hit).await.unwrap(), want, "{start}..{end:?}");
    }
    // seeking backwards after a read (multipart ranges in any order)
    hit.seek(20_000, Some(20_010)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &body[20_000..20_010]);
    hit.seek(3, Some(6)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &body[3..6]);
}

#[tokio::test]
async fn seek_edges_empty_clamped_and_invalid() {
    let cache = leak();
    let key = CacheKey::new("ns", "/seek-edges", "");
    let body = big_entry(cache, &key).await;
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    // start at the end: an empty read
    hit.seek(30_000, None).unwrap();
    assert!(hit.read_body().await.unwrap().is_none());
    // an end past the body is clamped
    hit.seek(29_990, Some(40_000)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &body[29_990..]);
    // an empty range
    hit.seek(100, Some(100)).unwrap();
    assert!(hit.read_body().await.unwrap().is_none());
    assert!(hit.seek(30_001, None).is_err());
    assert!(hit.seek(10, Some(9)).is_err());
    // a one-piece body too
    let small = CacheKey::new("ns", "/seek-small", "");
    store(cache, &small, "s", &[b"0123456789"]).await;
    let (_, mut hit) = cache.lookup(&small).await.unwrap().unwrap();
    hit.seek(2, Some(5)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"234");
    hit.seek(0, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"0123456789");
}

#[tokio::test]
async fn empty_body_is_stored_and_read_as_empty() {
    let cache = leak();
    let key = CacheKey::new("ns", "/empty", "");
    store(cache, &key, "e", &[]).await;
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(hit.body_len(), Some(0));
    assert!(hit.read_body().await.unwrap().is_none());
    hit.seek(0, None).unwrap();
    assert!(hit.read_body().await.unwrap().is_none());
}

#[tokio::test]
async fn small_pieces_are_joined_and_hits_share_the_bytes() {
    let cache = leak();
    let key = CacheKey::new("ns", "/join", "");
    store(cache, &key, "j", &[b"ab", b"cd", b"ef"]).await;
    let (_, mut h1) = cache.lookup(&key).await.unwrap().unwrap();
    let (_, mut h2) = cache.lookup(&key).await.unwrap().unwrap();
    let a = h1.read_body().await.unwrap().unwrap();
    let b = h2.read_body().await.unwrap().unwrap();
    assert_eq!(a, "abcdef");
    assert_eq!(a.as_ptr(), b.as_ptr(), "two hits read the same bytes");
    assert!(h1.read_body().await.unwrap().is_none());
}

#[tokio::test]
async fn update_meta_keeps_the_body() {
    let cache = leak();
    let key = CacheKey::new("ns", "/update", "");
    assert!(!cache.update_meta(&key, &meta("x")).await.unwrap());
    store(cache, &key, "before", &[b"body"]).await;
    assert!(cache.update_meta(&key, &meta("after")).await.unwrap());
    let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(tag(&m), "after");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
}

#[tokio::test]
async fn update_meta_shares_a_large_body_and_keeps_its_file() {
    let cache = leak();
    // one in pieces (over 16 KiB) and one in a memfd (128 KiB and more)
    for (path, len) in [("/pieces", INLINE_MAX + 10), ("/file", FILE_BODY_MIN + 10)] {
        let key = CacheKey::new("ns", path, "");
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        store(cache, &key, "before", &[&body]).await;
        assert!(cache.update_meta(&key, &meta("after")).await.unwrap());
        let (m, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
        assert_eq!(tag(&m), "after");
        assert_eq!(hit.body_len(), Some(len));
        assert_eq!(hit.body_file().is_some(), len >= FILE_BODY_MIN, "{path}");
        assert_eq!(read_all(&mut hit).await.unwrap(), body);
    }
}

#[tokio::test]
async fn purge_removes_the_entry_and_an_invalidation_stops_a_fill() {
    let cache = leak();
    let key = CacheKey::new("ns", "/purge", "tag");
    store(cache, &key, "p", &[b"x"]).await;
    assert!(cache
        .purge(&key.to_compact(), PurgeType::Eviction)
        .await
        .unwrap());
    assert!(cache.lookup(&key).await.unwrap().is_none());
    assert!(!cache
        .purge(&key.to_compact(), PurgeType::Invalidation)
        .await
        .unwrap());

    // a fill in progress during an invalidation is not stored
    let mut miss = cache.get_miss_handler(&key, &meta("f")).await.unwrap();
    miss.write_body(Bytes::from_static(b"fill")).await.unwrap();
    let (_, mut reader) = cache.lookup(&key).await.unwrap().unwrap();
    assert!(cache
        .purge(&key.to_compact(), PurgeType::Invalidation)
        .await
        .unwrap());
    assert!(cache.lookup(&key).await.unwrap().is_none());
    miss.finish().await.unwrap();
    assert!(cache.lookup(&key).await.unwrap().is_none());
    // the reader that followed the fill still gets the whole body
    assert_eq!(read_all(&mut reader).await.unwrap(), b"fill");

    // an eviction leaves a fill in progress alone
    let mut miss = cache.get_miss_handler(&key, &meta("g")).await.unwrap();
    cache
        .purge(&key.to_compact(), PurgeType::Eviction)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"kept")).await.unwrap();
    miss.finish().await.unwrap();
    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_on_one_key_all_read_the_whole_body() {
    let cache = leak();
    let key = CacheKey::new("ns", "/hot", "");
    let body = big_entry(cache, &key).await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let key = key.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
                assert_eq!(read_all(&mut hit).await.unwrap(), body);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn storage_is_downcastable() {
    let cache = leak();
    let dynamic: &dyn Storage = cache;
    assert!(dynamic.as_any().downcast_ref::<MemCache>().is_some());
    assert!(cache.support_streaming_partial_write());
}

#[tokio::test]
async fn fill_reader_behind_the_writer_reads_the_rest_from_the_entry() {
    let cache = leak();
    // a small body (inlined at finish) and a large one (kept in pieces)
    for (path, piece) in [("/behind-small", 5usize), ("/behind-large", 10_000)] {
        let key = CacheKey::new("ns", path, "");
        let body: Vec<u8> = (0..piece * 3).map(|i| (i % 251) as u8).collect();
        let mut miss = cache.get_miss_handler(&key, &meta("b")).await.unwrap();
        miss.write_body(Bytes::copy_from_slice(&body[..piece]))
            .await
            .unwrap();
        let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
        let first = hit.read_body().await.unwrap().unwrap();
        assert_eq!(first, &body[..piece]);
        miss.write_body(Bytes::copy_from_slice(&body[piece..2 * piece]))
            .await
            .unwrap();
        miss.write_body(Bytes::copy_from_slice(&body[2 * piece..]))
            .await
            .unwrap();
        miss.finish().await.unwrap();
        let rest = read_all(&mut hit).await.unwrap();
        assert_eq!(rest, &body[piece..], "{path}");
    }
}

#[tokio::test]
async fn a_large_body_is_kept_in_a_file_that_hits_can_send() {
    use std::os::unix::fs::FileExt;
    let cache = leak();
    let key = CacheKey::new("ns", "/large", "");
    let a: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let b = vec![7u8; FILE_BODY_MIN];
    // a reader following the fill sees the same bytes before and after the
    // body moves into its memfd
    let mut miss = cache.get_miss_handler(&key, &meta("big")).await.unwrap();
    miss.write_body(Bytes::from(a.clone())).await.unwrap();
    let (_, mut follower) = cache.lookup(&key).await.unwrap().unwrap();
    assert!(follower.body_file().is_none(), "no file while filling");
    assert_eq!(follower.read_body().await.unwrap().unwrap(), a);
    miss.write_body(Bytes::from(b.clone())).await.unwrap();
    miss.finish().await.unwrap();
    let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
    assert_eq!(read_all(&mut follower).await.unwrap(), b);

    let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    let f = hit.body_file().unwrap();
    assert_eq!((f.offset, f.len), (0, whole.len() as u64));
    let mut in_file = vec![0u8; whole.len()];
    f.file.read_exact_at(&mut in_file, 0).unwrap();
    assert!(in_file == whole);
    // a range: the file range follows the seek, and read_body agrees
    hit.seek(99_990, Some(100_020)).unwrap();
    let f = hit.body_file().unwrap();
    assert_eq!((f.offset, f.len), (99_990, 30));
    assert_eq!(read_all(&mut hit).await.unwrap(), &whole[99_990..100_020]);
    // smaller bodies stay in memory
    let small = CacheKey::new("ns", "/small", "");
    store(cache, &small, "s", &[&vec![1u8; FILE_BODY_MIN - 1]]).await;
    let (_, hit) = cache.lookup(&small).await.unwrap().unwrap();
    assert!(hit.body_file().is_none());
}

#[test]
fn an_entry_is_a_thin_pointer_to_its_meta_and_body() {
    assert_eq!(std::mem::size_of::<Stored>(), 8);
    // the count, the large body and the length: a word each
    assert_eq!(std::mem::size_of::<Option<Arc<Large>>>(), 8);
    let e = Stored::of(b"abc", &[&b"de"[..], &b"fg"[..]], None);
    assert_eq!(
        (e.meta_bytes(), e.inline_body()),
        (&b"abc"[..], &b"defg"[..])
    );
    assert_eq!(e.body_len(), 4);
    assert_eq!(e.size(), 7 + ENTRY_OVERHEAD);
    let empty = Stored::of(b"", &[] as &[&[u8]], None);
    assert_eq!((empty.meta_bytes(), empty.body_len()), (&b""[..], 0));
}

#[tokio::test]
async fn an_entry_keeps_its_meta_serialized_and_reads_it_back_whole() {
    let cache = leak();
    let key = CacheKey::new("ns", "/m", "");
    let mut m = meta("m");
    m.set_variance(Some([7; 16]));
    let mut miss = cache.get_miss_handler(&key, &m).await.unwrap();
    miss.write_body(Bytes::from_static(b"body")).await.unwrap();
    let MissFinishType::Created(size) = miss.finish().await.unwrap() else {
        panic!("a new entry");
    };
    assert_eq!(size, m.serialize().len() + 4 + ENTRY_OVERHEAD);
    let (back, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(back.serialize(), m.serialize());
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "body");
    // a new meta keeps the body
    let newer = meta("newer");
    assert!(cache.update_meta(&key, &newer).await.unwrap());
    let (back, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
    assert_eq!(back.serialize(), newer.serialize());
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "body");
}
