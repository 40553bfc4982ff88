//! The estimator's documented accuracy (`src/estimator.rs`, "Accuracy"),
//! checked against exact counts over a skewed stream of keys: a Zipf
//! distribution (exponent 1.1 over 10,000 keys, the shape of real traffic
//! per client or per URL), one million events, several seeds.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;

use proxy_limits::Estimator;

const KEYS: usize = 10_000;
const EVENTS: usize = 1_000_000;
const EXPONENT: f64 = 1.1;

/// splitmix64: a small deterministic generator, enough for a test stream.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `EVENTS` keys drawn from Zipf(`EXPONENT`) over `0..KEYS` (key `k` has
/// weight `1 / (k + 1)^EXPONENT`), by inverting the cumulative weights.
fn zipf_stream(seed: u64) -> Vec<u32> {
    let mut cumulative = Vec::with_capacity(KEYS);
    let mut total = 0.0;
    for k in 0..KEYS {
        total += 1.0 / ((k + 1) as f64).powf(EXPONENT);
        cumulative.push(total);
    }
    let mut rng = Rng(seed);
    (0..EVENTS)
        .map(|_| {
            let x = rng.next_f64() * total;
            cumulative.partition_point(|c| *c <= x).min(KEYS - 1) as u32
        })
        .collect()
}

/// For each key of the stream: (true count, estimate) in a `hashes × slots`
/// estimator fed the stream.
fn estimate(stream: &[u32], hashes: usize, slots: usize, seed: u64) -> Vec<(i64, i64)> {
    let est = Estimator::with_seed(hashes, slots, seed);
    let mut exact: HashMap<u32, i64> = HashMap::new();
    for key in stream {
        est.incr(key, 1);
        *exact.entry(*key).or_default() += 1;
    }
    exact
        .into_iter()
        .map(|(k, a)| (a, est.get(&k) as i64))
        .collect()
}

#[test]
fn estimates_are_never_below_the_true_count() {
    for seed in 1..=3 {
        let stream = zipf_stream(seed);
        for (a, e) in estimate(&stream, 4, 1024, seed) {
            assert!(e >= a, "seed {seed}: estimate {e} below the true count {a}");
        }
    }
}

/// `P[estimate − a > k · (N − a) / w] ≤ k^-d` for `k = e` and `k = 2`.
#[test]
fn over_estimates_stay_within_the_markov_bound() {
    let n_total = EVENTS as f64;
    for seed in 1..=3 {
        let stream = zipf_stream(seed);
        // the default size of a Rate, then a crowded sketch where the
        // bound is far from trivial
        for (d, w) in [(4usize, 1024usize), (2, 64)] {
            let counts = estimate(&stream, d, w, seed + 100);
            for k in [std::f64::consts::E, 2.0, 1.2] {
                let beyond = counts
                    .iter()
                    .filter(|(a, e)| (e - a) as f64 > k * (n_total - *a as f64) / w as f64)
                    .count();
                let fraction = beyond as f64 / counts.len() as f64;
                let bound = k.powi(-(d as i32));
                assert!(
                    fraction <= bound,
                    "{d} x {w}, seed {seed}, k {k}: {fraction} of keys beyond, bound {bound}"
                );
            }
        }
        // The docs' example, 4 x 1024: within 0.27 % of N for 98.2 % of keys.
        let counts = estimate(&stream, 4, 1024, seed + 300);
        let within = counts
            .iter()
            .filter(|(a, e)| ((e - a) as f64) <= 0.0027 * n_total)
            .count();
        assert!(within as f64 >= 0.982 * counts.len() as f64, "seed {seed}");
    }
}

/// A key is exact unless it shares its slot with another key in every row:
/// with `n` distinct keys that happens with probability
/// `(1 − (1 − 1/w)^(n−1))^d`. The fraction of exact keys must match
/// `1 −` that, within 2 points (the keys of one stream are not independent
/// trials, so the fraction wanders a little around its expectation).
#[test]
fn the_fraction_of_exact_keys_matches_the_distinct_key_bound() {
    for seed in 1..=3 {
        let stream = zipf_stream(seed);
        for (d, w) in [(4usize, 8192usize), (4, 16_384), (2, 16_384)] {
            let counts = estimate(&stream, d, w, seed + 200);
            let n = counts.len() as f64;
            let exact = counts.iter().filter(|(a, e)| a == e).count() as f64 / n;
            let collide_in_a_row = 1.0 - (1.0 - 1.0 / w as f64).powf(n - 1.0);
            let expected = 1.0 - collide_in_a_row.powi(d as i32);
            assert!(
                (exact - expected).abs() <= 0.02,
                "{d} x {w}, seed {seed}, {n} keys: {exact} exact, expected {expected}"
            );
        }
    }
}
