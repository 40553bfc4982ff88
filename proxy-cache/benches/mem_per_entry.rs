//! Memory per cached entry beyond its header and body bytes, with
//! 1,000,000 small entries in `MemCache`, and per tracked entry in the
//! eviction managers.
//!
//! A counting global allocator adds up the bytes requested from the
//! allocator (what the data structures ask for; malloc's own per-block
//! overhead is not included, the process's resident size is printed beside
//! it for that). An entry's "header bytes" are what its `CacheMeta` (the
//! response header and times) allocates when built, measured the same way;
//! its body bytes are the body's length. The overhead is everything else the
//! storage holds per entry: its map slot (and the map's spare capacity), the
//! entry record and the body's piece list.
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
use proxy_cache::storage::memory::{compact_meta, header_size_estimate};
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

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    let base = allocated();
    let r0 = rss();
    // what one entry's header and body cost on their own (less the vector
    // slot each is kept in here)
    // (the storage keeps a compact copy of the meta it is given; so does
    // this measure)
    let a = allocated();
    let as_built = meta();
    let as_built_bytes = allocated() - a;
    drop(as_built);
    let a = allocated();
    let metas: Vec<CacheMeta> = (0..N).map(|_| compact_meta(&meta())).collect();
    let meta_bytes = (allocated() - a) as f64 / N as f64 - 8.0;
    let a = allocated();
    let bodies: Vec<Bytes> = (0..N)
        .map(|i| Bytes::from(vec![(i % 251) as u8; BODY]))
        .collect();
    let body_bytes = (allocated() - a) as f64 / N as f64 - 32.0;
    let serialized = metas[0].serialize().len();
    let estimate = header_size_estimate(&metas[0]);

    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    rt.block_on(async {
        for (i, (meta, body)) in metas.into_iter().zip(bodies).enumerate() {
            let k = key(i);
            let mut miss = cache.get_miss_handler(&k, &meta).await.expect("memory");
            miss.write_body(body).await.expect("memory");
            miss.finish().await.expect("memory");
        }
    });
    // the inputs' own vectors are gone now; their contents live in the cache
    let total = (allocated() - base) as f64 / N as f64;
    let r1 = rss();
    let overhead = total - meta_bytes - body_bytes;
    let (slot, record) = proxy_cache::storage::memory::entry_sizes();
    println!(
        "MemCache, {N} entries of {BODY}-byte bodies (map slot {slot} B, entry record {record} B):"
    );
    println!("  header (compact CacheMeta in memory): {meta_bytes:.1} B/entry (as built by ResponseHeader::build: {as_built_bytes} B, serialized: {serialized} B, size estimate: {estimate} B)");
    println!("  body: {body_bytes:.1} B/entry");
    println!("  total allocated: {total:.1} B/entry");
    println!("  overhead beyond header and body: {overhead:.1} B/entry");
    println!(
        "  resident set growth, header and body included: {:.1} B/entry (with malloc's per-block overhead)",
        (r1 - r0) as f64 / N as f64
    );

    // a hit on every entry: `Bytes` from a `Vec` moves to a shared
    // representation on its first clone
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

    // what the memory tier's byte budget counts for an entry, against what
    // its header allocates, for a header as an origin sends it
    let a = allocated();
    let origin: Vec<CacheMeta> = (0..N / 10).map(|_| compact_meta(&origin_meta())).collect();
    let origin_bytes = (allocated() - a) as f64 / (N / 10) as f64 - 8.0;
    println!(
        "  a 7-field origin header: counted {} B (header_size_estimate), compact CacheMeta allocates {origin_bytes:.1} B; with the {overhead:.1} B of map and record: {:.1} B",
        header_size_estimate(&origin[0]),
        origin_bytes + overhead
    );
    drop(origin);

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
        println!(
            "{name}, {N} tracked entries: {:.1} B/entry",
            (allocated() - a) as f64 / N as f64
        );
    }
}
