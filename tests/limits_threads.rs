//! `proxy_facade::limits` under both cores at once: the limiter, the rate
//! estimator, the in-flight counter and the estimator hammered by two
//! threads on the same key (the same atomic words) and on different keys,
//! checked against exact expectations. Each loop is bounded in count and in
//! time.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use proxy_facade::limits::{Estimator, Inflight, Rate, RateLimiter};

/// Runs `f(thread index)` on two threads started together; their results.
fn on_both_cores<T, F>(f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> T + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn two_cores_on_one_key_at_one_instant_get_exactly_the_burst() {
    for _ in 0..50 {
        let limiter = Arc::new(RateLimiter::new(10.0, 20).unwrap());
        let now = Instant::now();
        let l = Arc::clone(&limiter);
        let allowed = on_both_cores(move |_| {
            (0..10_000)
                .filter(|_| l.check_at("client", now).is_allowed())
                .count()
        });
        assert_eq!(allowed.iter().sum::<usize>(), 20, "{allowed:?}");
    }
}

#[test]
fn two_cores_hammering_one_key_in_real_time_never_get_more_than_the_rate() {
    // 1000 per second, bursts of 100, for 300 ms of checks from both
    // cores. Each thread notes the time of each check it was allowed (the
    // time the limiter judged it at). Over any span between two allowed
    // checks, GCRA allows at most the burst plus one per millisecond that
    // passed: the allowed times of both threads together must keep to
    // that, whatever the interleaving.
    let (rate, burst) = (1000.0, 100u32);
    let limiter = Arc::new(RateLimiter::new(rate, burst).unwrap());
    let l = Arc::clone(&limiter);
    let results = on_both_cores(move |_| {
        let first = Instant::now();
        let mut allowed_at = Vec::new();
        for _ in 0..50_000_000u64 {
            let now = Instant::now();
            if now.duration_since(first) > Duration::from_millis(300) {
                return (first, now, allowed_at);
            }
            if l.check_at("client", now).is_allowed() {
                allowed_at.push(now);
            }
        }
        (first, Instant::now(), allowed_at)
    });
    let mut times: Vec<Instant> = results.iter().flat_map(|r| r.2.clone()).collect();
    times.sort();
    for (i, ti) in times.iter().enumerate() {
        for (j, tj) in times.iter().enumerate().skip(i) {
            let count = (j - i + 1) as f64;
            let allowance = f64::from(burst) + rate * tj.duration_since(*ti).as_secs_f64();
            assert!(
                count <= allowance + 1.0,
                "{count} allowed in {:?}: GCRA allows {allowance:.1}",
                tj.duration_since(*ti)
            );
        }
    }
    // And the limiter does not starve the key: with demand all along, it
    // allows about the burst plus the rate over the span (less only what a
    // pause of both threads longer than the burst's 100 ms would lose).
    let first = results.iter().map(|r| r.0).min().unwrap();
    let last = results.iter().map(|r| r.1).max().unwrap();
    let allowance = f64::from(burst) + rate * last.duration_since(first).as_secs_f64();
    assert!(
        times.len() as f64 >= 0.8 * allowance,
        "{} allowed, GCRA allows {allowance:.1}",
        times.len()
    );
}

#[test]
fn two_cores_on_different_keys_each_get_their_own_burst() {
    let limiter = Arc::new(RateLimiter::new(1.0, 50).unwrap());
    let now = Instant::now();
    let l = Arc::clone(&limiter);
    let allowed = on_both_cores(move |i| {
        let key = format!("client-{i}");
        (0..10_000)
            .filter(|_| l.check_at(&key, now).is_allowed())
            .count()
    });
    assert_eq!(allowed, [50, 50]);
}

#[test]
fn rate_counts_every_event_from_both_cores() {
    let rate = Arc::new(Rate::new(Duration::from_secs(1)));
    let start = Instant::now();
    let r = Arc::clone(&rate);
    on_both_cores(move |i| {
        for _ in 0..200_000 {
            r.observe_at("shared", 1, start);
            r.observe_at(&i, 1, start);
        }
    });
    assert_eq!(rate.observe_at("shared", 0, start), 400_000);
    assert_eq!(rate.observe_at(&0usize, 0, start), 200_000);
    assert_eq!(rate.observe_at(&1usize, 0, start), 200_000);
    // the next window reports them per second
    let next = start + Duration::from_millis(1500);
    assert_eq!(rate.rate_at("shared", next), 400_000.0);
}

#[test]
fn inflight_counts_come_back_to_zero_and_never_exceed_what_is_held() {
    let inflight = Inflight::new();
    let f = inflight.clone();
    let peaks = on_both_cores(move |_| {
        let mut peak = 0;
        for _ in 0..200_000 {
            let (guard, count) = f.incr("shared", 1);
            peak = peak.max(count);
            drop(guard);
        }
        peak
    });
    assert!(peaks.iter().all(|p| (1..=2).contains(p)), "{peaks:?}");
    assert_eq!(inflight.get("shared"), 0);
}

#[test]
fn the_estimator_loses_no_increment_from_either_core() {
    let est = Arc::new(Estimator::new(4, 1024));
    let e = Arc::clone(&est);
    on_both_cores(move |_| {
        for _ in 0..500_000 {
            e.incr("shared", 1);
        }
    });
    assert_eq!(est.get("shared"), 1_000_000);
}
