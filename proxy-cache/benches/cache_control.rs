//! Cache-Control parsing: a typical response field and a request field.
//! `cargo bench -p proxy-cache --bench cache_control`

// criterion_group! makes an undocumented pub fn
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use proxy_cache::CacheControl;

fn parse(c: &mut Criterion) {
    let resp: &[u8] = b"public, max-age=3600, s-maxage=600, stale-while-revalidate=30, private=\"set-cookie, x-user\"";
    c.bench_function("cache_control/parse_response", |b| {
        b.iter(|| CacheControl::parse([black_box(resp)]))
    });
    let req: &[u8] = b"max-age=0, no-cache";
    c.bench_function("cache_control/parse_request", |b| {
        b.iter(|| CacheControl::parse([black_box(req)]))
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
