//! Cost per call of `Rate::observe`, `Rate::rate`, `Inflight::incr` (with
//! the guard's drop), `Estimator::incr` and `RateLimiter::check`, keyed by
//! an IPv4 address as a proxy keys clients: on one thread, then on both
//! cores at once, on the same key (every call touches the same counters)
//! and on different keys.
//!
//! `cargo bench -p proxy-limits --bench limits`
//!
//! The two-thread cases time one thread's loop while a second thread runs
//! the same loop (started together at a barrier), so they report the time
//! per call of each thread while the other competes for the same or other
//! cache lines.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use proxy_limits::{Estimator, Inflight, Rate, RateLimiter};

const CLIENT_A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const CLIENT_B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 42));

/// Times `iters` calls of `op(key_a)` on this thread while another thread
/// makes `iters` calls of `op(key_b)`.
fn two_threads<S, F>(shared: &Arc<S>, iters: u64, key_a: IpAddr, key_b: IpAddr, op: F) -> Duration
where
    S: Send + Sync + 'static,
    F: Fn(&S, &IpAddr) + Send + Copy + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let other = {
        let (shared, barrier) = (Arc::clone(shared), Arc::clone(&barrier));
        std::thread::spawn(move || {
            barrier.wait();
            for _ in 0..iters {
                op(&shared, black_box(&key_b));
            }
        })
    };
    barrier.wait();
    let start = Instant::now();
    for _ in 0..iters {
        op(shared, black_box(&key_a));
    }
    let elapsed = start.elapsed();
    other.join().unwrap();
    elapsed
}

/// One thread, then two on the same key, then two on different keys.
fn bench_op<S, F>(c: &mut Criterion, name: &str, shared: Arc<S>, op: F)
where
    S: Send + Sync + 'static,
    F: Fn(&S, &IpAddr) + Send + Copy + 'static,
{
    let mut group = c.benchmark_group(name);
    group.bench_function("1 thread", |b| b.iter(|| op(&shared, black_box(&CLIENT_A))));
    group.bench_function("2 threads, same key", |b| {
        b.iter_custom(|iters| two_threads(&shared, iters, CLIENT_A, CLIENT_A, op))
    });
    group.bench_function("2 threads, different keys", |b| {
        b.iter_custom(|iters| two_threads(&shared, iters, CLIENT_A, CLIENT_B, op))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rate = Arc::new(Rate::new(Duration::from_secs(1)));
    bench_op(c, "Rate::observe", Arc::clone(&rate), |r, k| {
        black_box(r.observe(k, 1));
    });
    let now = Instant::now();
    bench_op(
        c,
        "Rate::observe_at (clock read once)",
        Arc::clone(&rate),
        move |r, k| {
            black_box(r.observe_at(k, 1, now));
        },
    );
    bench_op(c, "Rate::rate", Arc::clone(&rate), |r, k| {
        black_box(r.rate(k));
    });
    bench_op(c, "Rate::rate_at (clock read once)", rate, move |r, k| {
        black_box(r.rate_at(k, now));
    });

    bench_op(
        c,
        "Inflight::incr + guard drop",
        Arc::new(Inflight::new()),
        |f, k| {
            let (guard, count) = f.incr(k, 1);
            black_box(count);
            drop(black_box(guard));
        },
    );

    bench_op(
        c,
        "Estimator::incr (4 x 1024)",
        Arc::new(Estimator::new(4, 1024)),
        |e, k| {
            black_box(e.incr(k, 1));
        },
    );

    // Allowed every time: 10^9 per second (one request per ns) with a
    // burst of 2^32 - 1 (4.3 s of requests at once), more than a run makes.
    let open = Arc::new(RateLimiter::new(1e9, u32::MAX).unwrap());
    bench_op(
        c,
        "RateLimiter::check (allowed)",
        Arc::clone(&open),
        |l, k| {
            black_box(l.check(k));
        },
    );
    // A fresh limiter and a fresh `now` for the `_at` case: each check moves
    // the key's arrival time 1 ns past `now`, far from the 4.3 s of burst in
    // one run (checked after it, so the case measured is the one named).
    let open_at = Arc::new(RateLimiter::new(1e9, u32::MAX).unwrap());
    let fresh_now = Instant::now();
    bench_op(
        c,
        "RateLimiter::check_at (allowed, clock read once)",
        Arc::clone(&open_at),
        move |l, k| {
            black_box(l.check_at(k, fresh_now));
        },
    );
    assert!(open.check(&CLIENT_A).is_allowed());
    assert!(open_at.check_at(&CLIENT_A, fresh_now).is_allowed());
    // Denied every time after the first: 1 per hour.
    let shut = Arc::new(RateLimiter::new(1.0 / 3600.0, 1).unwrap());
    bench_op(
        c,
        "RateLimiter::check (denied)",
        Arc::clone(&shut),
        |l, k| {
            black_box(l.check(k));
        },
    );
    bench_op(
        c,
        "RateLimiter::check_at (denied, clock read once)",
        Arc::clone(&shut),
        move |l, k| {
            black_box(l.check_at(k, now));
        },
    );
    assert!(!shut.check(&CLIENT_B).is_allowed());
}

criterion_group!(benches, bench);
criterion_main!(benches);
