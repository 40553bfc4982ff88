//! Hit ratio of plain LRU against TinyLFU admission over the same LRU, at
//! the same byte budget, on a Zipf (s = 0.9) trace of 1,000,000 requests
//! over 100,000 keys with a one-pass scan of 50,000 cold keys inserted in
//! the middle (after request 500,000). Every object is 1,024 bytes; the
//! budgets are 1 %, 5 % and 10 % of the key space. Deterministic: a fixed
//! seed, one thread.
//!
//! A request is a hit if the manager tracks the key (`peek`), which then
//! counts the access; otherwise a miss, and the key is admitted (the
//! storage would be filled and then purged of whatever `admit` returns).
//!
//! ```sh
//! cargo bench -p proxy-cache --bench hit_ratio
//! ```
#![allow(missing_docs)]

use std::time::SystemTime;

use proxy_cache::eviction::{lru, tinylfu, EvictionManager};
use proxy_cache::{CacheKey, CompactCacheKey};

const KEYS: usize = 100_000;
const REQUESTS: usize = 1_000_000;
const SCAN: usize = 50_000;
const SKEW: f64 = 0.9;
const OBJECT: usize = 1_024;
const SEED: u64 = 0x5eed_cafe_f00d_0001;

/// splitmix64: a small, well-mixed deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The trace: key ids, Zipf ranks 0..KEYS, then the scan ids KEYS.. .
fn trace() -> Vec<usize> {
    let mut cdf = Vec::with_capacity(KEYS);
    let mut sum = 0.0;
    for rank in 1..=KEYS {
        sum += 1.0 / (rank as f64).powf(SKEW);
        cdf.push(sum);
    }
    let mut rng = Rng(SEED);
    let mut out = Vec::with_capacity(REQUESTS + SCAN);
    for i in 0..REQUESTS {
        if i == REQUESTS / 2 {
            out.extend(KEYS..KEYS + SCAN);
        }
        let u = rng.unit() * sum;
        out.push(cdf.partition_point(|&c| c < u).min(KEYS - 1));
    }
    out
}

struct Outcome {
    all: f64,
    zipf_only: f64,
    after_scan: f64,
}

fn run(manager: &dyn EvictionManager, trace: &[usize], keys: &[CompactCacheKey]) -> Outcome {
    let never = SystemTime::UNIX_EPOCH;
    let (mut hits, mut zipf_hits, mut zipf_reqs) = (0usize, 0usize, 0usize);
    let (mut after_hits, mut after_reqs) = (0usize, 0usize);
    let scan_end = REQUESTS / 2 + SCAN;
    for (i, &id) in trace.iter().enumerate() {
        let key = &keys[id];
        let hit = manager.peek(key);
        if hit {
            manager.access(key, OBJECT, never);
        } else {
            manager.admit(key.clone(), OBJECT, never);
        }
        hits += usize::from(hit);
        if id < KEYS {
            zipf_reqs += 1;
            zipf_hits += usize::from(hit);
        }
        // the 100,000 requests right after the scan: how fast it recovers
        if i >= scan_end && i < scan_end + 100_000 {
            after_reqs += 1;
            after_hits += usize::from(hit);
        }
    }
    Outcome {
        all: hits as f64 / trace.len() as f64,
        zipf_only: zipf_hits as f64 / zipf_reqs as f64,
        after_scan: after_hits as f64 / after_reqs as f64,
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // and only checks that this builds and runs briefly
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let trace = trace();
    let keys: Vec<CompactCacheKey> = (0..KEYS + SCAN)
        .map(|i| CacheKey::new("bench", format!("/object/{i}"), "").to_compact())
        .collect();
    println!(
        "Zipf s={SKEW}, {REQUESTS} requests over {KEYS} keys, a scan of {SCAN} cold keys after request {}, {OBJECT}-byte objects",
        REQUESTS / 2
    );
    println!("budget (objects)  policy   hit ratio (all)  (Zipf requests)  (100k after the scan)");
    for objects in [KEYS / 100, KEYS / 20, KEYS / 10] {
        let budget = objects * OBJECT;
        let plain = lru::Manager::with_capacity(budget, objects);
        let tiny = tinylfu::Manager::new(budget, objects);
        for (name, m) in [("LRU", &plain as &dyn EvictionManager), ("TinyLFU", &tiny)] {
            let o = run(m, &trace, &keys);
            println!(
                "{objects:>16}  {name:<7}  {:>14.2} %  {:>14.2} %  {:>20.2} %",
                o.all * 100.0,
                o.zipf_only * 100.0,
                o.after_scan * 100.0
            );
        }
    }
}
