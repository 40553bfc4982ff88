//! `MemCache` and eviction micro-benchmarks.
//!
//! - `memcache/lookup_hit_1m`: a lookup of a random one of 1,000,000 stored
//!   entries (16-byte bodies), reading its body to the end.
//! - `memcache/lookup_miss_1m`: a lookup of a key that is not stored.
//! - `memcache/hot_key_two_threads`: two threads looking up (and reading)
//!   the same key at once; the figure is the wall time of `iters` hits done
//!   by each of the two threads side by side, divided by `iters` (equal to
//!   the one-thread figure when nothing is contended).
//! - `eviction/admit`: admitting a new 1 KiB entry into a full manager of
//!   100,000 entries (so each admit evicts one), for LRU and TinyLFU.
//! - `eviction/access`: a hit recorded on a tracked entry.
//!
//! ```sh
//! cargo bench -p proxy-cache --bench lookup
//! ```
// criterion_group! makes an undocumented pub fn
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use proxy_cache::eviction::{lru, tinylfu, EvictionManager};
use proxy_cache::{CacheKey, CacheMeta, CompactCacheKey, MemCache, Storage};
use proxy_core::http::ResponseHeader;

const ENTRIES: usize = 1_000_000;
/// Keys the lookups cycle through (a fixed sample of the stored ones).
const SAMPLE: usize = 4096;

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

thread_local! {
    static WAKER: Waker = Waker::from(Arc::new(Noop));
}

/// Run a future that never waits (MemCache on a complete entry) to its end.
fn now<F: Future>(f: F) -> F::Output {
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemCache operation on a complete entry waited"),
    }
}

fn key(i: usize) -> CacheKey {
    CacheKey::new("bench", format!("/object/{i}"), "")
}

fn filled() -> &'static MemCache {
    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let now_t = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).expect("valid status");
    h.insert_header("content-type", "text/plain")
        .expect("valid header");
    let meta = CacheMeta::new(now_t + Duration::from_secs(3600), now_t, 0, 0, h);
    for i in 0..ENTRIES {
        now(async {
            let mut miss = cache
                .get_miss_handler(&key(i), &meta)
                .await
                .expect("memory");
            miss.write_body(Bytes::from_static(b"0123456789abcdef"))
                .await
                .expect("memory");
            miss.finish().await.expect("memory");
        });
    }
    cache
}

fn hit(cache: &'static MemCache, k: &CacheKey) -> usize {
    now(async {
        let (_, mut h) = cache.lookup(k).await.expect("memory").expect("stored");
        let mut n = 0;
        while let Some(b) = h.read_body().await.expect("memory") {
            n += b.len();
        }
        n
    })
}

fn memcache(c: &mut Criterion) {
    let cache = filled();
    let sample: Vec<CacheKey> = (0..SAMPLE).map(|i| key(i * (ENTRIES / SAMPLE))).collect();
    let mut g = c.benchmark_group("memcache");
    let mut i = 0;
    g.bench_function("lookup_hit_1m", |b| {
        b.iter(|| {
            i = (i + 1) % SAMPLE;
            black_box(hit(cache, &sample[i]))
        })
    });
    let absent = key(ENTRIES + 1);
    g.bench_function("lookup_miss_1m", |b| {
        b.iter(|| black_box(now(cache.lookup(&absent)).expect("memory").is_none()))
    });
    let hot = sample[7].clone();
    g.bench_function("hot_key_one_thread", |b| {
        b.iter(|| black_box(hit(cache, &hot)))
    });
    g.bench_function("hot_key_two_threads", |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(2));
            let other = {
                let barrier = barrier.clone();
                let hot = hot.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..iters {
                        black_box(hit(cache, &hot));
                    }
                })
            };
            barrier.wait();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(hit(cache, &hot));
            }
            other.join().expect("the other thread");
            start.elapsed()
        })
    });
    g.finish();
}

/// Reading a stored meta back, as every hit on an entry whose decoded meta
/// is not at hand does (a disk hit, a memory hit outside the hot table):
/// the bench origin's 1 KiB response header, 8 field lines.
fn meta(c: &mut Criterion) {
    let now_t = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).expect("valid status");
    for (name, value) in [
        ("Server", "nginx/1.22.1"),
        ("Date", "Tue, 24 Nov 2026 13:00:00 GMT"),
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", "1024"),
        ("Last-Modified", "Tue, 24 Nov 2026 12:35:50 GMT"),
        ("Connection", "keep-alive"),
        ("ETag", "\"6743a1e6-400\""),
        ("Accept-Ranges", "bytes"),
    ] {
        h.append_header(name, value).expect("valid header");
    }
    let stored = CacheMeta::new(now_t + Duration::from_secs(3600), now_t, 0, 0, h).serialize();
    let mut g = c.benchmark_group("meta");
    g.bench_function("deserialize_8_lines", |b| {
        b.iter(|| black_box(CacheMeta::deserialize(black_box(&stored)).expect("readable")))
    });
    g.finish();
}

fn eviction(c: &mut Criterion) {
    const FULL: usize = 100_000;
    const SIZE: usize = 1024;
    let never = SystemTime::UNIX_EPOCH;
    let keys: Vec<CompactCacheKey> = (0..FULL * 2).map(|i| key(i).to_compact()).collect();
    let mut g = c.benchmark_group("eviction");
    for (name, m) in [
        (
            "lru",
            Box::new(lru::Manager::with_capacity(FULL * SIZE, FULL)) as Box<dyn EvictionManager>,
        ),
        (
            "tinylfu",
            Box::new(tinylfu::Manager::new(FULL * SIZE, FULL)),
        ),
    ] {
        for k in &keys[..FULL] {
            m.admit(k.clone(), SIZE, never);
        }
        let mut i = 0;
        g.bench_function(format!("admit/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(m.admit(keys[i].clone(), SIZE, never))
            })
        });
        let mut j = 0;
        g.bench_function(format!("access/{name}"), |b| {
            b.iter(|| {
                j = (j + 1) % keys.len();
                black_box(m.access(&keys[j], SIZE, never))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, memcache, meta, eviction);
criterion_main!(benches);
