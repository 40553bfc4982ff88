//! What one uncontended atomic read-modify-write costs on this machine, to
//! weigh the counts `LOCKED=1 bench/instructions.sh` prints:
//!
//! ```sh
//! rustc -O bench/atomic_cost.rs -o /tmp/atomic_cost && taskset -c 0 /tmp/atomic_cost
//! ```
//!
//! Prints nanoseconds per iteration of a loop of plain additions and of a
//! loop of `fetch_add`s on one (uncontended) atomic. Not part of any crate.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const N: usize = 200_000_000;

fn per_iteration(mut f: impl FnMut(usize)) -> f64 {
    let t = Instant::now();
    for i in 0..N {
        f(i);
    }
    t.elapsed().as_secs_f64() / N as f64 * 1e9
}

fn main() {
    let mut x = 0usize;
    let plain = per_iteration(|i| x = black_box(x.wrapping_add(i)));
    let a = AtomicUsize::new(0);
    let atomic = per_iteration(|_| {
        black_box(a.fetch_add(1, Ordering::AcqRel));
    });
    println!("plain add: {plain:.2} ns per iteration; fetch_add: {atomic:.2} ns per iteration");
}
