//! `LoadBalancer::select` for each algorithm over 3, 100 and 10,000
//! backends (weights 1, 2, 3 in turn), on one thread and on two threads
//! selecting at once from the same load balancer.
//!
//! The two-thread figure is the wall time of `iters` selects done by each
//! of two threads side by side, divided by `iters`: the cost of one select
//! while the other core is selecting too (equal to the one-thread figure
//! when nothing is shared).
//!
//! ```sh
//! cargo bench -p proxy-lb --bench select
//! ```
// criterion_group! makes an undocumented pub fn
#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use proxy_lb::discovery::Static;
use proxy_lb::selection::{
    BackendSelection, Consistent, FNVHash, LeastConnections, Random, RoundRobin, RoundRobinConfig,
};
use proxy_lb::{Backend, Backends, LoadBalancer};

const SIZES: [usize; 3] = [3, 100, 10_000];
/// Keys the hashing algorithms see, in turn (request-path-like, 11-13 bytes).
const KEYS: usize = 1024;

fn backends(n: usize) -> BTreeSet<Backend> {
    (0..n)
        .map(|i| {
            let addr = format!("10.{}.{}.{}:8080", i / 62_500, (i / 250) % 250, i % 250 + 1);
            Backend::new_with_weight(&addr, i % 3 + 1).expect("valid address")
        })
        .collect()
}

fn balancer<S: BackendSelection>(n: usize) -> Arc<LoadBalancer<S>> {
    balancer_with::<S>(n, S::Config::default())
}

fn balancer_with<S: BackendSelection>(n: usize, config: S::Config) -> Arc<LoadBalancer<S>> {
    let lb = LoadBalancer::<S>::from_backends_with_config(
        Backends::new(Static::new(backends(n))),
        config,
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(lb.update())
        .expect("static discovery");
    Arc::new(lb)
}

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("/user/{}", i * 7919).into_bytes())
        .collect()
}

/// Runs `select(lb, key)` `iters` times on each of two threads at once;
/// the wall time of the slower thread.
fn two_threads<L: Send + Sync + 'static>(
    lb: &Arc<L>,
    keys: &Arc<Vec<Vec<u8>>>,
    iters: u64,
    select: fn(&L, &[u8]),
) -> Duration {
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (lb, keys, barrier) = (lb.clone(), keys.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters as usize {
                    select(&lb, &keys[(i + t * 512) % KEYS]);
                }
                start.elapsed()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn bench_algorithm<S: BackendSelection>(c: &mut Criterion, name: &str) {
    bench_with::<LoadBalancer<S>>(c, name, balancer::<S>, |lb, key| {
        black_box(lb.select(key, 256));
    });
}

fn bench_with<L: Send + Sync + 'static>(
    c: &mut Criterion,
    name: &str,
    make: fn(usize) -> Arc<L>,
    select: fn(&L, &[u8]),
) {
    let keys = Arc::new(keys());
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for n in SIZES {
        let lb = make(n);
        group.bench_with_input(BenchmarkId::new("1 thread", n), &n, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % KEYS;
                select(&lb, &keys[i]);
            })
        });
        group.bench_with_input(BenchmarkId::new("2 threads", n), &n, |b, _| {
            b.iter_custom(|iters| two_threads(&lb, &keys, iters, select))
        });
    }
    group.finish();
}

fn selection(c: &mut Criterion) {
    bench_algorithm::<RoundRobin>(c, "round_robin");
    bench_with::<LoadBalancer<RoundRobin>>(
        c,
        "round_robin_per_thread",
        |n| {
            balancer_with::<RoundRobin>(
                n,
                RoundRobinConfig {
                    per_thread_turns: true,
                },
            )
        },
        |lb, key| {
            black_box(lb.select(key, 256));
        },
    );
    bench_algorithm::<Random>(c, "random");
    bench_algorithm::<FNVHash>(c, "fnv_hash");
    bench_algorithm::<Consistent>(c, "ketama");
    // least connections counts through a guard: take it and drop it, as a
    // request does (one atomic add and one subtract on the chosen counter)
    bench_with::<LoadBalancer<LeastConnections>>(
        c,
        "least_connections",
        balancer::<LeastConnections>,
        |lb, key| {
            black_box(lb.select_tracked(key, 256));
        },
    );
}

criterion_group!(benches, selection);
criterion_main!(benches);
