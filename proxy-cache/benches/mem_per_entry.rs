//! Memory per cached entry beyond its header and body bytes, with
//! 1,000,000 small entries in `MemCache`, and per tracked entry in the
//! eviction managers.
//!
//! A counting global allocator adds up the bytes requested from the
//! allocator (what the data structures ask for; malloc's own per-block
//! overhead is not included, the process's resident size is printed beside
//! it for that). An entry's "header bytes" are its meta's serialized length
//! (the times, the status line, each field's name and value and their
//! lengths), which is what `MemCache` keeps of it; its body bytes are the
//! body's length. The overhead is everything else the storage holds per
//! entry: its map slot (and the map's spare capacity) and the entry record.
//!
//! ```sh
//! cargo bench -p proxy-cache --bench mem_per_entry
//! ```
// The counting allocator is the one unsafe item: it forwards every call to
// the system allocator unchanged and only adds up sizes.
#![allow(unsafe_code)]
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use proxy_cache::eviction::{lru, tinylfu, EvictionManager};
use proxy_cache::storage::memory::entry_size;
use proxy_cache::storage::PurgeType;
use proxy_cache::{CacheKey, CacheMeta, MemCache, Storage};
use proxy_core::http::ResponseHeader;

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments, so
// `System`'s guarantees hold; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 1_000_000;
const BODY: usize = 16;

fn allocated() -> isize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// Resident set size in bytes, from /proc (0 where unavailable).
fn rss() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<isize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn key(i: usize) -> CacheKey {
    CacheKey::new("mem", format!("/object/{i}"), "")
}

/// A meta with the fields nginx sends for a static file (the benchmark
/// origin's 0 B response).
fn origin_meta() -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).expect("200 is a valid status");
    for (name, value) in [
        ("server", "nginx/1.24.0"),
        ("date", "Tue, 24 Nov 2026 09:40:00 GMT"),
        ("content-type", "application/octet-stream"),
        ("content-length", "0"),
        ("last-modified", "Mon, 23 Nov 2026 10:00:00 GMT"),
        ("etag", "\"6921d9a0-0\""),
        ("accept-ranges", "bytes"),
    ] {
        h.insert_header(name, value).expect("a valid header");
    }
    CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, h)
}

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).expect("200 is a valid status");
    h.insert_header("content-type", "text/plain")
        .expect("a valid header");
    CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, h)
}

/// Store `n` entries of `meta` with `BODY`-byte bodies in a new `MemCache`;
/// returns it (leaked: a storage is `'static`).
fn fill(rt: &tokio::runtime::Runtime, n: usize, meta: &CacheMeta) -> &'static MemCache {
    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    rt.block_on(async {
        for i in 0..n {
            let k = key(i);
            let body = Bytes::from(vec![(i % 251) as u8; BODY]);
            let mut miss = cache.get_miss_handler(&k, meta).await.expect("memory");
            miss.write_body(body).await.expect("memory");
            miss.finish().await.expect("memory");
        }
    });
    cache
}

/// Store and purge 100,000 other keys, as a running cache's evictions do.
/// The map frees the tables it outgrew in batches of retired objects
/// (`seize`, 32 a batch), and a fill alone retires too few to free them:
/// right after the fill they still count, about 19 B per entry, though a
/// live cache does not keep them.
fn churn(rt: &tokio::runtime::Runtime, cache: &'static MemCache, meta: &CacheMeta) {
    rt.block_on(async {
        for i in 0..100_000 {
            let k = CacheKey::new("churn", format!("/gone/{i}"), "");
            let mut miss = cache.get_miss_handler(&k, meta).await.expect("memory");
            miss.write_body(Bytes::from_static(b"x"))
                .await
                .expect("memory");
            miss.finish().await.expect("memory");
            cache
                .purge(&k.to_compact(), PurgeType::Eviction)
                .await
                .expect("memory");
        }
    });
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    // An entry's header bytes are its meta's serialized length (the times,
    // the status line and each field's name and value with their lengths),
    // what the storage keeps; its body bytes are the body's length.
    let one_field = meta();
    let header = one_field.serialized_len();
    let a = allocated();
    let r0 = rss();
    let cache = fill(&rt, N, &one_field);
    let filled = (allocated() - a) as f64 / N as f64;
    churn(&rt, cache, &one_field);
    let total = (allocated() - a) as f64 / N as f64;
    let resident = (rss() - r0) as f64 / N as f64;
    let (slot, record) = proxy_cache::storage::memory::entry_sizes();
    let beyond = |bytes: f64| bytes - (header + BODY) as f64;
    let storage_overhead = beyond(total);
    println!(
        "MemCache, {N} entries of {BODY}-byte bodies (map slot {slot} B, entry record {record} B):"
    );
    println!("  header (serialized meta, kept as such): {header} B/entry");
    println!("  body: {BODY} B/entry");
    println!(
        "  allocated right after the fill: {filled:.1} B/entry (with the map's outgrown tables not yet freed)"
    );
    println!("  total allocated: {total:.1} B/entry");
    println!(
        "  overhead beyond header and body: {:.1} B/entry",
        beyond(total)
    );
    println!(
        "  resident set growth: {resident:.1} B/entry, {:.1} B beyond header and body (with malloc's per-block rounding)",
        beyond(resident)
    );
    println!(
        "  counted by a byte budget (entry_size): {} B/entry",
        entry_size(&one_field, BODY)
    );

    // a hit on every entry: what a lookup leaves behind (nothing: the meta
    // it reads back is the caller's to drop)
    let a = allocated();
    rt.block_on(async {
        for i in 0..N {
            let (_, mut hit) = cache
                .lookup(&key(i))
                .await
                .expect("memory")
                .expect("stored");
            while hit.read_body().await.expect("memory").is_some() {}
        }
    });
    println!(
        "  after one hit on each entry: +{:.1} B/entry",
        (allocated() - a) as f64 / N as f64
    );

    // the same for the header nginx sends for a static file
    let origin = origin_meta();
    let n = N / 10;
    let a = allocated();
    let r0 = rss();
    let origin_cache = fill(&rt, n, &origin);
    churn(&rt, origin_cache, &origin);
    let total = (allocated() - a) as f64 / n as f64;
    let resident = (rss() - r0) as f64 / n as f64;
    let header = origin.serialized_len();
    println!(
        "MemCache, {n} entries with a 7-field origin header ({header} B serialized): allocated {total:.1} B/entry ({:.1} beyond header and body), resident {resident:.1} B/entry, counted {} B (entry_size)",
        total - (header + BODY) as f64,
        entry_size(&origin, BODY)
    );

    let keys: Vec<_> = (0..N).map(|i| key(i).to_compact()).collect();
    let never = SystemTime::UNIX_EPOCH;
    // each manager is built inside the measurement (its up-front
    // allocations count), without a size hint
    type Build = fn() -> Box<dyn EvictionManager>;
    let managers: [(&str, Build); 2] = [
        ("lru::Manager", || Box::new(lru::Manager::new(usize::MAX))),
        ("tinylfu::Manager (sketch sized for 1,000,000)", || {
            Box::new(tinylfu::Manager::new_with_watermark(
                usize::MAX,
                usize::MAX,
                N,
            ))
        }),
    ];
    for (name, build) in managers {
        let a = allocated();
        let m = build();
        for k in &keys {
            m.admit(k.clone(), 100, never);
        }
        let per = (allocated() - a) as f64 / N as f64;
        println!(
            "{name}, {N} tracked entries: {per:.1} B/entry; with MemCache's, {:.1} B/entry beyond header and body",
            per + storage_overhead
        );
    }
}
