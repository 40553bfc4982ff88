//! Consistent hashing (Ketama) with nginx's point layout.
//!
//! nginx's `hash $key consistent` (`ngx_http_upstream_hash_module.c`,
//! compatible with `Cache::Memcached::Fast`) places, for each server of
//! weight `w`, `160 × w` points on a 32-bit circle:
//!
//! - the server's name (as written in the `server` line, `host:port`) is
//!   split at its last `:` into host and port; the base state is
//!   `crc32_update(host ‖ 0x00 ‖ port)`, left unfinished;
//! - point `j` is that base state extended with the 4 little-endian bytes of
//!   point `j - 1`'s hash (0 for the first point) and finished;
//! - points are sorted by hash; of several points with the same hash only
//!   the first is kept.
//!
//! A key goes to the first point whose hash is at least `crc32(key)`,
//! wrapping round to the first point. nginx then walks on point by point
//! when that server is down; the walk here does the same.
//!
//! The name hashed here is the backend's address as `ip:port` (IPv6 as
//! `[addr]:port`), so an nginx fleet whose `server` lines are written the
//! same way (`server 10.0.0.7:8080 weight=2;`) sends every key to the same
//! backend. Two points of different servers with the same hash are ordered
//! by server address here and by configuration order in nginx (glibc's
//! stable sort); they only disagree when the two orders differ on such a
//! collision.
//!
//! Adding a backend to `N` moves only the keys that now land on its points,
//! about `1 / (N + 1)` of them, and each moved key moves to the new backend.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::crc32::{crc32, Crc32};
use super::{usable, BackendIter, BackendSelection};
use crate::Backend;

/// nginx's number of points per unit of weight.
const NGINX_POINTS_PER_WEIGHT: u32 = 160;

/// Settings of [`KetamaHashing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KetamaConfig {
    /// Points per unit of weight on the circle. Default 160, nginx's value;
    /// any other value spreads keys differently from nginx.
    pub point_multiple: u32,
}

impl Default for KetamaConfig {
    fn default() -> Self {
        KetamaConfig {
            point_multiple: NGINX_POINTS_PER_WEIGHT,
        }
    }
}

/// Ketama consistent hashing, laid out as nginx's `hash ... consistent`
/// (see the module docs).
#[derive(Debug)]
pub struct KetamaHashing {
    backends: Box<[Backend]>,
    /// The points' hashes, sorted, unique.
    hashes: Box<[u32]>,
    /// The backend (index into `backends`) of each point.
    owners: Box<[u32]>,
    /// `index[b]` = the first point whose top `32 - shift` bits are at least
    /// `b`: a key's search is confined to its bucket's few points instead of
    /// a binary search over the whole circle (which misses the cache once
    /// the circle outgrows it: 10,000 backends make 1.6 million points).
    index: Box<[u32]>,
    shift: u32,
}

/// [`KetamaHashing`] under the name the tutorial and Pingora use.
pub type Consistent = KetamaHashing;

/// Split nginx-style: at the last `:` when only digits follow it.
fn host_and_port(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, port),
        _ => (name, ""),
    }
}

/// The `n` point hashes of the server called `name`.
fn server_points(name: &str, n: u64) -> impl Iterator<Item = u32> {
    let (host, port) = host_and_port(name);
    let mut base = Crc32::new();
    base.update(host.as_bytes());
    base.update(&[0]);
    base.update(port.as_bytes());
    let mut prev: u32 = 0;
    (0..n).map(move |_| {
        let mut c = base;
        c.update(&prev.to_le_bytes());
        prev = c.finish();
        prev
    })
}

impl BackendSelection for KetamaHashing {
    type Iter = KetamaIter;
    type Config = KetamaConfig;

    fn build_with_config(backends: &BTreeSet<Backend>, config: &KetamaConfig) -> Self {
        let backends = usable(backends);
        let multiple = u64::from(config.point_multiple.max(1));
        let mut points: Vec<(u32, u32)> = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let n = (b.weight as u64).saturating_mul(multiple);
            let name = b.addr.to_string();
            points.extend(server_points(&name, n).map(|hash| (hash, i as u32)));
        }
        // stable: equal hashes stay in server order, then the first is kept
        points.sort_by_key(|p| p.0);
        points.dedup_by_key(|p| p.0);
        let (hashes, owners): (Vec<u32>, Vec<u32>) = points.into_iter().unzip();
        let (index, shift) = bucket_index(&hashes);
        KetamaHashing {
            backends: backends.into_boxed_slice(),
            hashes: hashes.into_boxed_slice(),
            owners: owners.into_boxed_slice(),
            index,
            shift,
        }
    }

    fn first(&self, key: &[u8]) -> Option<&Backend> {
        let point = self.position(crc32(key)) % self.hashes.len().max(1);
        self.backends.get(*self.owners.get(point)? as usize)
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> KetamaIter {
        let start = self.position(crc32(key));
        KetamaIter {
            ketama: self.clone(),
            next_point: start,
            visited: 0,
            last: None,
        }
    }
}

impl KetamaHashing {
    /// The first point whose hash is at least `hash` (`hashes.len()` when
    /// there is none: the caller wraps to point 0).
    fn position(&self, hash: u32) -> usize {
        let bucket = (hash >> self.shift) as usize;
        let lo = self.index.get(bucket).map_or(0, |&i| i as usize);
        let hi = self
            .index
            .get(bucket + 1)
            .map_or(self.hashes.len(), |&i| i as usize);
        lo + self
            .hashes
            .get(lo..hi)
            .map_or(0, |bucket| bucket.partition_point(|&h| h < hash))
    }
}

/// The bucket index of sorted `hashes`: about four points per bucket,
/// between 2^1 and 2^20 buckets; returns it with the shift that maps a hash
/// to its bucket.
fn bucket_index(hashes: &[u32]) -> (Box<[u32]>, u32) {
    let wanted = (hashes.len() / 4).max(2);
    let bits = (usize::BITS - (wanted - 1).leading_zeros()).clamp(1, 20);
    let shift = 32 - bits;
    let buckets = 1usize << bits;
    let mut index = Vec::with_capacity(buckets + 1);
    let mut p = 0usize;
    for b in 0..=buckets {
        while hashes.get(p).is_some_and(|&h| ((h >> shift) as usize) < b) {
            p += 1;
        }
        index.push(p as u32);
    }
    (index.into_boxed_slice(), shift)
}

/// The candidates of a [`KetamaHashing`] select: the servers of the points
/// from the key's position clockwise, skipping a server that repeats the
/// one just returned, once round the circle at most.
#[derive(Debug)]
pub struct KetamaIter {
    ketama: Arc<KetamaHashing>,
    next_point: usize,
    visited: usize,
    last: Option<u32>,
}

impl BackendIter for KetamaIter {
    fn next(&mut self) -> Option<&Backend> {
        let owners = &self.ketama.owners;
        while self.visited < owners.len() {
            let owner = *owners.get(self.next_point % owners.len())?;
            self.next_point += 1;
            self.visited += 1;
            if self.last != Some(owner) {
                self.last = Some(owner);
                return self.ketama.backends.get(owner as usize);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_util::{backends, first, weighted};
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_split_like_nginx() {
        assert_eq!(host_and_port("10.0.0.1:8080"), ("10.0.0.1", "8080"));
        assert_eq!(host_and_port("[::1]:80"), ("[::1]", "80"));
        assert_eq!(host_and_port("example.com"), ("example.com", ""));
        assert_eq!(host_and_port("[::1]"), ("[::1]", ""));
    }

    #[test]
    fn points_chain_each_hash_into_the_next() {
        let pts: Vec<u32> = server_points("10.0.0.1:80", 3).collect();
        let mut base = Crc32::new();
        base.update(b"10.0.0.1\x0080");
        let mut c = base;
        c.update(&0u32.to_le_bytes());
        assert_eq!(pts[0], c.finish());
        let mut c = base;
        c.update(&pts[0].to_le_bytes());
        assert_eq!(pts[1], c.finish());
        let mut c = base;
        c.update(&pts[1].to_le_bytes());
        assert_eq!(pts[2], c.finish());
    }

    #[test]
    fn each_unit_of_weight_gets_160_points() {
        let k = KetamaHashing::build(&weighted(&[(1, 1), (2, 3)]));
        // a collision among 640 points of 2^32 is possible but unlikely; allow it
        assert!((638..=640).contains(&k.hashes.len()), "{}", k.hashes.len());
        let of_second = k.owners.iter().filter(|&&o| o == 1).count();
        assert!((478..=480).contains(&of_second), "{of_second}");
        assert!(k.hashes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn adding_a_backend_moves_about_one_in_n_keys_all_to_it() {
        let before = Arc::new(KetamaHashing::build(&backends(10, 1)));
        let mut grown = backends(10, 1);
        let newcomer = Backend::new("10.9.9.9:80").unwrap();
        grown.insert(newcomer.clone());
        let after = Arc::new(KetamaHashing::build(&grown));
        let n = 20_000;
        let mut moved = 0;
        for i in 0..n {
            let key = format!("user-{i}");
            let a = first(&before, key.as_bytes()).unwrap();
            let b = first(&after, key.as_bytes()).unwrap();
            if a != b {
                moved += 1;
                assert_eq!(
                    b, newcomer,
                    "a moved key went elsewhere than the new backend"
                );
            }
        }
        let fraction = moved as f64 / n as f64;
        // 1/11 = 0.091; Ketama's spread with 160 points is within a few percent
        assert!((0.06..0.13).contains(&fraction), "moved {fraction}");
    }

    #[test]
    fn removing_a_backend_moves_only_its_keys() {
        let all = Arc::new(KetamaHashing::build(&backends(8, 1)));
        let mut fewer = backends(8, 1);
        let gone = fewer.iter().nth(3).unwrap().clone();
        fewer.remove(&gone);
        let fewer = Arc::new(KetamaHashing::build(&fewer));
        for i in 0..5000 {
            let key = format!("k{i}");
            let a = first(&all, key.as_bytes()).unwrap();
            let b = first(&fewer, key.as_bytes()).unwrap();
            if a != gone {
                assert_eq!(a, b);
            } else {
                // the walk on the full circle finds the same fallback
                let mut it = all.iter(key.as_bytes());
                it.next();
                assert_eq!(it.next().unwrap(), &b);
            }
        }
    }

    #[test]
    fn keys_spread_by_weight() {
        let k = Arc::new(KetamaHashing::build(&weighted(&[(1, 1), (2, 1), (3, 2)])));
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for i in 0..40_000 {
            let b = first(&k, format!("{i}").as_bytes()).unwrap();
            *counts.entry(b.addr.port()).or_default() += 1;
        }
        // Ketama's shares vary by a few percent around 1/4, 1/4, 1/2
        assert!((7_000..13_000).contains(&counts[&1]), "{counts:?}");
        assert!((7_000..13_000).contains(&counts[&2]), "{counts:?}");
        assert!((16_000..24_000).contains(&counts[&3]), "{counts:?}");
    }

    #[test]
    fn walk_visits_every_backend_then_ends() {
        let k = Arc::new(KetamaHashing::build(&backends(4, 1)));
        let mut it = k.iter(b"x");
        let mut seen = std::collections::HashSet::new();
        let mut steps = 0;
        while let Some(b) = it.next() {
            seen.insert(b.clone());
            steps += 1;
        }
        assert_eq!(seen.len(), 4);
        assert!(steps <= 640);
        let empty = Arc::new(KetamaHashing::build(&BTreeSet::new()));
        assert!(first(&empty, b"x").is_none());
    }

    #[test]
    fn bucket_index_finds_what_a_full_binary_search_finds() {
        for n in [1usize, 3, 100] {
            let k = KetamaHashing::build(&backends(n, 2));
            let mut probes: Vec<u32> = k
                .hashes
                .iter()
                .flat_map(|&h| [h, h.wrapping_add(1), h.wrapping_sub(1)])
                .collect();
            probes.extend([0, 1, u32::MAX, u32::MAX - 1, 1 << 31]);
            probes.extend((0..2000u32).map(|i| i.wrapping_mul(2_654_435_761)));
            for h in probes {
                assert_eq!(
                    k.position(h),
                    k.hashes.partition_point(|&x| x < h),
                    "n {n} hash {h}"
                );
            }
        }
        let (index, shift) = bucket_index(&[]);
        assert_eq!((index.len(), shift), (3, 31));
    }

    #[test]
    fn point_multiple_is_configurable() {
        let k =
            KetamaHashing::build_with_config(&backends(2, 1), &KetamaConfig { point_multiple: 10 });
        assert!(k.hashes.len() <= 20 && k.hashes.len() >= 19);
    }
}
